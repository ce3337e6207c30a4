"""One package per outside system (Spotify, MusicBrainz), on one HTTP layer (``http``)."""
