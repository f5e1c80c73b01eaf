"""Generate the shipped synthetic company directory (pipeline/reference/company_directory.csv).

The directory maps an e-mail domain to a company: name, industry, size band,
employees, country, postal code and city. It is synthetic (invented names on
`.example`-free but fictional domains) with a fixed seed, so the file is the same
on every run; the demo companies of `pipeline.dev.traffic` are included so demo
leads find their company. Replace it with a real directory by writing a CSV
with the same header (see README, "Enrichment") and pointing
`company_directory` in pipeline/defaults/rules/enrichment.yaml at it.

    python scripts/generate_company_directory.py [--count 3000] [--seed 2026]
"""

from __future__ import annotations

import argparse
import csv
import random
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.dev.traffic import COMPANIES  # noqa: E402

OUT = ROOT / "pipeline" / "reference" / "company_directory.csv"
HEADER = ["domain", "name", "industry", "size_band", "employees", "country", "postal_code", "city"]

INDUSTRIES = [
    ("IT", 0.14),
    ("Software", 0.10),
    ("Manufacturing", 0.14),
    ("Automotive", 0.06),
    ("Finance", 0.06),
    ("Consulting", 0.08),
    ("Logistics", 0.07),
    ("Healthcare", 0.07),
    ("Telecommunications", 0.04),
    ("Retail", 0.08),
    ("Construction", 0.06),
    ("Energy", 0.04),
    ("Education", 0.03),
    ("Public Sector", 0.03),
]
SIZE_BANDS = [
    ("1-9", 1, 9, 0.30),
    ("10-49", 10, 49, 0.32),
    ("50-249", 50, 249, 0.22),
    ("250-999", 250, 999, 0.10),
    ("1000+", 1000, 60000, 0.06),
]
PLACES = {
    "DE": [
        ("10115", "Berlin"),
        ("10969", "Berlin"),
        ("12439", "Berlin"),
        ("14467", "Potsdam"),
        ("20095", "Hamburg"),
        ("22767", "Hamburg"),
        ("28195", "Bremen"),
        ("30159", "Hannover"),
        ("38100", "Braunschweig"),
        ("24103", "Kiel"),
        ("18055", "Rostock"),
        ("01067", "Dresden"),
        ("04109", "Leipzig"),
        ("09111", "Chemnitz"),
        ("06108", "Halle (Saale)"),
        ("39104", "Magdeburg"),
        ("99084", "Erfurt"),
        ("07743", "Jena"),
        ("40213", "Düsseldorf"),
        ("44135", "Dortmund"),
        ("45127", "Essen"),
        ("47051", "Duisburg"),
        ("48143", "Münster"),
        ("50667", "Köln"),
        ("52062", "Aachen"),
        ("53111", "Bonn"),
        ("33602", "Bielefeld"),
        ("60311", "Frankfurt am Main"),
        ("64283", "Darmstadt"),
        ("65183", "Wiesbaden"),
        ("34117", "Kassel"),
        ("55116", "Mainz"),
        ("67059", "Ludwigshafen"),
        ("54290", "Trier"),
        ("66111", "Saarbrücken"),
        ("70173", "Stuttgart"),
        ("68159", "Mannheim"),
        ("76133", "Karlsruhe"),
        ("79098", "Freiburg im Breisgau"),
        ("89073", "Ulm"),
        ("69117", "Heidelberg"),
        ("80331", "München"),
        ("81667", "München"),
        ("90402", "Nürnberg"),
        ("86150", "Augsburg"),
        ("93047", "Regensburg"),
        ("97070", "Würzburg"),
        ("85049", "Ingolstadt"),
        ("94032", "Passau"),
    ],
    "AT": [
        ("1010", "Wien"),
        ("8010", "Graz"),
        ("4020", "Linz"),
        ("5020", "Salzburg"),
        ("6020", "Innsbruck"),
    ],
    "CH": [
        ("8001", "Zürich"),
        ("3011", "Bern"),
        ("4051", "Basel"),
        ("1201", "Genève"),
        ("6003", "Luzern"),
    ],
    "NL": [("1012", "Amsterdam"), ("3011", "Rotterdam"), ("3511", "Utrecht")],
    "FR": [("75001", "Paris"), ("69001", "Lyon"), ("67000", "Strasbourg")],
    "GB": [("EC1A 1BB", "London"), ("M1 1AE", "Manchester"), ("B1 1AA", "Birmingham")],
    "PL": [("00-001", "Warszawa"), ("30-001", "Kraków")],
}
COUNTRIES = [
    ("DE", 0.70),
    ("AT", 0.08),
    ("CH", 0.07),
    ("NL", 0.04),
    ("FR", 0.04),
    ("GB", 0.04),
    ("PL", 0.03),
]
TLD = {"DE": "de", "AT": "at", "CH": "ch", "NL": "nl", "FR": "fr", "GB": "co.uk", "PL": "pl"}
LEGAL = {
    "DE": ["GmbH", "GmbH", "AG", "KG", "GmbH & Co. KG", "e.K."],
    "AT": ["GmbH", "AG"],
    "CH": ["AG", "GmbH"],
    "NL": ["B.V."],
    "FR": ["SARL", "SAS"],
    "GB": ["Ltd"],
    "PL": ["Sp. z o.o."],
}
PREFIX = [
    "Nord",
    "Süd",
    "West",
    "Ost",
    "Rhein",
    "Main",
    "Elbe",
    "Weser",
    "Isar",
    "Spree",
    "Alpen",
    "Hanse",
    "Donau",
    "Harz",
    "Taunus",
    "Eifel",
    "Mosel",
    "Neckar",
    "Ruhr",
    "Saale",
    "Havel",
    "Oder",
    "Allgäu",
    "Schwarzwald",
    "Baltic",
    "Atlas",
    "Delta",
    "Nova",
    "Polar",
    "Vektor",
    "Kompass",
    "Stern",
    "Falken",
    "Adler",
    "Linden",
    "Eichen",
    "Berg",
    "Tal",
    "Brücken",
    "Hafen",
]
CORE = {
    "IT": ["Systemhaus", "IT-Service", "Netzwerk", "Datentechnik", "Cloud", "Digital"],
    "Software": ["Software", "Soft", "Apps", "Code", "Solutions", "Informatik"],
    "Manufacturing": ["Maschinenbau", "Werkzeugbau", "Fertigung", "Metallbau", "Anlagenbau"],
    "Automotive": ["Fahrzeugtechnik", "Motorsysteme", "Autoteile", "Antriebstechnik"],
    "Finance": ["Finanz", "Capital", "Vermögen", "Leasing", "Versicherungsmakler"],
    "Consulting": ["Consulting", "Beratung", "Partners", "Strategie", "Management"],
    "Logistics": ["Logistik", "Spedition", "Transport", "Cargo", "Lager"],
    "Healthcare": ["Medizintechnik", "Pflege", "Labor", "Health", "Dental"],
    "Telecommunications": ["Telekom", "Kommunikation", "Netz", "Funk"],
    "Retail": ["Handel", "Markt", "Versand", "Store", "Fachhandel"],
    "Construction": ["Bau", "Hochbau", "Haustechnik", "Elektro", "Immobilien"],
    "Energy": ["Energie", "Solar", "Stadtwerke", "Wind", "Power"],
    "Education": ["Akademie", "Bildung", "Schulung", "Campus"],
    "Public Sector": ["Zweckverband", "Kommunal", "Verwaltung"],
}
UMLAUT = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "é": "e"})


def pick(rng: random.Random, weighted: list[tuple[str, float]]) -> str:
    return rng.choices([w[0] for w in weighted], [w[1] for w in weighted])[0]


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower().translate(UMLAUT)).strip("-")


def size_band(employees: int) -> str:
    return next(band for band, low, high, _ in SIZE_BANDS if low <= employees <= high)


def generate(count: int, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    rows: dict[str, list[str]] = {}
    for name, domain, industry, employees in COMPANIES:  # the demo's companies
        country = {"at": "AT", "ch": "CH", "fr": "FR", "uk": "GB"}.get(
            domain.rsplit(".", 1)[1], "DE"
        )
        postal, city = PLACES[country][0]
        rows[domain] = [
            domain,
            name,
            industry,
            size_band(employees),
            str(employees),
            country,
            postal,
            city,
        ]
    while len(rows) < count:
        country = pick(rng, COUNTRIES)
        industry = pick(rng, INDUSTRIES)
        band, low, high, _ = rng.choices(SIZE_BANDS, [b[3] for b in SIZE_BANDS])[0]
        employees = rng.randint(low, min(high, 5000 if band != "1000+" else high))
        base = f"{rng.choice(PREFIX)} {rng.choice(CORE[industry])}"
        name = f"{base} {rng.choice(LEGAL[country])}"
        domain = f"{slug(base)}.{TLD[country]}"
        if domain in rows:
            domain = (
                f"{slug(base)}-{rng.choice(['gruppe', 'online', 'service', 'team'])}.{TLD[country]}"
            )
        if domain in rows:
            continue
        postal, city = rng.choice(PLACES[country])
        rows[domain] = [domain, name, industry, band, str(employees), country, postal, city]
    return sorted(rows.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    rows = generate(args.count, args.seed)
    with args.out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerows(rows)
    print(f"wrote {len(rows)} companies to {args.out}")


if __name__ == "__main__":
    main()
