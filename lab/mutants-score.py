#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Score a mutation campaign (lab/mutants.sh's mutants.json).

A column's score is the share of the runnable, non-equivalent mutants it
killed.  "suite" is ours together (the fault test or the stress test),
"upstream" upstream's tests together.  Prints one line per column.
"""
import json
import sys

OURS = ("fault", "stress")


def main():
    doc = json.load(open(sys.argv[1]))
    mutants = [m for m in doc["mutants"]
               if m["outcome"] not in ("not-runnable", "build-failed")
               and m["equivalent"] != "yes"]
    if not mutants:
        print("# score: no runnable, non-equivalent mutant")
        return
    progs = list(mutants[0]["programs"])
    theirs = [p for p in progs if p not in OURS]
    groups = {p: [p] for p in progs} | {"suite": OURS} | ({"upstream": theirs} if theirs else {})
    columns = {name: [any(m["programs"][p] == "killed" for p in ps) for m in mutants]
               for name, ps in groups.items()}
    n = len(mutants)
    skipped = len(doc["mutants"]) - n
    print(f"# score on {doc['tree']}: {n} runnable non-equivalent mutants"
          f" ({skipped} not runnable, equivalent or not built)")
    for name, kills in columns.items():
        k = sum(kills)
        print(f"# {name:30s} {k:3d}/{n} killed ({100.0 * k / n:.0f} %)")


if __name__ == "__main__":
    main()
