#!/usr/bin/env python3
"""Summarises bench/run.sh results: medians over blocks, ratios to nginx, latency over direct.

    python3 summarize.py RUN_DIR
    python3 summarize.py --verdict RUN_DIR SCENARIO BLOCK

reads RUN_DIR/results.tsv (one row per scenario x block x target) and RUN_DIR/meta.env,
writes RUN_DIR/summary.md and prints it; with --verdict, prints only whether that block is
clean ("clean", or "noisy: " and why), which bench/run.sh --clean-blocks counts.

Medians and within-block ratios are taken over the clean blocks of each scenario only: a block
is clean when every target's row in it has steal <= STEAL_LIMIT % and no unexpected response
or socket error (performance.md §8.4). A scenario without a clean block falls back to all its
blocks and is marked noisy. bench/run.sh --clean-blocks asks this module (--verdict).
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


def block_status(srows):
    """{block: [reasons it is not clean]} for one scenario's rows; an empty list means clean."""
    present = {r["target"] for r in srows}
    status = {}
    for b in sorted({r["block"] for r in srows}, key=int):
        brows = [r for r in srows if r["block"] == b]
        reasons = []
        noisy = [(num(r["steal_pct"]), r["target"]) for r in brows
                 if num(r["steal_pct"]) is not None and num(r["steal_pct"]) > STEAL_LIMIT]
        if noisy:
            st, t = max(noisy)
            digits = 1 if round(st, 1) > STEAL_LIMIT else 2  # 5.01 would print as 5.0
            reasons.append(f"steal {st:.{digits}f} % in {t}")
        errs = [r["target"] for r in brows
                if (num(r.get("unexpected")) or 0) > 0 or (num(r.get("sock_errors")) or 0) > 0]
        if errs:
            reasons.append(f"errors in {', '.join(errs)}")
        missing = [t for t in TARGETS if t in present and t not in {r["target"] for r in brows}]
        if missing:
            reasons.append(f"no row for {', '.join(missing)}")
        status[b] = reasons
    return status


def load_meta(path):
    meta = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    meta[k] = v
    return meta


def load_rows(run):
    with open(os.path.join(run, "results.tsv")) as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def verdict(run, scenario, block):
    """Prints "clean", or "noisy: " and why not, for one block of a run in progress (the rule
    bench/run.sh --clean-blocks counts by is this module's, so the two cannot disagree)."""
    srows = [r for r in load_rows(run) if r["scenario"] == scenario]
    reasons = block_status(srows).get(block, ["no rows"]) if srows else ["no rows"]
    print("noisy: " + "; ".join(reasons) if reasons else "clean")


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--verdict":
        verdict(*sys.argv[2:])
        return
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    run = sys.argv[1]
    meta = load_meta(os.path.join(run, "meta.env"))
    rows = load_rows(run)

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
    clean_goal = meta.get("clean_blocks", "")
    blocks_txt = (f"up to {meta.get('blocks', '?')} block(s) per scenario" if clean_goal
                  else f"{meta.get('blocks', '?')} block(s)")
    w(f"- {blocks_txt} × {meta.get('duration', '?')} s per point "
      f"(+{meta.get('warmup', '?')} s warm-up), targets interleaved direct → nginx → haproxy → domicile in each block")
    if clean_goal:
        w(f"- `--clean-blocks {clean_goal}`: each scenario ran blocks until {clean_goal} of them were clean "
          f"(every target's steal ≤ {STEAL_LIMIT:.0f} % and no errors) or {meta.get('blocks', '?')} blocks had run")
    w(f"- load generator on CPU {meta.get('client_cpu', '0')}, backend and proxies on CPU {meta.get('sut_cpu', '1')}; "
      f"{meta.get('tools', '')}")
    if meta.get("load_before"):
        w(f"- load average before / after the run: {meta.get('load_before')} / {meta.get('load_after', '?')} "
          "(anything else running on the two cores makes the numbers noise)")
    w("- CPU µs/req = Δ(utime+stime) of the process(es) ÷ completed requests "
      "(nginx: master + worker; backend shown separately). Values are medians over the clean blocks "
      f"of each scenario (every target's steal ≤ {STEAL_LIMIT:.0f} % and no bad response or socket error "
      "in that block; the others are left out, as performance.md §8.4 asks); ratios are computed within "
      "each block, then the median is taken. A scenario without a clean block falls back to all its "
      "blocks and is marked noisy. Bad responses and socket errors are summed over all blocks.")
    w("- Latency is from the load generator; closed-loop (wrk) percentiles at these concurrencies are "
      "queueing-dominated and are not the open-loop added latency of performance.md §8.3.")
    w("")

    compact = []
    split = []
    notes = []
    for sc in scenarios:
        srows = [r for r in rows if r["scenario"] == sc]
        first = srows[0]
        all_blocks = sorted({r["block"] for r in srows}, key=int)
        status = block_status(srows)
        clean = [b for b in all_blocks if not status[b]]
        fallback = not clean
        # Every median and ratio below is over these blocks; the checks look at all of them.
        blocks = clean if clean else all_blocks
        by = {(r["block"], r["target"]): r for r in srows}

        def val(b, t, k):
            r = by.get((b, t))
            return num(r.get(k)) if r else None

        w(f"## {first['title']}")
        w("")
        w(f"`{first['method']} {first['path']}`, body {first['body']}, c={first['conc']}, {first['tool']}")
        w("")
        left_out = ", ".join(f"{b} ({'; '.join(status[b])})" for b in all_blocks if status[b]) or "none"
        if fallback:
            w(f"**No clean block: medians over all {len(all_blocks)} blocks, noisy.** Every block had steal "
              f"> {STEAL_LIMIT:.0f} % or errors: {left_out}. Rerun on a quiet machine.")
        else:
            w(f"Medians over {len(clean)} of {len(all_blocks)} blocks (blocks with steal > {STEAL_LIMIT:.0f} % "
              f"or errors left out: {left_out}).")
        w("")
        w("| target | rps | p50 µs | p99 µs | +p50 vs direct | +p99 vs direct | proxy CPU µs/req | ÷ nginx | backend CPU µs/req | bad responses | socket errors |")
        w("|---|---|---|---|---|---|---|---|---|---|---|")
        ratio = {}
        added = {}
        for t in TARGETS:
            trs = [by[(b, t)] for b in blocks if (b, t) in by]
            all_trs = [by[(b, t)] for b in all_blocks if (b, t) in by]
            if not all_trs:
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
            bad = sum(int(num(r["unexpected"]) or 0) for r in all_trs)
            sock = sum(int(num(r["sock_errors"]) or 0) for r in all_trs)
            ratio[t] = rat
            added[t] = (add50, add99)
            cpu_cell = fmt(cpu, 2) if t != "direct" else "–"
            w(f"| {t} | {fmt_rps(rps)} | {fmt(p50, 0)} | {fmt(p99, 0)} | {fmt(add50, 0, True)} | "
              f"{fmt(add99, 0, True)} | {cpu_cell} | {fmt(rat, 2) if t != 'direct' else '–'} | "
              f"{fmt(bcpu, 2)} | {bad} | {sock} |")
            for r in all_trs:
                st = num(r["steal_pct"])
                if st is not None and st > STEAL_LIMIT:
                    notes.append(f"{sc} block {r['block']} {t}: steal {st:.1f} % (> {STEAL_LIMIT:.0f} %): discard or rerun")
            if bad or sock:
                notes.append(f"{sc} {t}: {bad} unexpected responses and {sock} socket errors over {len(all_trs)} block(s)")
        w("")
        per_block = []
        for b in blocks:
            d, n = val(b, "domicile", "proxy_cpu_us_req"), val(b, "nginx", "proxy_cpu_us_req")
            if d is not None and n:
                per_block.append(f"{d / n:.2f} (b{b})")
        if per_block:
            label = "per block (no clean block, all noisy)" if fallback else "per clean block"
            w(f"domicile ÷ nginx CPU {label}: {', '.join(per_block)}")
            w("")
        if first.get("note"):
            w(f"_{first['note']}_")
            w("")
        if fallback:
            notes.append(f"{sc}: no clean block of {len(all_blocks)}: its medians are over all blocks, noisy; rerun")
        elif clean_goal.isdigit() and len(clean) < int(clean_goal):
            notes.append(f"{sc}: {len(clean)} clean block(s) of the {clean_goal} asked for; the cap of "
                         f"{len(all_blocks)} blocks was reached")
        elif len(clean) < 3:
            notes.append(f"{sc}: only {len(clean)} clean block(s) of {len(all_blocks)}: medians need ≥ 3; "
                         "rerun, e.g. with --clean-blocks 3")
        # Trace sanity for Domicile (every block: it checks Domicile, not the machine).
        for b in all_blocks:
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
        mark = f"(no clean block: all {len(all_blocks)} blocks, noisy)" if fallback else ""
        split.append((sc, mark, {
            t: (med(val(b, t, "proxy_user_us_req") for b in blocks),
                med(val(b, t, "proxy_sys_us_req") for b in blocks))
            for t in ("nginx", "haproxy", "domicile")
        }, med(val(b, "domicile", "trace_threads_us_req") for b in blocks)))
        compact.append((sc, first["conc"], f"{len(clean)}/{len(all_blocks)}", mark,
                        med(val(b, "nginx", "proxy_cpu_us_req") for b in blocks),
                        med(val(b, "haproxy", "proxy_cpu_us_req") for b in blocks),
                        med(val(b, "domicile", "proxy_cpu_us_req") for b in blocks),
                        ratio.get("haproxy"), ratio.get("domicile"),
                        added.get("nginx", (None, None)), added.get("haproxy", (None, None)),
                        added.get("domicile", (None, None))))

    w("## Summary: proxy CPU per request and added latency (medians over clean blocks)")
    w("")
    w("| scenario | c | clean blocks | nginx µs/req | haproxy µs/req | domicile µs/req | haproxy/nginx | domicile/nginx | +p50/+p99 µs nginx | +p50/+p99 µs haproxy | +p50/+p99 µs domicile |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    for sc, c, nclean, mark, n, h, d, rh, rd, an, ah, ad in compact:
        rd_cell = f"**{fmt(rd, 2)}**" + (f" {mark}" if mark else "")
        w(f"| {sc} | {c} | {nclean} | {fmt(n, 2)} | {fmt(h, 2)} | {fmt(d, 2)} | {fmt(rh, 2)} | {rd_cell} | "
          f"{fmt(an[0], 0, True)} / {fmt(an[1], 0, True)} | {fmt(ah[0], 0, True)} / {fmt(ah[1], 0, True)} | "
          f"{fmt(ad[0], 0, True)} / {fmt(ad[1], 0, True)} |")
    w("")
    # Older results files have no user/system columns.
    if any(u is not None for _, _, by_t, _ in split for u, _ in by_t.values()):
        w("## Where the proxy CPU goes: user space / kernel (µs per request, medians over clean blocks)")
        w("")
        w("The ratio moves with the machine: a proxy that spends most of its time in the kernel (nginx) "
          "gains or loses less than one that spends it in user space when the host's user-space speed changes.")
        w("")
        w("Domicile's trace writer threads (the flusher that writes `none`-durability records to their files, "
          "or the writer that syncs them) are part of its CPU; the last column gives their share, exact from "
          "each thread's schedstat.")
        w("")
        w("| scenario | nginx user / kernel | haproxy user / kernel | domicile user / kernel | domicile ÷ nginx, user | domicile ÷ nginx, kernel | of domicile's, trace writer threads |")
        w("|---|---|---|---|---|---|---|")
        for sc, mark, by_t, tw in split:
            (nu, ns), (hu, hs), (du, ds) = by_t["nginx"], by_t["haproxy"], by_t["domicile"]
            ru = du / nu if du is not None and nu else None
            rs = ds / ns if ds is not None and ns else None
            w(f"| {sc}{' ' + mark if mark else ''} | {fmt(nu, 2)} / {fmt(ns, 2)} | {fmt(hu, 2)} / {fmt(hs, 2)} | "
              f"{fmt(du, 2)} / {fmt(ds, 2)} | {fmt(ru, 2)} | {fmt(rs, 2)} | {fmt(tw, 2)} |")
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
