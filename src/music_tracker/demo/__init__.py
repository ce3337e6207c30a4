"""The embedded default: a realistic generated listening history and the demo pipeline."""
