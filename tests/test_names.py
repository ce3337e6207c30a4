"""Name normalization: the rule that matches name-only plays to their Spotify-id twins."""

from __future__ import annotations

import pytest

from music_tracker.names import normalize_names


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Hey Jude - Remastered 2015", "hey jude"),
        ("Hey Jude - 2015 Remaster", "hey jude"),
        ("Hey Jude (2009 Remastered Version)", "hey jude"),
        ("Song (feat. Drake)", "song"),
        ("Song [ft. Drake] - Remastered", "song"),
        ("Stay (with Justin Bieber)", "stay"),
        ("Foo feat. Bar", "foo"),
        ("  The   Beatles ", "the beatles"),
        ("\uff21\uff22\uff23", "abc"),  # NFKC folds full-width letters
        ("Remastered", "remastered"),  # a title that is only the word stays
        ("Feature Presentation", "feature presentation"),  # "feat" only as a credit
        (None, None),
    ],
)
def test_normalize(raw: str | None, normalized: str | None) -> None:
    assert normalize_names([raw]) == [normalized]
