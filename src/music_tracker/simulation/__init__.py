"""Simulated listening: ground-truth plays and what each source records of them."""
