#!/usr/bin/env python3
"""Normalises one load-generator output for bench/run.sh.

    python3 parse_load.py wrk|oha|h2load OUTPUT_FILE

prints one line: requests duration_us non2xx sock_errors p50_us p90_us p99_us
(non2xx = responses with a status >= 400 for wrk, any non-2xx for oha/h2load).
"""

import json
import re
import sys


def pct(sorted_xs, p):
    if not sorted_xs:
        return 0
    k = min(len(sorted_xs) - 1, max(0, int(round(p / 100.0 * len(sorted_xs) + 0.5)) - 1))
    return sorted_xs[k]


def parse_wrk(text):
    m = re.search(r"^WRK_RESULT (.*)$", text, re.M)
    if not m:
        raise SystemExit("no WRK_RESULT line in the wrk output")
    kv = dict(x.split("=", 1) for x in m.group(1).split())
    non2xx = int(kv["status"])
    m2 = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    if m2:
        non2xx = max(non2xx, int(m2.group(1)))
    sock = sum(int(kv[k]) for k in ("connect", "read", "write", "timeout"))
    return (int(kv["requests"]), int(kv["duration_us"]), non2xx, sock,
            int(kv["p50_us"]), int(kv["p90_us"]), int(kv["p99_us"]))


def parse_oha(text):
    j = json.loads(text[text.index("{"):])
    codes = {int(k): v for k, v in (j.get("statusCodeDistribution") or {}).items()}
    requests = sum(codes.values())
    non2xx = sum(v for k, v in codes.items() if not 200 <= k < 300)
    sock = sum((j.get("errorDistribution") or {}).values())
    lp = j["latencyPercentiles"]
    us = lambda s: int(round((s or 0) * 1e6))
    dur = int(round(j["summary"]["total"] * 1e6))
    return (requests, dur, non2xx, sock, us(lp.get("p50")), us(lp.get("p90")), us(lp.get("p99")))


def parse_h2load(text, log_path):
    m = re.search(r"finished in ([\d.]+)(ms|s|us)", text)
    scale = {"s": 1e6, "ms": 1e3, "us": 1}
    dur = int(float(m.group(1)) * scale[m.group(2)]) if m else 0
    m = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout", text)
    done = int(m.group(1)) if m else 0
    sock = int(m.group(4)) + int(m.group(5)) if m else 0
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    non2xx = sum(int(m.group(i)) for i in (2, 3, 4)) if m else 0
    lat = []
    with open(log_path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                lat.append(int(parts[2]))
    lat.sort()
    return (done, dur, non2xx, sock, pct(lat, 50), pct(lat, 90), pct(lat, 99))


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    tool, path = sys.argv[1], sys.argv[2]
    text = open(path, errors="replace").read()
    if tool == "wrk":
        r = parse_wrk(text)
    elif tool == "oha":
        r = parse_oha(text)
    elif tool == "h2load":
        r = parse_h2load(text, path + ".log")
    else:
        raise SystemExit(f"unknown tool {tool}")
    print(" ".join(str(x) for x in r))


if __name__ == "__main__":
    main()
