"""Export formats in, canonical rows out: Spotify extended history, account data, Last.fm."""
