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
#   lab/ab.sh [-n RUNS] [-o RESULTS] -s NAME NS...
#
# RUNS boots of each (default 5).  RESULTS (default build/results/ab-<time>)
# keeps each boot's log, A/ and B/ (saved runs gate.py reads) and gate.txt.
# Exits with gate.py's status: 0 pass, 1 regression, 2 bad input.
#
# -s proves the gate on a planted slowdown: a bounded busy loop of NS
# nanoseconds in one operation's path (tests/slowdowns/NAME.patch), in the
# mainline lab kernel, gated against the unmutated one, in RESULTS/<NS>
# per NS.  NS 0 gates the unmutated kernel against itself.  Exits 1 if a
# slowdown was not flagged on the patch's metric, or NS 0 was flagged.

set -eu

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
build=$project/build/mainline
runs=5
results=""
slowdown=""

# Anything but a pass or a regression is 2, apart from gate.py's 1.
die() {
	say "$@"
	exit 2
}

while getopts ':n:b:o:s:' opt; do
	case $opt in
	n) [[ $OPTARG =~ ^[1-9][0-9]?$ ]] || die "-n wants 1 to 99 runs, not '$OPTARG'"
	   runs=$OPTARG ;;
	b) build=$OPTARG ;;
	o) results=$OPTARG ;;
	s) slowdown=$project/tests/slowdowns/$OPTARG.patch
	   [ -r "$slowdown" ] || die "no slowdown $OPTARG (tests/slowdowns/$OPTARG.patch)" ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
results=${results:-$project/build/results/ab-$(date -u +%Y%m%dT%H%M%SZ)}

# boot KERNEL DIR KIND I: one run, filed as DIR/KIND/snp_op_perf_test/I.json.
boot() {
	local dir=$2/$3-$4

	mkdir -p "$dir" "$2/$3/snp_op_perf_test"
	"$project/lab/vmtest.sh" -b "$build" -o "$dir" "$1" -t snp_op_perf_test \
		--save "$dir/save" >"$dir/vmtest.out" 2>&1 || die "$dir: the run failed, see $dir/vmtest.out"
	cp "$dir/save/snp_op_perf_test/1.json" "$2/$3/snp_op_perf_test/$4.json"
	# The guest's manifest names the kernel that ran.
	cp "$dir/save/manifest.json" "$2/$3/"
}

# ab KERNEL_A KERNEL_B DIR: the boots in turn, then the gate's table.
ab() {
	local i rc=0

	mkdir -p "$3"
	for i in $(seq "$runs"); do
		boot "$1" "$3" A "$i"
		boot "$2" "$3" B "$i"
	done
	python3 "$project/scripts/gate.py" compare --max-cv 1000000 "$3/A" "$3/B" \
		>"$3/gate.txt" || rc=$?
	cat "$3/gate.txt"
	return "$rc"
}

if [ -z "$slowdown" ]; then
	[ $# -eq 2 ] || usage
	for k; do
		[ -f "$k" ] || die "no kernel image $k"
	done
	[ -x "$build/x86_64/snp_op_perf_test" ] || die "no $build/x86_64/snp_op_perf_test: build it first"
	rc=0
	ab "$1" "$2" "$results" || rc=$?
	exit "$rc"
fi

[ $# -ge 1 ] || usage
for ns; do
	[[ $ns =~ ^[0-9]+$ ]] || die "NS wants nanoseconds, not '$ns'"
done
metric=$(sed -n 's/^Metric: //p' "$slowdown")
ksrc=$("$project/scripts/ksrc.sh" mainline)
make -s -C "$project" O="$build" KSRC="$ksrc" all >&2
base=$("$project/lab/kernel.sh" "$ksrc" "$build/lab/kernel")

failed=0
for ns; do
	dir=$results/$ns
	slow=$base
	if [ "$ns" -gt 0 ]; then
		mkdir -p "$dir"
		sed "s/@NS@/$ns/" "$slowdown" >"$dir/slowdown.patch"
		slow=$("$project/lab/kernel.sh" -p "$dir/slowdown.patch" "$ksrc" "$build/lab/slowdown")
	fi
	echo "# $metric with $ns ns planted: $runs boots each, A unmutated, B slowed"
	rc=0
	ab "$base" "$slow" "$dir" || rc=$?
	if [ "$ns" -eq 0 ] && [ "$rc" -ne 0 ]; then
		echo "# the unmutated pair did not pass"
		failed=1
	elif [ "$ns" -gt 0 ] && ! grep -q "^gate: REGRESSION snp_op_perf_test: $metric " "$dir/gate.txt"; then
		echo "# not flagged: $metric with $ns ns"
		failed=1
	fi
done
exit "$failed"
