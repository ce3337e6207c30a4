"""Fakes of the outside services, serving real HTTP on 127.0.0.1 for tests and the demo."""
