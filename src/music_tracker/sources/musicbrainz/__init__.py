"""MusicBrainz: artist facts (country, type, genres) now that Spotify no longer gives them."""
