#!/usr/bin/env python3
"""Builds the markdown table of one harness run from RAW/measurements.tsv.

    report.py RAW_DIR > table.md

Every figure is the median of the runs of this harness invocation; every ratio
divides two medians of the same invocation.
"""

import csv
import re
import statistics
import sys

NODE_RPS = 1660  # the Node/Express/knex predecessor on Postgres (issue 4)

raw = sys.argv[1]
rows = list(csv.DictReader(open(f"{raw}/measurements.tsv"), delimiter="\t"))
machine = open(f"{raw}/machine.txt").read().strip()


def values(kind, label):
    return [float(r["value"]) for r in rows if r["kind"] == kind and r["label"] == label]


def extras(kind, label, key):
    out = []
    for r in rows:
        if r["kind"] == kind and r["label"] == label:
            m = re.search(rf"(?:^| ){re.escape(key)}=(\S+)", r["extra"])
            if m:
                try:
                    out.append(float(m.group(1)))
                except ValueError:
                    pass
    return out


def med(xs):
    return statistics.median(xs) if xs else None


def rate(label, kind="throughput"):
    xs = values(kind, label)
    if not xs:
        return None, "not measured"
    spread = f" (n={len(xs)}, {min(xs):,.0f}–{max(xs):,.0f})" if len(xs) > 1 else ""
    return med(xs), f"{med(xs):,.0f}{spread}"


def latency(label):
    got = {r["run"]: float(r["value"]) for r in rows if r["kind"] == "latency" and r["label"] == label}
    if not got:
        return None
    extra = next(r["extra"] for r in rows if r["kind"] == "latency" and r["label"] == label)
    return got, extra


def verdict(ok):
    if ok is None:
        return "n/a"
    return "**pass**" if ok else "**FAIL**"


table = []


def row(figure, value, target="", result=""):
    table.append(f"| {figure} | {value} | {target} | {result} |")


health, health_s = rate("health")
mem, mem_s = rate("memory-mix")
pg, pg_s = rate("pg-mix")
floor_u, floor_u_s = rate("floor-upsert", "floor")
floor_o, floor_o_s = rate("floor-ours", "floor")
floor_u16, floor_u16_s = rate("floor-upsert16", "floor")
pg_async, pg_async_s = rate("pg-mix-async")
floor_oa, floor_oa_s = rate("floor-ours-async", "floor")

if health:
    row("`/health` throughput (baseline, same binary)", f"{health_s} req/s")
if mem:
    row("In-memory start+end throughput", f"{mem_s} req/s")
if health and mem:
    r = mem / health
    row("↳ in-memory / `/health`", f"{r:.2f}", "≥ 0.80", verdict(r >= 0.80))
    srv_h, srv_m = med(extras("throughput", "health", "srv_us")), med(extras("throughput", "memory-mix", "srv_us"))
    if srv_h and srv_m:
        row("↳ server CPU µs per request, `/health` vs start+end (less sensitive to noise)",
            f"{srv_h:.1f} vs {srv_m:.1f} µs ({srv_h / srv_m:.2f})", "(information)", "")
if pg:
    row("Postgres start+end throughput", f"{pg_s} req/s")
if floor_u:
    row("pgbench floor: conditional upsert + decrement", f"{floor_u_s} statements/s")
if floor_u16:
    row("pgbench batched floor: the same upsert and decrement over 16 users per statement",
        f"{floor_u16_s} decisions/s")
if floor_o:
    row("pgbench floor: our start + end transactions (the SQL the server sends)", f"{floor_o_s} requests/s")
if pg and floor_u:
    r = pg / floor_u
    row("↳ Postgres / upsert floor", f"{r:.2f}", "≥ 1.5", verdict(r >= 1.5))
batch = values("batch", "pg-mix")
if batch:
    row("↳ decisions per Postgres transaction in the mix (`stream_limit_store_batch_size`, mean)",
        f"{batch[0]:.2f}", "(information)", "")
if pg and floor_u16:
    row("↳ Postgres / batched floor", f"{pg / floor_u16:.2f}", "(information)", "")
if pg and floor_o:
    row("↳ Postgres / our-SQL floor", f"{pg / floor_o:.2f}", "(how much the HTTP layer + pool cost)", "")
if pg:
    r = pg / NODE_RPS
    row(f"↳ Postgres / Node predecessor ({NODE_RPS:,} req/s)", f"{r:.1f}×", "≥ 10×", verdict(r >= 10))
if pg_async:
    row("Postgres start+end, `synchronous_commit=off` (durability trade-off)", f"{pg_async_s} req/s",
        "(information)", f"{pg_async / pg:.2f}× the durable figure" if pg else "")
if floor_oa:
    row("↳ our-SQL floor, `synchronous_commit=off`", f"{floor_oa_s} requests/s", "(information)", "")

for label, name in (("memory-half", "In-memory"), ("pg-half", "Postgres"), ("memory-light", "In-memory (light load)"),
                    ("pg-light", "Postgres (light load)")):
    got = latency(label)
    if not got:
        continue
    p, extra = got
    rate_m = re.search(r"rate=(\d+)", extra)
    achieved = re.search(r"achieved=(\d+)", extra)
    ratio = p["p99"] / p["p50"]
    other_m = re.search(r"other%=([\d.]+)", extra)
    noisy = f"; other work took {float(other_m.group(1)):.0f}% of the machine: tail unreliable" \
        if other_m and float(other_m.group(1)) >= 15 else ""
    what = "at a fixed" if label.endswith("light") else "at half the max"
    asked, got_rate = int(rate_m.group(1)), int(achieved.group(1))
    if got_rate < 0.95 * asked:
        row(f"{name} latency {what} rate ({asked:,}/s asked, {got_rate:,}/s achieved)",
            f"p50 {p['p50']:.3f} ms, p99 {p['p99']:.3f} ms", "p99 ≤ 3× p50",
            "**invalid**: the rate was not held (machine too busy), so these are queueing times")
        continue
    row(f"{name} latency {what} rate ({int(rate_m.group(1)):,}/s asked, "
        f"{int(achieved.group(1)):,}/s achieved): p50 / p99 / p99.9",
        f"{p['p50']:.3f} / {p['p99']:.3f} / {p['p99.9']:.3f} ms",
        "(information)" if label.endswith("light") else "p99 ≤ 3× p50",
        (f"p99 = {ratio:.1f}× p50" if label.endswith("light") else f"{verdict(ratio <= 3)} (p99 = {ratio:.1f}× p50)") + noisy)

for per in (1, 3):
    xs = values("lease-memory", f"per-viewer-{per}")
    if xs:
        row(f"Memory per active lease (10⁶ leases, {per} per viewer, in-memory)", f"{xs[0]:.0f} bytes",
            "≤ 250 bytes", verdict(xs[0] <= 250))

scale = {n: latency(f"scale-{n}") for n in (1000, 100000, 1000000)}
if all(scale.values()):
    cells = " / ".join(f"{scale[n][0]['p50']:.3f}" for n in scale)
    cells99 = " / ".join(f"{scale[n][0]['p99']:.3f}" for n in scale)
    rate_m = re.search(r"rate=(\d+)", scale[1000][1])
    r50 = scale[1000000][0]["p50"] / scale[1000][0]["p50"]
    r99 = scale[1000000][0]["p99"] / scale[1000][0]["p99"]
    row(f"Postgres start latency p50 with 10³ / 10⁵ / 10⁶ active leases (at {rate_m.group(1)}/s)",
        f"{cells} ms", "10⁶ ≤ 1.5× 10³", f"{verdict(r50 <= 1.5)} ({r50:.2f}×)")
    row("↳ same, p99", f"{cells99} ms", "(information)", f"{r99:.2f}×")

others = [float(m) for r in rows if r["kind"] in ("throughput", "floor")
          for m in re.findall(r"other%=([\d.]+)", r["extra"])]
warning = []
if others and med(others) >= 15:
    warning = [f"**Warning: other work kept {med(others):.0f}% of the machine busy (median over the runs) "
               "while this was measured; throughput, ratios and tails are unreliable. The CPU time per "
               "request below is the steadier guide.**", ""]
out = ["## stream-limit benchmark", ""] + warning + [
       "| Figure | Measured | Target | Result |", "|---|---|---|---|"] + table

# Where the CPU goes: per-request CPU time of each party, from /proc, medians.
cpu = []


def fmt(xs):
    return f"{med(xs):.1f}" if xs else "–"


for kind, label, name in (("throughput", "health", "`/health`"),
                          ("throughput", "memory-mix", "in-memory start+end"),
                          ("throughput", "pg-mix", "Postgres start+end"),
                          ("throughput", "pg-mix-async", "Postgres, synchronous_commit=off"),
                          ("floor", "floor-upsert", "pgbench upsert floor (per statement)"),
                          ("floor", "floor-ours", "pgbench our-SQL floor (per request)"),
                          ("floor", "floor-ours-async", "pgbench our-SQL floor, synchronous_commit=off")):
    if not values(kind, label):
        continue
    cpu.append(f"| {name} | {fmt(extras(kind, label, 'srv_us'))} | {fmt(extras(kind, label, 'pg_us'))} | "
               f"{fmt(extras(kind, label, 'gen_us'))} | {fmt(extras(kind, label, 'other%'))}% |")
if cpu:
    out += ["", "CPU time per request, medians over the runs (server = the stream-limit-http process; "
            "Postgres = the whole cluster; load generator = wrk or pgbench; other = CPU used by "
            "anything else on the machine during the runs, as a share of both cores: noise):", "",
            "| Load | server µs | Postgres µs | load generator µs | other |", "|---|---|---|---|---|"] + cpu

crit = [r for r in rows if r["kind"] == "criterion"]
if crit:
    out += ["", "Criterion micro-benchmarks (`cargo bench -p stream-limit-core --bench hot_path`):", ""]
    out += [f"- {r['label']}: {float(r['value']):,.0f} ns" for r in crit]

discarded = sum(1 for r in rows if r["kind"].startswith("discarded-"))
out += ["", "Notes: throughput figures are medians of interleaved runs; a run during which other work "
        f"took ≥ 25% of the machine was discarded and repeated ({discarded} this time). Latency is "
        "measured open-loop by oha with `--latency-correction`; oha paces on tokio's 1 ms timer, so "
        "at R req/s it releases R/1000 requests at once, which adds queueing of its own at high rates.",
        "", "Machine and settings:", "", "```", machine, "```"]
print("\n".join(out))
