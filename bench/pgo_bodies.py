#!/usr/bin/env python3
"""Deterministic training bodies for bench/pgo.sh (the profile-guided build).

They are written apart from the bodies the benchmarks measure (bench/gen_bodies.py and the
inspection benchmark's documents) so that the optimised build is not taught its own test:
other schemas, other sizes, other locales, other formats. Synthetic values only: addresses
at example.com/.org/.net, numbers from the ranges set aside for drama and documentation or
with valid check digits computed here.

    python3 pgo_bodies.py OUT_DIR

writes one file per body and prints `NAME<TAB>CONTENT_TYPE` lines for the script.
"""

import json
import os
import sys
from urllib.parse import urlencode

FIRST = ("Ana", "Lukas", "Chloé", "Jan", "Giulia", "Mateus", "Sofia", "Pieter", "Zofia",
         "Erik", "Aiko", "Priya", "Tomás", "Noor", "Ines", "Karl")
LAST = ("Silva", "Becker", "Martin", "de Vries", "Rossi", "Santos", "García", "Jansen",
        "Nowak", "Lindqvist", "Tanaka", "Sharma", "Novák", "Haddad", "Costa", "Weber")
CITIES = (("Lisboa", "PT"), ("Köln", "DE"), ("Lyon", "FR"), ("Utrecht", "NL"), ("Torino", "IT"),
          ("Porto", "PT"), ("Sevilla", "ES"), ("Gent", "BE"), ("Kraków", "PL"),
          ("Uppsala", "SE"), ("Osaka", "JP"), ("Pune", "IN"), ("Brno", "CZ"), ("Austin", "US"))
PHONES = ("+351 21 000 0{:03d}", "+49 221 9990{:03d}", "+33 4 72 00 0{:03d}", "+31 30 200 0{:03d}",
          "+39 011 000 0{:03d}", "+34 954 000 {:03d}", "+48 12 000 0{:03d}", "+46 18 000 0{:03d}",
          "+1 512 555 0{:03d}", "+44 20 7946 0{:03d}")
AMENITIES = ("wifi", "parking", "breakfast", "pool", "gym", "spa", "pets", "bar", "terrace",
             "airport shuttle", "laundry", "kitchenette")
TEXT = ("Quiet room facing the courtyard, close to the old town and the river.",
        "Renovated in 2023; the lift does not reach the top floor.",
        "Check-in from 15:00, late arrivals by arrangement with the front desk.",
        "Family run since 1958, three minutes on foot from the main station.",
        "Bicycles for guests, a shared kitchen and a small library on the ground floor.")


def iban_de(n):
    """A German IBAN with valid check digits (bank code 37040044, account from n)."""
    bban = f"37040044{n:010d}"
    digits = "".join(str(int(c, 36)) for c in bban + "DE00")
    check = 98 - int(digits) % 97
    return f"DE{check:02d}{bban}"


def person(n):
    first, last = FIRST[n % len(FIRST)], LAST[(n * 7) % len(LAST)]
    city, country = CITIES[(n * 3) % len(CITIES)]
    return {
        "name": f"{first} {last}",
        "email": f"{first.lower()}.{last.lower().replace(' ', '')}{n}@example.org",
        "phone": PHONES[n % len(PHONES)].format(n % 1000),
        "address": {"street": f"Rua {LAST[n % len(LAST)]} {n % 90 + 1}", "city": city,
                    "postcode": f"{10000 + n * 37 % 89999}", "country": country},
        "iban": iban_de(1000 + n) if n % 3 == 0 else None,
        "date_of_birth": f"19{50 + n % 50}-{n % 12 + 1:02d}-{n % 28 + 1:02d}",
    }


def signups(count):
    return {"source": "mobile", "signups": [person(n) for n in range(count)]}


def listing(target):
    """Hotel listings without personal data, as many as fit `target` bytes."""
    hotels = []
    body = {"page": 1, "per_page": 0, "hotels": hotels}
    n = 0
    while len(json.dumps(body, ensure_ascii=False).encode()) < target:
        country = CITIES[n % len(CITIES)][1]
        hotels.append({
            "hotel_id": f"h-{n:06d}",
            "title": f"{('Harbour', 'Garden', 'Station', 'Old Town')[n % 4]} Hotel {n}",
            "market": country,
            "stars": 1 + n % 5,
            "score": round(6 + (n * 17 % 40) / 10, 1),
            "reviews": n * 31 % 4000,
            "price": {"value": 40 + n * 13 % 300, "unit": "EUR/night"},
            "amenities": [AMENITIES[(n + k) % len(AMENITIES)] for k in range(n % 5 + 1)],
            "photos": [f"https://img.example.net/h/{n:06d}/{k}.webp" for k in range(n % 3 + 1)],
            "about": TEXT[n % len(TEXT)],
            "updated": f"2026-0{n % 9 + 1}-{n % 28 + 1:02d}T{n % 24:02d}:{n % 60:02d}:00Z",
            "available": n % 4 != 0,
        })
        n += 1
    body["per_page"] = len(hotels)
    return body


def bookings(count):
    """Bookings with a guest on one in forty, the rest references and amounts."""
    rows = []
    for n in range(count):
        row = {"booking": f"B{n:07d}", "hotel": f"h-{n * 7 % 5000:06d}", "nights": 1 + n % 9,
               "total": {"amount": f"{90 + n * 41 % 2000}.{n % 100:02d}", "currency": "EUR"},
               "channel": ("web", "app", "agent")[n % 3], "status": ("paid", "held")[n % 2]}
        if n % 40 == 4:
            row["guest"] = person(n)
        rows.append(row)
    return {"export": "bookings", "rows": rows}


def form(n):
    p = person(n)
    return urlencode({"name": p["name"], "email": p["email"], "phone": p["phone"],
                      "city": p["address"]["city"], "newsletter": "yes"}).encode()


def multipart(n):
    p = person(n)
    b = "----domicile-pgo-boundary"
    parts = [
        f'--{b}\r\nContent-Disposition: form-data; name="name"\r\n\r\n{p["name"]}\r\n',
        f'--{b}\r\nContent-Disposition: form-data; name="email"\r\n\r\n{p["email"]}\r\n',
        f'--{b}\r\nContent-Disposition: form-data; name="cv"; filename="cv.txt"\r\n'
        f'Content-Type: text/plain\r\n\r\n{p["name"]}, {p["phone"]}. ' + " ".join(TEXT) + "\r\n",
        f"--{b}--\r\n",
    ]
    return "".join(parts).encode(), f"multipart/form-data; boundary={b}"


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    json_type = "application/json"
    bodies = [
        ("signup.json", json.dumps(person(3)).encode(), json_type),
        ("signups.json", json.dumps(signups(12), indent=2).encode(), json_type),
        ("listing-large.json", json.dumps(listing(300_000), separators=(",", ":")).encode(),
         json_type),
        ("listing-small.json", json.dumps(listing(8_000), ensure_ascii=False).encode(), json_type),
        ("bookings.json", json.dumps(bookings(600), separators=(",", ":")).encode(),
         json_type),
        ("signup.form", form(11), "application/x-www-form-urlencoded"),
        ("signup.multipart", *multipart(12)),
        ("note.txt", (" ".join(TEXT) + f" Call {person(5)['phone']}.").encode(), "text/plain"),
    ]
    for name, data, ctype in bodies:
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        print(f"{name}\t{ctype}")


if __name__ == "__main__":
    main()
