"""Spotify: OAuth (PKCE), the Web API client, response parsing, and the ingest poll."""
