#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Gate kernel B against kernel A in one sitting: boot them in turn,
# A B A B ..., each boot one run of snp_op_perf_test, then compare B's
# runs with A's (scripts/gate.py).  Drift of the machine falls on both
# alike, so under no change the runs are exchangeable and the exact
# Mann-Whitney p bounds the false-alarm rate whatever their spread: the
# gate's CV limit, meant for a baseline saved at another time, is off.
#
#   lab/ab.sh [-n RUNS] [-b BUILD] [-o RESULTS] KERNEL_A KERNEL_B
#
# RUNS boots of each (default 5).  RESULTS (default build/results/ab-<time>)
# keeps each boot's log, A/ and B/ (saved runs gate.py reads) and gate.txt.
# Exits with gate.py's status: 0 pass, 1 regression, 2 bad input.

set -eu

project=$(cd "$(dirname "$0")/.." && pwd)
build=$project/build/mainline
runs=5
results=""

die() {
	echo "lab/ab.sh: $*" >&2
	exit 2
}

while getopts ':n:b:o:' opt; do
	case $opt in
	n) [[ $OPTARG =~ ^[1-9][0-9]?$ ]] || die "-n wants 1 to 99 runs, not '$OPTARG'"
	   runs=$OPTARG ;;
	b) build=$OPTARG ;;
	o) results=$OPTARG ;;
	*) die "usage: lab/ab.sh [-n RUNS] [-b BUILD] [-o RESULTS] KERNEL_A KERNEL_B" ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 2 ] || die "usage: lab/ab.sh [-n RUNS] [-b BUILD] [-o RESULTS] KERNEL_A KERNEL_B"
for k in "$1" "$2"; do
	[ -f "$k" ] || die "no kernel image $k"
done
[ -x "$build/x86_64/snp_op_perf_test" ] || die "no $build/x86_64/snp_op_perf_test: build it first"
results=${results:-$project/build/results/ab-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$results"
results=$(cd "$results" && pwd)

# boot KERNEL KIND I: one run, filed as results/KIND/snp_op_perf_test/I.json.
boot() {
	local dir=$results/$2-$3

	mkdir -p "$dir" "$results/$2/snp_op_perf_test"
	"$project/lab/vmtest.sh" -b "$build" -o "$dir" "$1" -t snp_op_perf_test \
		--save "$dir/save" >"$dir/vmtest.out" 2>&1 || die "$dir: the run failed, see $dir/vmtest.out"
	cp "$dir/save/snp_op_perf_test/1.json" "$results/$2/snp_op_perf_test/$3.json"
	# The guest's manifest names the kernel that ran.
	cp "$dir/save/manifest.json" "$results/$2/"
}

for i in $(seq "$runs"); do
	boot "$1" A "$i"
	boot "$2" B "$i"
done
rc=0
python3 "$project/scripts/gate.py" compare --max-cv 1000000 "$results/A" "$results/B" \
	>"$results/gate.txt" || rc=$?
cat "$results/gate.txt"
exit "$rc"
