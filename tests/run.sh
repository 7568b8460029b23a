#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The project's own tests: unit programs (BUILD/tests/unit/*, built by
# `make unit`) and the shell tests tests/t_*.sh, which end with the
# suite's own run on this machine (t_suite.sh).  Each program prints TAP
# result lines at the start of a line ("ok N name", "not ok N name",
# "ok N name # SKIP reason"); nested output must be indented or "# "
# prefixed so that only its own results are counted here.  A program whose
# plan promises more results than it printed, or that exits non-zero
# without a "not ok" line, counts one failure.
#
# SNP_RMP_TESTS="t_intree t_lab" runs only those shell tests and no unit
# program (CI uses it for the second tree).
#
# Prints the closing line "N passed, N failed, N skipped"; exits 1 if
# anything failed.

set -u

top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
export BUILD

passed=0
failed=0
skipped=0

# tally NAME EXIT_CODE OUTPUT_FILE
tally() {
	local name=$1 rc=$2 out=$3 p f s plan

	p=$(grep -cE '^ok [0-9]+' "$out")
	s=$(grep -cE '^ok [0-9]+.*# SKIP' "$out")
	f=$(grep -cE '^not ok [0-9]+' "$out")
	p=$((p - s))
	plan=$(sed -nE 's/^1\.\.([0-9]+).*/\1/p' "$out" | tail -n 1)
	if [ -n "$plan" ] && [ "$plan" -gt $((p + s + f)) ]; then
		echo "not ok - $name: planned $plan results, printed $((p + s + f))"
		f=$((f + plan - p - s - f))
	fi
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "not ok - $name exited $rc without reporting a failure"
		f=1
	fi
	if [ $((p + s + f)) -eq 0 ]; then
		echo "not ok - $name reported no result"
		f=1
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + s))
}

# run NAME COMMAND...: run one test program, show its output, count it.
run() {
	local name=$1 out rc

	shift
	out=$(mktemp)
	echo "# ---- $name"
	"$@" </dev/null 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	tally "$name" "$rc" "$out"
	rm -f "$out"
}

only=${SNP_RMP_TESTS:-}

for prog in "$BUILD"/tests/unit/*; do
	if [ -z "$only" ] && [ -f "$prog" ] && [ -x "$prog" ]; then
		run "unit/$(basename "$prog")" "$prog"
	fi
done

for script in "$top"/tests/t_*.sh; do
	[ -f "$script" ] || continue
	if [ -n "$only" ] && [[ " $only " != *" $(basename "$script" .sh) "* ]]; then
		continue
	fi
	run "$(basename "$script")" bash "$script"
done

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
