#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Regression gate and noise report for the snp-rmp selftests' metrics.

A saved run is a folder DIR/<test>/<run-index>.json (one metrics document
per repeat, schema snp-rmp-metrics/1) plus DIR/manifest.json saying where
and when it was made.  run_tests.sh --save writes one; --gate compares the
current run with one.

  gate.py compare BASELINE CURRENT   table + verdict per metric;
                                     exit 1 on any regression
  gate.py noise DIR                  coefficient of variation per metric
  gate.py manifest DIR --repeat N    write DIR/manifest.json

A metric regresses only when three things hold:
  - it is gated: its document declares "better": "higher" or "lower"
    ("none" is shown, never gated), and its CV is at most --max-cv in
    both runs (else "noisy": a metric that noisy cannot be trusted);
  - the current values are worse than the baseline's at one-sided
    significance --alpha, by an exact Mann-Whitney U test (the
    permutation distribution of the rank sum, ties as midranks; a
    normal approximation with tie correction above EXACT_MAX values);
  - the medians differ by at least --min-effect percent.
Nothing is random, so the same inputs always give the same output.

Exit status: 0 no regression, 1 regression, 2 usage error or bad input.
"""

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys

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


# ---- loading ---------------------------------------------------------------

def is_number(value):
    """JSON numbers only: bool is an int to Python, not to us."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_metric(path, name, metric):
    """Validate one entry of "metrics"; a null value means not measured."""
    if not isinstance(metric, dict):
        raise BadInput(f"{path}: metric {name!r} is not an object")
    for key in ("value", "unit", "better"):
        if key not in metric:
            raise BadInput(f"{path}: metric {name!r} has no {key!r}")
    value = metric["value"]
    if value is not None and not (is_number(value) and math.isfinite(value)):
        raise BadInput(f"{path}: metric {name!r}: value {value!r} is not a finite number")
    if metric["better"] not in DIRECTIONS:
        raise BadInput(f"{path}: metric {name!r}: better must be one of "
                       f"{', '.join(DIRECTIONS)}, not {metric['better']!r}")
    if not isinstance(metric["unit"], str):
        raise BadInput(f"{path}: metric {name!r}: unit is not a string")


def load_doc(path):
    """One metrics document, checked against the fixed schema."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        raise BadInput(f"{path}: {e.strerror}") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadInput(f"{path}: not valid JSON: {e}") from e
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise BadInput(f"{path}: not a {SCHEMA} document")
    metrics = doc.get("metrics")
    if not isinstance(metrics, dict):
        raise BadInput(f"{path}: no \"metrics\" object")
    for name, metric in metrics.items():
        check_metric(path, name, metric)
    return doc


def run_files(folder):
    """The <run-index>.json files of a test folder, in run order."""
    runs = []
    for entry in os.listdir(folder):
        stem, ext = os.path.splitext(entry)
        if ext == ".json" and stem.isdigit():
            runs.append((int(stem), os.path.join(folder, entry)))
    return [path for _, path in sorted(runs)]


def load_runs(top, need_manifest):
    """{test: [doc, ...]} of a saved run, and its manifest (or {})."""
    if not os.path.isdir(top):
        raise BadInput(f"{top}: no such folder")
    manifest = {}
    mpath = os.path.join(top, MANIFEST)
    if os.path.exists(mpath):
        try:
            with open(mpath, encoding="utf-8") as f:
                manifest = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise BadInput(f"{mpath}: unreadable: {e}") from e
        if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
            raise BadInput(f"{mpath}: not a {MANIFEST_SCHEMA} manifest")
    elif need_manifest:
        raise BadInput(f"{top}: no {MANIFEST}: not a saved run "
                       "(make one with run_tests.sh --repeat N --save DIR)")
    runs = {}
    for test in sorted(os.listdir(top)):
        folder = os.path.join(top, test)
        if os.path.isdir(folder):
            docs = [load_doc(p) for p in run_files(folder)]
            if docs:
                runs[test] = docs
    return runs, manifest


def series(test, docs):
    """{metric: (unit, better, [values])} over a test's runs.

    A metric must keep its unit and direction across the runs: if either
    changed, the runs measured different things.
    """
    out = {}
    for doc in docs:
        for name, m in doc["metrics"].items():
            unit, better, values = out.setdefault(name, (m["unit"], m["better"], []))
            if (m["unit"], m["better"]) != (unit, better):
                raise BadInput(f"{test}: metric {name!r} changes unit or direction between runs")
            if m["value"] is not None:
                values.append(float(m["value"]))
    return out


# ---- statistics ------------------------------------------------------------

def median(xs):
    """Median; the mean of the middle two for an even count."""
    s = sorted(xs)
    n = len(s)
    mid = n // 2
    return s[mid] if n % 2 else (s[mid - 1] + s[mid]) / 2


def cv_percent(xs):
    """Sample standard deviation over |mean|, in percent; None if n < 2.

    All-zero series count as perfectly stable (0%), any other series with
    a zero mean as infinitely noisy.
    """
    if len(xs) < 2:
        return None
    mean = sum(xs) / len(xs)
    var = sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)
    if mean == 0:
        return 0.0 if var == 0 else math.inf
    return 100.0 * math.sqrt(var) / abs(mean)


def doubled_midranks(values):
    """Twice the midrank of each value: integers, so sums count exactly."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = i + j + 2  # (i+1 + j+1) = 2 * midrank
        i = j + 1
    return ranks


def exact_rank_sum_tails(ranks, n, observed):
    """P(S <= observed), P(S >= observed) for the sum S of n of the ranks
    drawn without replacement: the exact null distribution, ties kept."""
    # ways[k][s]: subsets of size k with doubled rank sum s
    ways = [dict() for _ in range(n + 1)]
    ways[0][0] = 1
    for r in ranks:
        for k in range(n, 0, -1):
            below = ways[k - 1]
            here = ways[k]
            for s, c in below.items():
                here[s + r] = here.get(s + r, 0) + c
    total = sum(ways[n].values())
    low = sum(c for s, c in ways[n].items() if s <= observed)
    high = sum(c for s, c in ways[n].items() if s >= observed)
    return low / total, high / total


def normal_rank_sum_tails(ranks, n, observed):
    """The same tails from the normal approximation with tie correction
    and a continuity correction, for samples too big to enumerate."""
    big_n = len(ranks)
    m = big_n - n
    mean = n * (big_n + 1)		# doubled, as the ranks are
    ties = {}
    for r in ranks:
        ties[r] = ties.get(r, 0) + 1
    tie_term = sum(t ** 3 - t for t in ties.values()) / (big_n * (big_n - 1))
    var = 4 * n * m / 12 * ((big_n + 1) - tie_term)
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
    if len(ranks) <= EXACT_MAX:
        return exact_rank_sum_tails(ranks, len(cur), observed)
    return normal_rank_sum_tails(ranks, len(cur), observed)


def smallest_p(n_base, n_cur):
    """The smallest one-sided p any outcome can reach, without ties."""
    return 1.0 / math.comb(n_base + n_cur, n_cur)


def change_percent(base_median, cur_median):
    """Relative change of the median; None when the baseline is 0."""
    if base_median == 0:
        return 0.0 if cur_median == 0 else None
    return 100.0 * (cur_median - base_median) / abs(base_median)


# ---- verdicts --------------------------------------------------------------

class Row:
    """One metric of one test, compared."""

    def __init__(self, test, name, unit, better):
        self.test, self.name, self.unit, self.better = test, name, unit, better
        self.base = []
        self.cur = []
        self.change = None
        self.p = None
        self.verdict = "ok"


def judge(row, opts):
    """Fill in change, p and the verdict of a row; see the module doc."""
    if not row.base:
        row.verdict = "new"
        return
    if not row.cur:
        row.verdict = "missing"
        return
    bm, cm = median(row.base), median(row.cur)
    row.change = change_percent(bm, cm)
    if row.better == "none":
        row.verdict = "info"
        return
    p_lower, p_higher = mann_whitney(row.base, row.cur)
    worse = cm < bm if row.better == "higher" else cm > bm
    if row.better == "higher":
        p_worse, p_better = p_lower, p_higher
    else:
        p_worse, p_better = p_higher, p_lower
    row.p = p_worse if worse else p_better
    big = row.change is None or abs(row.change) >= opts.min_effect
    cvs = [c for c in (cv_percent(row.base), cv_percent(row.cur)) if c is not None]
    if any(c > opts.max_cv for c in cvs):
        row.verdict = "noisy"
    elif worse and big and p_worse <= opts.alpha:
        row.verdict = "regression"
    elif not worse and big and p_better <= opts.alpha and cm != bm:
        row.verdict = "improved"


def compare_test(test, base_docs, cur_docs, opts):
    """The rows of one test: every metric of either run, by name."""
    base = series(test, base_docs) if base_docs else {}
    cur = series(test, cur_docs) if cur_docs else {}
    rows = []
    for name in sorted(set(base) | set(cur)):
        b, c = base.get(name), cur.get(name)
        if b and c and (b[0], b[1]) != (c[0], c[1]):
            raise BadInput(f"{test}: metric {name!r} is {b[0]}, {b[1]} is better in the "
                           f"baseline but {c[0]}, {c[1]} is better now: make a new baseline")
        unit, better = (b or c)[0], (b or c)[1]
        row = Row(test, name, unit, better)
        row.base = b[2] if b else []
        row.cur = c[2] if c else []
        judge(row, opts)
        rows.append(row)
    return rows


# ---- output ----------------------------------------------------------------

def fmt(value):
    """Numbers as a person reads them: 6 significant digits, no 1e+05."""
    if value is None:
        return "-"
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


TABLE = "{:<26} {:<10} {:>12} {:>12} {:>8} {:>7}  {}"
NOISE = "{:<26} {:<10} {:>3} {:>12} {:>7}  {}"
UNIT = 10  # unit column width; longer units are cut


def print_compare(rows_by_test, counts, opts):
    """The comparison table, one block per test."""
    print(f"gate: regression = worse at one-sided p <= {opts.alpha:g} (exact "
          f"Mann-Whitney U) and by >= {opts.min_effect:g}% of the median; "
          f"CV > {opts.max_cv:g}% is noisy, not gated")
    for test, rows in rows_by_test:
        nb, nc = counts[test]
        print(f"gate: {test}: baseline {nb} run(s), current {nc} run(s)")
        if nb and nc and smallest_p(nb, nc) > opts.alpha:
            print(f"gate: {test}: {nb} vs {nc} runs cannot reach p <= {opts.alpha:g} "
                  f"(at best {smallest_p(nb, nc):.3g}): nothing can fail; use more repeats")
        print(TABLE.format("metric", "unit", "baseline", "current", "change", "p", "verdict"))
        for r in rows:
            print(TABLE.format(r.name, r.unit[:UNIT],
                               fmt(median(r.base)) if r.base else "-",
                               fmt(median(r.cur)) if r.cur else "-",
                               fmt_pct(r.change) if r.base and r.cur else "-",
                               f"{r.p:.3g}" if r.p is not None else "-",
                               r.verdict))


def print_noise(runs, opts):
    """The CV table: which metrics are steady enough to gate on."""
    for test, docs in sorted(runs.items()):
        print(f"noise: {test}: {len(docs)} run(s); CV = sample stdev / mean")
        print(NOISE.format("metric", "unit", "n", "median", "CV", "gate on it?"))
        for name, (unit, better, values) in sorted(series(test, docs).items()):
            cv = cv_percent(values)
            if better == "none":
                verdict = "no: reported only"
            elif cv is None:
                verdict = "unknown: needs 2+ runs"
            elif cv > opts.max_cv:
                verdict = f"no: CV > {opts.max_cv:g}%"
            else:
                verdict = "yes"
            print(NOISE.format(name, unit[:UNIT], len(values),
                               fmt(median(values)) if values else "-",
                               fmt_pct(cv, signed=False), verdict))


def notes_on_context(base_manifest, cur_manifest, base_runs, cur_runs):
    """Say when the two runs were not made alike: the numbers may differ
    for reasons other than the code."""
    for key in ("kernel", "cpu", "cpus", "quick"):
        b, c = base_manifest.get(key), cur_manifest.get(key)
        if b is not None and c is not None and b != c:
            print(f"gate: note: {key} differs: baseline {b!r}, current {c!r}")
    for test in sorted(set(base_runs) & set(cur_runs)):
        b = base_runs[test][0].get("params")
        c = cur_runs[test][0].get("params")
        if isinstance(b, dict) and isinstance(c, dict):
            diff = param_changes(b, c)
            if diff:
                print(f"gate: note: {test}: params differ: {', '.join(diff)}")


def param_changes(base, cur):
    """The parameters that differ, as "key base -> cur".  Seeds are left
    out: a run picks a new one each time, by design."""
    out = []
    for key in sorted(set(base) | set(cur)):
        if key.startswith("seed"):
            continue
        b, c = base.get(key), cur.get(key)
        if b != c:
            out.append(f"{key} {json.dumps(b)} -> {json.dumps(c)}")
    return out


# ---- commands --------------------------------------------------------------

def cmd_compare(opts):
    """Compare CURRENT with BASELINE; 1 if anything regressed."""
    base_runs, base_manifest = load_runs(opts.baseline, need_manifest=True)
    cur_runs, cur_manifest = load_runs(opts.current, need_manifest=False)
    tests = sorted(set(base_runs) | set(cur_runs))
    if opts.test:
        tests = sorted(set(opts.test))
    rows_by_test = []
    counts = {}
    for test in tests:
        b, c = base_runs.get(test, []), cur_runs.get(test, [])
        counts[test] = (len(b), len(c))
        rows_by_test.append((test, compare_test(test, b, c, opts)))
    notes_on_context(base_manifest, cur_manifest, base_runs, cur_runs)
    print_compare(rows_by_test, counts, opts)
    rows = [r for _, rs in rows_by_test for r in rs]
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
    """Print the CV table of a saved run."""
    runs, _ = load_runs(opts.dir, need_manifest=False)
    if not runs:
        print(f"noise: no metrics documents under {opts.dir}")
        return 0
    print_noise(runs, opts)
    return 0


def cpu_model():
    """The CPU's model name: a baseline from another CPU is no baseline."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def project_describe():
    """git describe of the project, without touching its index."""
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, GIT_OPTIONAL_LOCKS="0")
    try:
        out = subprocess.run(["git", "-C", top, "describe", "--always", "--dirty", "--tags"],
                             capture_output=True, text=True, env=env, check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def cmd_manifest(opts):
    """Write DIR/manifest.json: where, when and how the runs were made."""
    if not os.path.isdir(opts.dir):
        raise BadInput(f"{opts.dir}: no such folder")
    runs = {}
    for test in sorted(os.listdir(opts.dir)):
        folder = os.path.join(opts.dir, test)
        if os.path.isdir(folder):
            runs[test] = len(run_files(folder))
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "project": project_describe(),
        "repeat": opts.repeat,
        "quick": opts.quick,
        "runs": runs,
    }
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


def parse_args(argv):
    """Command line; argparse exits 2 on misuse, as wanted."""
    ap = argparse.ArgumentParser(prog="gate.py", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("compare", "noise"):
        p = sub.add_parser(name)
        if name == "compare":
            p.add_argument("baseline")
            p.add_argument("current")
            p.add_argument("--alpha", type=probability, default=ALPHA)
            p.add_argument("--min-effect", type=percent, default=MIN_EFFECT,
                           help="percent change of the median below which nothing fails")
            p.add_argument("--test", action="append",
                           help="compare only this test (repeatable)")
        else:
            p.add_argument("dir")
        p.add_argument("--max-cv", type=percent, default=MAX_CV,
                       help="percent CV above which a metric is noisy, not gated")
    p = sub.add_parser("manifest")
    p.add_argument("dir")
    p.add_argument("--repeat", type=int, required=True)
    p.add_argument("--quick", action="store_true")
    return ap.parse_args(argv)


def main(argv):
    opts = parse_args(argv)
    handler = {"compare": cmd_compare, "noise": cmd_noise, "manifest": cmd_manifest}[opts.cmd]
    try:
        return handler(opts)
    except BadInput as e:
        print(f"gate.py: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"gate.py: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
