#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Proof of the gate on a planted kernel slowdown: a bounded busy loop of
# NS nanoseconds in one operation's path (tests/slowdowns/NAME.patch),
# gated by lab/ab.sh against the unmutated lab kernel.  NS 0 gates the
# unmutated kernel against itself: that pair must pass.
#
#   lab/slowdown.sh [-n RUNS] [-o RESULTS] NAME NS...
#
# RUNS boots of each kernel per NS (default 5).  Prints the gate's table
# per NS and keeps everything in RESULTS/<NS> (default RESULTS:
# build/results/slowdown-<time>).  Exits 1 if a planted slowdown was not
# flagged on the patch's metric, or the unmutated pair was flagged.

set -eu

project=$(cd "$(dirname "$0")/.." && pwd)
build=$project/build/mainline
runs=5
results=""

die() {
	echo "lab/slowdown.sh: $*" >&2
	exit 1
}

while getopts ':n:o:' opt; do
	case $opt in
	n) [[ $OPTARG =~ ^[1-9][0-9]?$ ]] || die "-n wants 1 to 99 runs, not '$OPTARG'"
	   runs=$OPTARG ;;
	o) results=$OPTARG ;;
	*) die "usage: lab/slowdown.sh [-n RUNS] [-o RESULTS] NAME NS..." ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 2 ] || die "usage: lab/slowdown.sh [-n RUNS] [-o RESULTS] NAME NS..."
patch=$project/tests/slowdowns/$1.patch
[ -r "$patch" ] || die "no slowdown $1 (tests/slowdowns/$1.patch)"
metric=$(sed -n 's/^Metric: //p' "$patch")
shift
for ns in "$@"; do
	[[ $ns =~ ^[0-9]+$ ]] || die "NS wants nanoseconds, not '$ns'"
done
results=${results:-$project/build/results/slowdown-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$results"

ksrc=$("$project/scripts/ksrc.sh" mainline)
make -s -C "$project" O="$build" KSRC="$ksrc" all >&2
base=$("$project/lab/kernel.sh" "$ksrc" "$build/lab/kernel")

failed=0
for ns in "$@"; do
	dir=$results/$ns
	mkdir -p "$dir"
	slow=$base
	if [ "$ns" -gt 0 ]; then
		sed "s/@NS@/$ns/" "$patch" >"$dir/slowdown.patch"
		slow=$("$project/lab/kernel.sh" -p "$dir/slowdown.patch" "$ksrc" "$build/lab/slowdown")
	fi
	echo "# $metric with $ns ns planted: $runs boots each, A unmutated, B slowed"
	rc=0
	"$project/lab/ab.sh" -n "$runs" -b "$build" -o "$dir" "$base" "$slow" || rc=$?
	if [ "$ns" -eq 0 ] && [ "$rc" -ne 0 ]; then
		echo "# the unmutated pair did not pass"
		failed=1
	elif [ "$ns" -gt 0 ] && ! grep -q "^gate: REGRESSION snp_op_perf_test: $metric " "$dir/gate.txt"; then
		echo "# not flagged: $metric with $ns ns"
		failed=1
	fi
done
exit "$failed"
