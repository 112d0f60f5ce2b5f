#!/usr/bin/env python3
"""Deterministic JSON request bodies for bench/run.sh.

No real personal data: every address is at example.com and every phone number is a
+49 30 901820xx-style Berlin number. The output is byte-for-byte the same on every run
(no randomness, no clock), so results from different runs price the same bytes.

    python3 gen_bodies.py OUT_DIR

writes
    pii-1k.json   exactly 1024 bytes: one customer record with an email and a +49 phone
    pii-64k.json  exactly 65536 bytes: order lines, personal data on about 1 record in 40
"""

import hashlib
import json
import os
import sys

WORDS = (
    "cotton linen wool blue green grey large small classic slim regular organic recycled "
    "summer winter travel office garden kitchen shelf lamp chair table desk cable adapter"
).split()


def compact(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True)


def pad_to(obj, size, field="note"):
    """Sets obj[field] to a filler string so that the compact JSON is exactly `size` bytes."""
    obj[field] = ""
    base = len(compact(obj).encode())
    if base > size:
        raise SystemExit(f"body without padding is {base} bytes, more than {size}")
    obj[field] = "x" * (size - base)
    out = compact(obj).encode()
    assert len(out) == size, (len(out), size)
    return out


def words(n, k):
    return " ".join(WORDS[(n * 7 + i * 13) % len(WORDS)] for i in range(k))


def pii_1k():
    body = {
        "customer": {
            "id": "cust-000042",
            "name": "Erika Mustermann",
            "email": "erika.mustermann@example.com",
            "phone": "+49 30 90182042",
            "address": {
                "street": "Musterstrasse 1",
                "city": "Berlin",
                "postcode": "10115",
                "country": "DE",
            },
            "marketing_opt_in": False,
        },
        "order": {
            "id": "ord-2024-000042",
            "currency": "EUR",
            "items": [
                {"sku": f"SKU-{100 + i:05d}", "qty": 1 + i % 3, "price_cents": 999 + 250 * i,
                 "title": words(i, 3)}
                for i in range(4)
            ],
        },
    }
    return pad_to(body, 1024)


def sparse_64k():
    records = []
    body = {"batch": "batch-000007", "source": "bench", "records": records}
    n = 0
    # Fill to a little under 64 KiB, then pad exactly.
    while True:
        rec = {
            "line": n,
            "sku": f"SKU-{n:05d}",
            "qty": 1 + n % 5,
            "price_cents": 499 + (n * 37) % 5000,
            "warehouse": ("fra-1", "fra-2", "ber-1", "muc-1")[n % 4],
            "title": words(n, 4),
        }
        if n % 40 == 7:
            # Sparse personal data: a contact on about one record in forty.
            rec["contact"] = {
                "email": f"customer{n:04d}@example.com",
                "phone": f"+49 30 901820{n % 100:02d}",
            }
        records.append(rec)
        if len(compact(body).encode()) > 65536 - 300:
            records.pop()
            break
        n += 1
    return pad_to(body, 65536)


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, data in (("pii-1k.json", pii_1k()), ("pii-64k.json", sparse_64k())):
        path = os.path.join(out, name)
        with open(path, "wb") as f:
            f.write(data)
        json.loads(data)  # must stay valid JSON
        print(f"{name}\t{len(data)}\tsha256:{hashlib.sha256(data).hexdigest()[:16]}")


if __name__ == "__main__":
    main()
