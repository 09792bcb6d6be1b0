#!/usr/bin/env python3
"""Generates a realistic newline-delimited JSON file of clickstream events for the conversion
benchmark, plus its Glue-style schema ([name, hive type] pairs).

    gen.py OUT.jsonl [--records 1000000] [--seed 42] [--schema OUT.schema.json]

Each record is ~345 bytes with 13 fields: ULID and hex ids, an ISO-8601 timestamp with milliseconds,
integers, a double, a boolean, low-cardinality strings, URLs, nulls (~30% of referrers, ~40%
of prices), a nested struct and an array. Deterministic for a given seed.
"""

import argparse
import datetime
import json
import random
import uuid

SCHEMA = [
    ["event_id", "string"],
    ["event_time", "timestamp"],
    ["user_id", "bigint"],
    ["session_id", "string"],
    ["event_type", "string"],
    ["page_url", "string"],
    ["referrer", "string"],
    ["duration_ms", "int"],
    ["price", "double"],
    ["is_mobile", "boolean"],
    ["country", "string"],
    ["device", "struct<os:string,version:string,model:string>"],
    ["tags", "array<string>"],
]

EVENT_TYPES = ["page_view"] * 6 + ["click"] * 3 + ["add_to_cart", "purchase", "search", "signup"]
COUNTRIES = ["US", "DE", "FR", "GB", "JP", "BR", "IN", "CA", "ES", "IT", "NL", "SE", "PL", "MX"]
PATHS = ["products", "category", "search", "cart", "checkout", "account", "blog", "help"]
REFERRERS = ["google.com", "bing.com", "t.co", "facebook.com", "news.ycombinator.com", "duckduckgo.com"]
DEVICES = [
    ("iOS", ["17.4.1", "17.5", "16.7.8"], ["iPhone15,2", "iPhone14,5", "iPad13,4"]),
    ("Android", ["14", "13", "12"], ["Pixel 8", "SM-S911B", "SM-A536B"]),
    ("Windows", ["10", "11"], ["Desktop"]),
    ("macOS", ["14.4", "13.6"], ["MacBookPro18,1", "iMac21,1"]),
]
TAGS = ["promo", "new", "sale", "returning", "vip", "mobile-app", "email", "organic", "paid", "beta"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--schema")
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    base_ms = 1_714_521_600_000  # 2024-05-01T00:00:00Z
    crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    sessions = [uuid.UUID(int=rnd.getrandbits(128)).hex[:12] for _ in range(50_000)]
    with open(args.out, "w", encoding="utf-8") as f:
        for i in range(args.records):
            ms = base_ms + i * 86 + rnd.randrange(0, 50)
            t = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
            event_time = t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
            # A ULID: 48-bit time + 80 random bits, Crockford base32.
            n = (ms << 80) | rnd.getrandbits(80)
            event_id = "".join(crockford[(n >> (5 * k)) & 31] for k in range(25, -1, -1))
            os_name, versions, models = rnd.choice(DEVICES)
            path = rnd.choice(PATHS)
            item = rnd.randrange(1, 100_000)
            rec = {
                "event_id": event_id,
                "event_time": event_time,
                "user_id": rnd.randrange(1, 5_000_000),
                "session_id": rnd.choice(sessions),
                "event_type": rnd.choice(EVENT_TYPES),
                "page_url": f"/{path}/{item}?p={rnd.randrange(1, 20)}",
                "referrer": rnd.choice(REFERRERS) if rnd.random() < 0.7 else None,
                "duration_ms": rnd.randrange(0, 120_000),
                "price": round(rnd.uniform(1, 500), 2) if rnd.random() < 0.6 else None,
                "is_mobile": os_name in ("iOS", "Android"),
                "country": rnd.choice(COUNTRIES),
                "device": {
                    "os": os_name,
                    "version": rnd.choice(versions),
                    "model": rnd.choice(models),
                },
                "tags": rnd.sample(TAGS, rnd.randrange(0, 3)),
            }
            f.write(json.dumps(rec, separators=(",", ":")))
            f.write("\n")
    if args.schema:
        with open(args.schema, "w", encoding="utf-8") as f:
            json.dump(SCHEMA, f)


if __name__ == "__main__":
    main()
