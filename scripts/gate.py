#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Regression gate and noise report for the snp-rmp selftests' metrics.

A saved run (run_tests.sh --save) is DIR/<test>/<run-index>.json, one
snp-rmp-metrics/1 document per repeat, plus DIR/manifest.json saying where
and when it was made.

  gate.py compare BASELINE CURRENT   table + verdict per metric
  gate.py noise DIR                  coefficient of variation per metric
  gate.py manifest DIR --repeat N    write DIR/manifest.json

A metric regresses only when it is gated ("better": "higher" or "lower",
and a CV of at most --max-cv in both runs, else it is "noisy"), is worse
than the baseline at one-sided significance --alpha by an exact
Mann-Whitney U test (ties as midranks; a normal approximation with tie
correction above EXACT_MAX values), and its median moved by at least
--min-effect percent.  Nothing is random: the same inputs always give the
same output.

Exit status: 0 no regression, 1 regression, 2 usage error or bad input.
"""

import argparse
import datetime
import gzip
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
from collections import Counter
from statistics import median
from types import SimpleNamespace

SCHEMA = "snp-rmp-metrics/1"
MANIFEST = "manifest.json"
MANIFEST_SCHEMA = "snp-rmp-runs/1"
DIRECTIONS = ("higher", "lower", "none")

ALPHA = 0.01  # one-sided; 5 vs 5 runs can reach 1/252
MIN_EFFECT = 5.0  # percent of the baseline median
MAX_CV = 10.0  # percent; above it a metric is "noisy", not gated
EXACT_MAX = 40  # pooled values up to which the U test is exact


class BadInput(Exception):
    """Input the gate cannot judge: reported, exit status 2."""


def load_json(path, schema, what):
    """The JSON object at path: a metrics "document" or a "manifest"."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        raise BadInput(f"{path}: {e.strerror}") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadInput(f"{path}: not valid JSON: {e}") from e
    if not isinstance(doc, dict) or doc.get("schema") != schema:
        raise BadInput(f"{path}: not a {schema} {what}")
    return doc


def load_doc(path):
    """One metrics document; a null value means not measured."""
    doc = load_json(path, SCHEMA, "document")
    metrics = doc.get("metrics")
    if not isinstance(metrics, dict):
        raise BadInput(f"{path}: no \"metrics\" object")
    for name, m in metrics.items():
        where = f"{path}: metric {name!r}"
        if not isinstance(m, dict):
            raise BadInput(f"{where} is not an object")
        for key in ("value", "unit", "better"):
            if key not in m:
                raise BadInput(f"{where} has no {key!r}")
        value = m["value"]
        # bool is an int to Python, not to JSON
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value)):
            raise BadInput(f"{where}: value {value!r} is not a finite number")
        if m["better"] not in DIRECTIONS:
            raise BadInput(f"{where}: better must be one of "
                           f"{', '.join(DIRECTIONS)}, not {m['better']!r}")
        if not isinstance(m["unit"], str):
            raise BadInput(f"{where}: unit is not a string")
    return doc


def run_files(folder):
    """The <run-index>.json files of a test folder, in run order."""
    runs = [(int(e[:-5]), e) for e in os.listdir(folder)
            if e.endswith(".json") and e[:-5].isdigit()]
    return [os.path.join(folder, e) for _, e in sorted(runs)]


def test_folders(top):
    """{test: folder} of a saved run."""
    if not os.path.isdir(top):
        raise BadInput(f"{top}: no such folder")
    return {t: os.path.join(top, t) for t in sorted(os.listdir(top))
            if os.path.isdir(os.path.join(top, t))}


def load_runs(top, need_manifest):
    """{test: [doc, ...]} of a saved run, and its manifest (or {})."""
    folders = test_folders(top)
    mpath = os.path.join(top, MANIFEST)
    if need_manifest and not os.path.exists(mpath):
        raise BadInput(f"{top}: no {MANIFEST}: not a saved run "
                       "(make one with run_tests.sh --repeat N --save DIR)")
    manifest = load_json(mpath, MANIFEST_SCHEMA, "manifest") if os.path.exists(mpath) else {}
    runs = {test: [load_doc(p) for p in run_files(folder)] for test, folder in folders.items()}
    return {test: docs for test, docs in runs.items() if docs}, manifest


def series(test, docs):
    """{metric: (unit, better, [values])} over a test's runs; a metric whose
    unit or direction changed between runs measured different things."""
    out = {}
    for doc in docs:
        for name, m in doc["metrics"].items():
            unit, better, values = out.setdefault(name, (m["unit"], m["better"], []))
            if (m["unit"], m["better"]) != (unit, better):
                raise BadInput(f"{test}: metric {name!r} changes unit or direction between runs")
            if m["value"] is not None:
                values.append(float(m["value"]))
    return out


def cv_percent(xs):
    """Sample standard deviation over |mean|, in percent; None if n < 2.
    All-zero series count as stable (0%), any other zero mean as inf."""
    if len(xs) < 2:
        return None
    mean = sum(xs) / len(xs)
    var = sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)
    if mean == 0:
        return 0.0 if var == 0 else math.inf
    return 100.0 * math.sqrt(var) / abs(mean)


def doubled_midranks(values):
    """Twice the midrank of each value: integers, so sums count exactly.
    Equal values span ranks first+1 .. last+1 of the sorted list."""
    first, last = {}, {}
    for i, v in enumerate(sorted(values)):
        first.setdefault(v, i)
        last[v] = i
    return [first[v] + last[v] + 2 for v in values]


def exact_rank_sum_tails(ranks, n, observed):
    """P(S <= observed), P(S >= observed) for the sum S of n of the ranks
    drawn without replacement: the exact null distribution, ties kept."""
    # ways[k][s]: subsets of size k with doubled rank sum s
    ways = [dict() for _ in range(n + 1)]
    ways[0][0] = 1
    for r in ranks:
        for k in range(n, 0, -1):
            here = ways[k]
            for s, c in ways[k - 1].items():
                here[s + r] = here.get(s + r, 0) + c
    total = sum(ways[n].values())
    low = sum(c for s, c in ways[n].items() if s <= observed)
    high = sum(c for s, c in ways[n].items() if s >= observed)
    return low / total, high / total


def normal_rank_sum_tails(ranks, n, observed):
    """The same tails from the normal approximation with tie correction
    and a continuity correction, for samples too big to enumerate."""
    big_n = len(ranks)
    mean = n * (big_n + 1)  # doubled, as the ranks are
    tie_term = sum(t ** 3 - t for t in Counter(ranks).values()) / (big_n * (big_n - 1))
    var = 4 * n * (big_n - n) / 12 * ((big_n + 1) - tie_term)
    if var <= 0:
        return 1.0, 1.0
    sd = math.sqrt(var)
    low = 0.5 * math.erfc(-((observed - mean + 1) / sd) / math.sqrt(2))
    high = 0.5 * math.erfc(((observed - mean - 1) / sd) / math.sqrt(2))
    return min(low, 1.0), min(high, 1.0)


def mann_whitney(base, cur):
    """One-sided p-values (current lower, current higher) than baseline."""
    ranks = doubled_midranks(list(base) + list(cur))
    observed = sum(ranks[len(base):])
    tails = exact_rank_sum_tails if len(ranks) <= EXACT_MAX else normal_rank_sum_tails
    return tails(ranks, len(cur), observed)


def judge(test, name, b, c, opts):
    """One metric of one test compared, b and c its (unit, better, values) in
    the baseline and the current run or None: change, p, verdict (module doc)."""
    if b and c and b[:2] != c[:2]:
        raise BadInput(f"{test}: metric {name!r} is {b[0]}, {b[1]} is better in the "
                       f"baseline but {c[0]}, {c[1]} is better now: make a new baseline")
    unit, better = (b or c)[:2]
    base, cur = b[2] if b else [], c[2] if c else []
    row = SimpleNamespace(test=test, name=name, unit=unit, base=base, cur=cur,
                          change=None, p=None, verdict="ok")
    if not base or not cur:
        row.verdict = "new" if not base else "missing"
        return row
    bm, cm = median(base), median(cur)
    row.change = 100.0 * (cm - bm) / abs(bm) if bm else 0.0 if cm == 0 else None
    if better == "none":
        row.verdict = "info"
        return row
    p_lower, p_higher = mann_whitney(base, cur)
    if better == "higher":
        worse, p_worse, p_better = cm < bm, p_lower, p_higher
    else:
        worse, p_worse, p_better = cm > bm, p_higher, p_lower
    row.p = p_worse if worse else p_better
    big = row.change is None or abs(row.change) >= opts.min_effect
    if any(c is not None and c > opts.max_cv for c in (cv_percent(base), cv_percent(cur))):
        row.verdict = "noisy"
    elif worse and big and p_worse <= opts.alpha:
        row.verdict = "regression"
    elif not worse and big and p_better <= opts.alpha and cm != bm:
        row.verdict = "improved"
    return row


def fmt(value):
    """Numbers as a person reads them: 6 significant digits, no 1e+05."""
    if value == 0:
        return "0"
    if abs(value) >= 1e15 or abs(value) < 1e-4:
        return f"{value:.4g}"
    return f"{value:.6g}" if abs(value) < 1e6 else f"{value:.0f}"


def fmt_pct(value, signed=True):
    """A percentage with one decimal; n/a for an undefined change."""
    if value is None:
        return "n/a"
    if math.isinf(value):
        return "inf"
    return f"{value:+.1f}%" if signed else f"{value:.1f}%"


def fmt_median(values):
    return fmt(median(values)) if values else "-"


TABLE = "{:<26} {:<10} {:>12} {:>12} {:>8} {:>7}  {}"
NOISE = "{:<26} {:<10} {:>3} {:>12} {:>7}  {}"
UNIT = 10  # unit column width; longer units are cut


def print_compare(rows_by_test, opts):
    """The comparison table, one block per test."""
    print(f"gate: regression = worse at one-sided p <= {opts.alpha:g} (exact "
          f"Mann-Whitney U) and by >= {opts.min_effect:g}% of the median; "
          f"CV > {opts.max_cv:g}% is noisy, not gated")
    for test, nb, nc, rows in rows_by_test:
        print(f"gate: {test}: baseline {nb} run(s), current {nc} run(s)")
        # the smallest one-sided p any outcome can reach, without ties
        best = 1.0 / math.comb(nb + nc, nc)
        if nb and nc and best > opts.alpha:
            print(f"gate: {test}: {nb} vs {nc} runs cannot reach p <= {opts.alpha:g} "
                  f"(at best {best:.3g}): nothing can fail; use more repeats")
        print(TABLE.format("metric", "unit", "baseline", "current", "change", "p", "verdict"))
        for r in rows:
            print(TABLE.format(r.name, r.unit[:UNIT], fmt_median(r.base), fmt_median(r.cur),
                               fmt_pct(r.change) if r.base and r.cur else "-",
                               f"{r.p:.3g}" if r.p is not None else "-", r.verdict))


def notes_on_context(base_manifest, cur_manifest, base_runs, cur_runs):
    """Say when the two runs were not made alike: the numbers may differ
    for reasons other than the code.  Seeds are left out of the params: a
    run picks a new one each time, by design."""
    for key in ("kernel", "kernel_build", "kernel_config_sha256", "cpu", "cpus", "quick"):
        b, c = base_manifest.get(key), cur_manifest.get(key)
        if b is not None and c is not None and b != c:
            print(f"gate: note: {key} differs: baseline {b!r}, current {c!r}")
    for test in sorted(set(base_runs) & set(cur_runs)):
        b, c = (runs[test][0].get("params") for runs in (base_runs, cur_runs))
        if isinstance(b, dict) and isinstance(c, dict):
            diff = [f"{k} {json.dumps(b.get(k))} -> {json.dumps(c.get(k))}"
                    for k in sorted(set(b) | set(c))
                    if not k.startswith("seed") and b.get(k) != c.get(k)]
            if diff:
                print(f"gate: note: {test}: params differ: {', '.join(diff)}")


def cmd_compare(opts):
    """Compare CURRENT with BASELINE; 1 if anything regressed.  All is judged
    before anything is printed: bad input prints no half table."""
    base_runs, base_manifest = load_runs(opts.baseline, need_manifest=True)
    cur_runs, cur_manifest = load_runs(opts.current, need_manifest=False)
    rows_by_test = []
    for test in sorted(set(opts.test or []) or set(base_runs) | set(cur_runs)):
        b_docs, c_docs = base_runs.get(test, []), cur_runs.get(test, [])
        base, cur = series(test, b_docs), series(test, c_docs)
        rows = [judge(test, name, base.get(name), cur.get(name), opts)
                for name in sorted(set(base) | set(cur))]
        rows_by_test.append((test, len(b_docs), len(c_docs), rows))
    notes_on_context(base_manifest, cur_manifest, base_runs, cur_runs)
    print_compare(rows_by_test, opts)
    rows = [r for *_, rs in rows_by_test for r in rs]
    regressions = [r for r in rows if r.verdict == "regression"]
    compared = [r for r in rows if r.p is not None]
    for r in regressions:
        print(f"gate: REGRESSION {r.test}: {r.name} {fmt(median(r.base))} -> "
              f"{fmt(median(r.cur))} {r.unit} ({fmt_pct(r.change)}, p={r.p:.3g})")
    if not compared:
        print("gate: SKIP: no metric was measured in both runs")
        return 0
    print(f"gate: {len(regressions)} regression(s) in {len(compared)} compared metric(s): "
          f"{'FAIL' if regressions else 'PASS'}")
    return 1 if regressions else 0


def cmd_noise(opts):
    """The CV table of a saved run: which metrics are steady enough to gate on
    (the CV at most MAX_CV, the default of compare --max-cv)."""
    runs, _ = load_runs(opts.dir, need_manifest=False)
    if not runs:
        print(f"noise: no metrics documents under {opts.dir}")
    for test, docs in sorted(runs.items()):
        print(f"noise: {test}: {len(docs)} run(s); CV = sample stdev / mean")
        print(NOISE.format("metric", "unit", "n", "median", "CV", "gate on it?"))
        for name, (unit, better, values) in sorted(series(test, docs).items()):
            cv = cv_percent(values)
            verdict = ("no: reported only" if better == "none" else
                       "unknown: needs 2+ runs" if cv is None else
                       f"no: CV > {MAX_CV:g}%" if cv > MAX_CV else "yes")
            print(NOISE.format(name, unit[:UNIT], len(values), fmt_median(values),
                               fmt_pct(cv, signed=False), verdict))
    return 0


def read_text(path, mode="r"):
    """A file's contents, or empty if it cannot be read."""
    try:
        with open(path, mode) as f:
            return f.read()
    except OSError:
        return "" if mode == "r" else b""


def cmd_manifest(opts):
    """Write DIR/manifest.json: where, when and how the runs were made.  The
    CPU and the kernel configuration (/proc/config.gz, IKCONFIG_PROC) are in
    it: a baseline from another CPU or configuration is no baseline."""
    cfg = read_text("/proc/config.gz", "rb")
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "kernel": platform.release(),
        "kernel_build": read_text("/proc/version").strip(),
        "kernel_config_sha256": hashlib.sha256(gzip.decompress(cfg)).hexdigest() if cfg else None,
        "cpu": next((line.split(":", 1)[1].strip()
                     for line in read_text("/proc/cpuinfo").splitlines()
                     if line.startswith("model name")), platform.processor() or None),
        "cpus": os.cpu_count(),
        "project": None,
        "repeat": opts.repeat,
        "quick": opts.quick,
        "runs": {t: len(run_files(folder)) for t, folder in test_folders(opts.dir).items()},
    }
    # git describe of the project, without touching its index
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        manifest["project"] = subprocess.run(
            ["git", "-C", top, "describe", "--always", "--dirty", "--tags"],
            capture_output=True, text=True, check=True, timeout=10,
            env=dict(os.environ, GIT_OPTIONAL_LOCKS="0")).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    path = os.path.join(opts.dir, MANIFEST)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(path + ".tmp", path)
    return 0


def percent(text):
    """argparse type: a non-negative percentage."""
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"not a percentage: {text}")
    return value


def probability(text):
    """argparse type: a significance level in (0, 1)."""
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"alpha must be in (0, 1), not {text}")
    return value


def main(argv):
    # argparse exits 2 on misuse, as wanted
    ap = argparse.ArgumentParser(prog="gate.py", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    compare = sub.add_parser("compare")
    compare.add_argument("baseline")
    compare.add_argument("current")
    compare.add_argument("--alpha", type=probability, default=ALPHA)
    compare.add_argument("--min-effect", type=percent, default=MIN_EFFECT,
                         help="percent change of the median below which nothing fails")
    compare.add_argument("--test", action="append", help="compare only this test (repeatable)")
    compare.add_argument("--max-cv", type=percent, default=MAX_CV,
                         help="percent CV above which a metric is noisy, not gated")
    sub.add_parser("noise").add_argument("dir")
    p = sub.add_parser("manifest")
    p.add_argument("dir")
    p.add_argument("--repeat", type=int, required=True)
    p.add_argument("--quick", action="store_true")
    opts = ap.parse_args(argv)
    handler = {"compare": cmd_compare, "noise": cmd_noise, "manifest": cmd_manifest}[opts.cmd]
    try:
        return handler(opts)
    except (BadInput, OSError) as e:
        print(f"gate.py: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
