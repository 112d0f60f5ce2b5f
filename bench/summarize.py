#!/usr/bin/env python3
"""Summarises bench/run.sh results: medians over blocks, ratios to nginx, latency over direct.

    python3 summarize.py RUN_DIR

reads RUN_DIR/results.tsv (one row per scenario x block x target) and RUN_DIR/meta.env,
writes RUN_DIR/summary.md and prints it.
"""

import csv
import os
import statistics
import sys

TARGETS = ("direct", "nginx", "haproxy", "domicile")
STEAL_LIMIT = 5.0


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, digits=1, signed=False):
    if x is None:
        return "–"
    s = f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"
    return s


def fmt_rps(x):
    if x is None:
        return "–"
    return f"{x / 1000:.1f}k" if x >= 10000 else f"{x:.0f}"


def load_meta(path):
    meta = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    meta[k] = v
    return meta


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    run = sys.argv[1]
    meta = load_meta(os.path.join(run, "meta.env"))
    with open(os.path.join(run, "results.tsv")) as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))

    scenarios = []
    for r in rows:
        if r["scenario"] not in scenarios:
            scenarios.append(r["scenario"])

    out = []
    w = out.append
    w(f"# Domicile bench summary — {meta.get('timestamp', '?')}")
    w("")
    w(f"- commit `{meta.get('git_rev', '?')}`{' (work tree modified)' if meta.get('git_dirty') == 'yes' else ''}, "
      f"domicile binary built {meta.get('domicile_built', '?')}, durability `{meta.get('durability', '?')}`")
    w(f"- {meta.get('blocks', '?')} block(s) × {meta.get('duration', '?')} s per point "
      f"(+{meta.get('warmup', '?')} s warm-up), targets interleaved direct → nginx → haproxy → domicile in each block")
    w(f"- load generator on CPU {meta.get('client_cpu', '0')}, backend and proxies on CPU {meta.get('sut_cpu', '1')}; "
      f"{meta.get('tools', '')}")
    if meta.get("load_before"):
        w(f"- load average before / after the run: {meta.get('load_before')} / {meta.get('load_after', '?')} "
          "(anything else running on the two cores makes the numbers noise)")
    w("- CPU µs/req = Δ(utime+stime) of the process(es) ÷ completed requests "
      "(nginx: master + worker; backend shown separately). Values are medians over blocks; "
      "ratios are computed within each block, then the median is taken.")
    w("- Latency is from the load generator; closed-loop (wrk) percentiles at these concurrencies are "
      "queueing-dominated and are not the open-loop added latency of performance.md §8.3.")
    w("")

    compact = []
    split = []
    notes = []
    for sc in scenarios:
        srows = [r for r in rows if r["scenario"] == sc]
        first = srows[0]
        blocks = sorted({r["block"] for r in srows}, key=int)
        by = {(r["block"], r["target"]): r for r in srows}

        def val(b, t, k):
            r = by.get((b, t))
            return num(r.get(k)) if r else None

        w(f"## {first['title']}")
        w("")
        w(f"`{first['method']} {first['path']}`, body {first['body']}, c={first['conc']}, {first['tool']}")
        w("")
        w("| target | rps | p50 µs | p99 µs | +p50 vs direct | +p99 vs direct | proxy CPU µs/req | ÷ nginx | backend CPU µs/req | bad responses | socket errors |")
        w("|---|---|---|---|---|---|---|---|---|---|---|")
        ratio = {}
        added = {}
        for t in TARGETS:
            trs = [by[(b, t)] for b in blocks if (b, t) in by]
            if not trs:
                continue
            rps = med(num(r["rps"]) for r in trs)
            p50 = med(num(r["p50_us"]) for r in trs)
            p99 = med(num(r["p99_us"]) for r in trs)
            add50 = med(
                (val(b, t, "p50_us") - val(b, "direct", "p50_us"))
                if val(b, t, "p50_us") is not None and val(b, "direct", "p50_us") is not None else None
                for b in blocks
            ) if t != "direct" else None
            add99 = med(
                (val(b, t, "p99_us") - val(b, "direct", "p99_us"))
                if val(b, t, "p99_us") is not None and val(b, "direct", "p99_us") is not None else None
                for b in blocks
            ) if t != "direct" else None
            cpu = med(num(r["proxy_cpu_us_req"]) for r in trs)
            rat = med(
                (val(b, t, "proxy_cpu_us_req") / val(b, "nginx", "proxy_cpu_us_req"))
                if val(b, t, "proxy_cpu_us_req") and val(b, "nginx", "proxy_cpu_us_req") else None
                for b in blocks
            ) if t not in ("direct",) else None
            bcpu = med(num(r["backend_cpu_us_req"]) for r in trs)
            bad = sum(int(num(r["unexpected"]) or 0) for r in trs)
            sock = sum(int(num(r["sock_errors"]) or 0) for r in trs)
            ratio[t] = rat
            added[t] = (add50, add99)
            cpu_cell = fmt(cpu, 2) if t != "direct" else "–"
            w(f"| {t} | {fmt_rps(rps)} | {fmt(p50, 0)} | {fmt(p99, 0)} | {fmt(add50, 0, True)} | "
              f"{fmt(add99, 0, True)} | {cpu_cell} | {fmt(rat, 2) if t != 'direct' else '–'} | "
              f"{fmt(bcpu, 2)} | {bad} | {sock} |")
            for r in trs:
                st = num(r["steal_pct"])
                if st is not None and st > STEAL_LIMIT:
                    notes.append(f"{sc} block {r['block']} {t}: steal {st:.1f} % (> {STEAL_LIMIT:.0f} %): discard or rerun")
            if bad or sock:
                notes.append(f"{sc} {t}: {bad} unexpected responses and {sock} socket errors over {len(trs)} block(s)")
        w("")
        if first.get("note"):
            w(f"_{first['note']}_")
            w("")
        # Trace sanity for Domicile.
        for b in blocks:
            r = by.get((b, "domicile"))
            if r and r.get("trace_delta") not in (None, "", "NA"):
                d = int(num(r["trace_delta"]))
                n = int(num(r["requests"]))
                c = int(num(r["conc"]))
                ok = n <= d <= n + 2 * c
                o = r.get("outcome_delta")
                o_txt = f", +{int(num(o))} outcome lines" if o not in (None, "", "NA") else ""
                notes.append(
                    f"trace sanity {sc} b{b}: {n} requests completed, +{d} decision records{o_txt}: "
                    f"{'OK' if ok else 'MISMATCH'} (decision records expected {n}–{n + 2 * c})"
                )
        split.append((sc, {
            t: (med(val(b, t, "proxy_user_us_req") for b in blocks),
                med(val(b, t, "proxy_sys_us_req") for b in blocks))
            for t in ("nginx", "haproxy", "domicile")
        }))
        compact.append((sc, first["conc"], med(val(b, "nginx", "proxy_cpu_us_req") for b in blocks),
                        med(val(b, "haproxy", "proxy_cpu_us_req") for b in blocks),
                        med(val(b, "domicile", "proxy_cpu_us_req") for b in blocks),
                        ratio.get("haproxy"), ratio.get("domicile"),
                        added.get("nginx", (None, None)), added.get("haproxy", (None, None)),
                        added.get("domicile", (None, None))))

    w("## Summary: proxy CPU per request and added latency (medians over blocks)")
    w("")
    w("| scenario | c | nginx µs/req | haproxy µs/req | domicile µs/req | haproxy/nginx | domicile/nginx | +p50/+p99 µs nginx | +p50/+p99 µs haproxy | +p50/+p99 µs domicile |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for sc, c, n, h, d, rh, rd, an, ah, ad in compact:
        w(f"| {sc} | {c} | {fmt(n, 2)} | {fmt(h, 2)} | {fmt(d, 2)} | {fmt(rh, 2)} | **{fmt(rd, 2)}** | "
          f"{fmt(an[0], 0, True)} / {fmt(an[1], 0, True)} | {fmt(ah[0], 0, True)} / {fmt(ah[1], 0, True)} | "
          f"{fmt(ad[0], 0, True)} / {fmt(ad[1], 0, True)} |")
    w("")
    # Older results files have no user/system columns.
    if any(u is not None for _, by_t in split for u, _ in by_t.values()):
        w("## Where the proxy CPU goes: user space / kernel (µs per request, medians over blocks)")
        w("")
        w("The ratio moves with the machine: a proxy that spends most of its time in the kernel (nginx) "
          "gains or loses less than one that spends it in user space when the host's user-space speed changes.")
        w("")
        w("| scenario | nginx user / kernel | haproxy user / kernel | domicile user / kernel | domicile ÷ nginx, user | domicile ÷ nginx, kernel |")
        w("|---|---|---|---|---|---|")
        for sc, by_t in split:
            (nu, ns), (hu, hs), (du, ds) = by_t["nginx"], by_t["haproxy"], by_t["domicile"]
            ru = du / nu if du is not None and nu else None
            rs = ds / ns if ds is not None and ns else None
            w(f"| {sc} | {fmt(nu, 2)} / {fmt(ns, 2)} | {fmt(hu, 2)} / {fmt(hs, 2)} | "
              f"{fmt(du, 2)} / {fmt(ds, 2)} | {fmt(ru, 2)} | {fmt(rs, 2)} |")
        w("")
    if notes:
        w("## Checks and warnings")
        w("")
        w("Trace sanity: Domicile's new decision records (schema domicile.decision) must be at least the completed "
          "requests and at most 2c more (requests still in flight when the load generator stopped, and the last "
          "warm-up ones). Outcome lines (schema domicile.outcome) follow forwarded requests only, are written "
          "without waiting and may be dropped under load; they are shown, not checked.")
        w("")
        for n in notes:
            w(f"- {n}")
        w("")
    if int(meta.get("blocks", "3") or 3) < 3:
        w(f"_Only {meta.get('blocks')} block(s): a smoke run. Medians need ≥ 3 blocks; do not compare these numbers._")
        w("")
    if meta.get("extra_note"):
        w(f"_{meta['extra_note']}_")
        w("")

    text = "\n".join(out)
    with open(os.path.join(run, "summary.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
