#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Proof of the gate on a planted kernel slowdown: a bounded busy loop of
# NS nanoseconds in one operation's path (tests/slowdowns/NAME.patch),
# and snp_op_perf_test on the unmutated lab kernel (A) and on the slowed
# one (B), one boot each, interleaved A B A B ... so that drift of the
# machine falls on both alike.  Then scripts/gate.py compares B with A.
#
#   lab/slowdown.sh [-n RUNS] [-o RESULTS] NAME NS...
#
# RUNS boots of each kernel per NS (default 5).  Prints the gate's table
# per NS; RESULTS (default build/results/slowdown-<time>) keeps each
# boot's log and RESULTS/<NS>/{A,B}, saved runs that gate.py reads.
# Exits 1 if the gate did not flag the patch's metric for every NS.

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
	*) sed -n 's/^#   //p' "$0" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 2 ] || die "usage: lab/slowdown.sh [-n RUNS] [-o RESULTS] NAME NS..."
patch=$project/tests/slowdowns/$1.patch
[ -r "$patch" ] || die "no slowdown $1 (tests/slowdowns/$1.patch)"
metric=$(sed -n 's/^Metric: //p' "$patch")
shift
for ns in "$@"; do
	[[ $ns =~ ^[1-9][0-9]*$ ]] || die "NS wants nanoseconds, not '$ns'"
done
results=${results:-$project/build/results/slowdown-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$results"
results=$(cd "$results" && pwd)

ksrc=$("$project/scripts/ksrc.sh" mainline)
make -s -C "$project" O="$build" KSRC="$ksrc" "$build/x86_64/snp_op_perf_test" >&2
base=$("$project/lab/kernel.sh" "$ksrc" "$build/lab/kernel")

# boot KERNEL DIR: one run of snp_op_perf_test, saved in DIR/save.
boot() {
	mkdir -p "$2"
	"$project/lab/vmtest.sh" -b "$build" -o "$2" "$1" -t snp_op_perf_test \
		--save "$2/save" >"$2/vmtest.out" 2>&1 ||
		die "$2: the run failed, see $2/vmtest.out"
}

# collect DIR KIND: the KIND boots' runs as one saved run DIR/KIND.
collect() {
	local i

	mkdir -p "$1/$2/snp_op_perf_test"
	for i in $(seq "$runs"); do
		cp "$1/$2-$i/save/snp_op_perf_test/1.json" "$1/$2/snp_op_perf_test/$i.json"
	done
	# The guest's manifest: it names the kernel that ran.
	cp "$1/$2-1/save/manifest.json" "$1/$2/"
}

failed=0
for ns in "$@"; do
	dir=$results/$ns
	mkdir -p "$dir"
	sed "s/@NS@/$ns/" "$patch" >"$dir/slowdown.patch"
	slow=$("$project/lab/kernel.sh" -p "$dir/slowdown.patch" "$ksrc" "$build/lab/slowdown")
	for i in $(seq "$runs"); do
		boot "$base" "$dir/A-$i"
		boot "$slow" "$dir/B-$i"
	done
	collect "$dir" A
	collect "$dir" B
	echo "# $metric with $ns ns planted: $runs runs each, A = unmutated, B = slowed"
	python3 "$project/scripts/gate.py" compare "$dir/A" "$dir/B" | tee "$dir/gate.txt" || true
	grep -q "^gate: REGRESSION snp_op_perf_test: $metric " "$dir/gate.txt" || {
		echo "# not flagged: $metric with $ns ns"
		failed=1
	}
done
exit "$failed"
