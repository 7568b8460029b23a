#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Kernel fault injection: the suite's programs on a lab kernel whose slab
# and page allocations fail now and then (lab/faultinject.config).
#
#   lab/faultinject.sh [-t mainline|lts] [-o RESULTS] [-r ROUNDS] [-p PERCENT...]
#
# Each program runs ROUNDS times (default 3) at each failure probability
# (default 1 % and 5 %), failslab and fail_page_alloc together, only for
# the program's own tasks (task-filter, make-it-fail).  Each run must end
# within its timeout with ok, not ok or SKIP and a reason: a hang, a crash
# of the program (a signal) or a THP setting left changed is a defect, and
# so is a guest that panics or hangs.  Prints one line per run, then the
# counts; exits 1 on any defect.  The kernel is built apart from the lab
# kernel, in BUILD/lab/faultinject.

set -eu
set -o pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
tree=mainline
results=""
rounds=3
percents=(1 5)
PROG_TIMEOUT=180

while getopts ':t:o:r:p:' opt; do
	case $opt in
	t) tree=$OPTARG ;;
	o) results=$OPTARG ;;
	r) [[ $OPTARG =~ ^[1-9][0-9]?$ ]] || die "-r wants 1 to 99 rounds, not '$OPTARG'"
	   rounds=$OPTARG ;;
	p) [[ $OPTARG =~ ^[1-9][0-9]?$|^100$ ]] || die "-p wants a percentage, not '$OPTARG'"
	   percents=("$OPTARG") ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
case $tree in
mainline) build=$project/build/mainline ;;
lts) build=$project/build ;;
*) die "-t wants mainline or lts, not '$tree'" ;;
esac
results=${results:-$project/build/results/faultinject-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$results"
results=$(cd "$results" && pwd)

ksrc=$("$project/scripts/ksrc.sh" "$tree")
make -s -C "$project" O="$build" KSRC="$ksrc" all >&2
kernel=$("$project/lab/kernel.sh" "$ksrc" "$build/lab/faultinject" \
	"$project/lab/faultinject.config")

# The guest's side.  THP settings are compared around every run, since a
# program that dies half way must still leave them as it found them.
cat >"$results/faults.sh" <<EOF
#!/bin/bash
out=$results
thp=/sys/kernel/mm/transparent_hugepage
dbg=/sys/kernel/debug
snapshot() {
	find "\$thp" -type f -perm /222 -print0 | sort -z | xargs -0 grep -H . 2>/dev/null
}
for f in failslab fail_page_alloc; do
	echo Y >\$dbg/\$f/task-filter
	echo 1 >\$dbg/\$f/interval
	echo -1 >\$dbg/\$f/times
	echo 0 >\$dbg/\$f/verbose
	echo N >\$dbg/\$f/ignore-gfp-wait
done
echo N >\$dbg/fail_page_alloc/ignore-gfp-highmem
export SNP_RMP_QUICK=1
# run NAME BIN: allocations fail for BIN's tasks only, from its exec on.
# It runs chrooted in a tmpfs of its own, with its libraries, through
# their loader, and writes its output there: a failing task that so much
# as holds the 9p root can leave the host's files unusable for everyone
# after (seen on 7.2: every exec from 9p gives EINVAL).
root=/dev/shm/fi
mkdir -p \$root && mount -t tmpfs fi \$root
run() {
	local name=\$1 bin=\$2 pid dog t lib

	mkdir -p \$root/dev \$root/proc \$root/sys
	cp "\$bin" \$root/prog
	for lib in \$(ldd "\$bin" | grep -o '/[^ ]*'); do
		cp "\$lib" \$root/
	done
	mount --bind /dev \$root/dev
	mount -t proc proc \$root/proc
	mount -t sysfs sysfs \$root/sys
	snapshot >"\$out/thp.before"
	[ -s "\$out/thp.before" ] || echo "no THP snapshot" >"\$out/\$name.thp"
	chroot \$root /ld-linux-x86-64.so.2 --library-path / /prog >\$root/out 2>&1 </dev/null &
	pid=\$!
	while [ "\$(readlink /proc/\$pid/exe)" != \$root/ld-linux-x86-64.so.2 ] && kill -0 \$pid; do
		sleep 0.01
	done
	for t in /proc/\$pid/task/*; do
		echo 1 >\$t/make-it-fail
	done 2>/dev/null || touch "\$out/\$name.early"
	( sleep $PROG_TIMEOUT; touch "\$out/\$name.hang"; kill -KILL \$pid ) 2>/dev/null &
	dog=\$!
	wait \$pid
	echo \$? >"\$out/\$name.rc"
	kill \$dog 2>/dev/null
	umount \$root/dev \$root/proc \$root/sys
	cp \$root/out "\$out/\$name.out"
	snapshot >"\$out/thp.after"
	cmp -s "\$out/thp.before" "\$out/thp.after" || echo changed >"\$out/\$name.thp"
}
for pct in ${percents[*]}; do
	echo \$pct >\$dbg/failslab/probability
	echo \$pct >\$dbg/fail_page_alloc/probability
	for round in \$(seq $rounds); do
		for prog in snp_rmp_user_fault_test snp_thp_smoke_test snp_thp_split_stress; do
			run \$prog.\$pct.\$round $build/x86_64/\$prog
		done
	done
done
umount \$root
EOF

"$project/lab/vmtest.sh" -b "$build" -o "$results" -T 3600 \
	-e "bash $results/faults.sh" "$kernel" >"$results/vmtest.out" 2>&1 || true
! grep '^not ok 1 vmtest' "$results/vmtest.out" ||
	die "the guest did not finish: see $results/console.log"

# ended NAME: how one run ended, and why.
ended() {
	local rc why

	rc=$(cat "$results/$1.rc")
	why=$(grep -m 1 -E '^(not ok|1\.\.0 # SKIP|  [a-zA-Z0-9_/.]+\.c:[0-9]+:)' "$results/$1.out") || why=""
	[ ! -f "$results/$1.hang" ] || { echo "hang (killed after $PROG_TIMEOUT s)"; return; }
	case $rc in
	0) echo "ok" ;;
	4) echo "skip ${why#*# SKIP }" ;;
	1 | 254) echo "not-ok ${why:-exit $rc}" ;;
	# The kernel's OOM killer: an allocation failed in a fault.
	137) echo "oom-killed" ;;
	*) echo "crash (exit $rc) $why" ;;
	esac
}

for rcfile in "$results"/*.rc; do
	name=$(basename "$rcfile" .rc)
	[ "$name" != guest ] || continue
	outcome=$(ended "$name")
	[ ! -f "$results/$name.thp" ] || outcome="thp-changed; $outcome"
	# It ended before its allocations could be made to fail.
	[ ! -f "$results/$name.early" ] || outcome="$outcome (not injected)"
	printf '%-36s %s\n' "$name" "$outcome"
done >"$results/runs.txt"
cat "$results/runs.txt"
for kind in ok not-ok skip oom-killed hang crash thp-changed; do
	echo "# $kind: $(grep -cE "^[^ ]+ +${kind}([ ;]|\$)" "$results/runs.txt")"
done
! grep -qE '^[^ ]+ +(hang|crash|thp-changed)' "$results/runs.txt"
