"""The geography seeds: rebuilt from their packages they equal what is committed, and the
city seed's state codes are real ISO 3166-2 codes (what MusicBrainz gives an area), checked
against pycountry's list, which the builder does not use."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pycountry

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "transform" / "seeds"


def _cities() -> list[dict[str, str]]:
    with (SEEDS / "cities_with_lat_long.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_committed_seeds_are_what_the_builder_writes(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_geography.py"), str(tmp_path)],
        check=True,
        capture_output=True,
    )
    for name in ("country_geography.csv", "cities_with_lat_long.csv"):
        assert (tmp_path / name).read_bytes() == (SEEDS / name).read_bytes(), (
            f"transform/seeds/{name} differs from what scripts/build_geography.py writes: "
            "run the script and commit its output"
        )


def test_state_codes_are_iso_3166_2_of_the_citys_country() -> None:
    iso = {sub.code for sub in pycountry.subdivisions}
    rows = _cities()
    coded = [row for row in rows if row["state_code"]]
    wrong = [
        (row["city"], row["state_code"], row["country_code"])
        for row in coded
        if row["state_code"] not in iso
        or not row["state_code"].startswith(row["country_code"] + "-")
    ]
    assert not wrong, f"{len(wrong)} state codes are not ISO 3166-2: {wrong[:10]}"
    # GeoNames' numeric admin1 codes were 28,526 of 34,006 before the mapping
    assert len(coded) / len(rows) > 0.97


def test_known_cities_carry_their_musicbrainz_subdivision() -> None:
    by_city = {(row["city"], row["country_code"]): row["state_code"] for row in _cities()}
    # the case (GeoNames CA.08), a Swedish county (SE.26), a German Land (DE.16),
    # and a US state, whose GeoNames code already was the ISO one
    assert by_city[("Toronto", "CA")] == "CA-ON"
    assert by_city[("Stockholm", "SE")] == "SE-AB"
    assert by_city[("Berlin", "DE")] == "DE-BE"
    assert by_city[("Chicago", "US")] == "US-IL"
