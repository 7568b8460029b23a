#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Boot a kernel under virtme-ng and run the suite in it:
#
#   lab/vmtest.sh [-b BUILD] [-o RESULTS] [-T SECONDS] [-a CMDLINE] [-e CMD]
#                 KERNEL [RUN_TESTS_ARGS...]
#
# The guest sees the host's root read-only (so the suite's build, at the
# same path) and RESULTS read-write.  run_tests.sh runs inside; its KTAP
# comes back on stdout and the guest's exit status is ours.  -e CMD runs
# CMD in the project folder instead, its output on stdout.
#
# Whatever happens to the guest is a result, never a hang: a watchdog (-T)
# ends the whole VM, and a guest kernel panic, a timeout or a guest that
# never reached its command ends with "not ok 1 vmtest # ..." and exit 1.
# The console log is kept as RESULTS/console.log.
#
# The guest: 2 vCPUs, 4 GiB in two NUMA nodes, one socket each (with both
# vCPUs in one socket, topology_sane() in arch/x86/kernel/smpboot.c WARNs
# at boot that a cache sibling is on another node).  KVM where the host can run
# the guest (/dev/kvm and VMX or SVM in the CPU flags); elsewhere TCG with
# -cpu max, whose emulated SVM with NPT runs the guest's own kvm_amd.
# VMTEST_ACCEL=kvm|tcg overrides the choice and VMTEST_QEMU_OPTS adds
# QEMU options (a later -cpu wins over -cpu max).
#
# TCG runs both vCPUs on one thread unless VMTEST_TCG_THREAD=multi: with a
# thread per vCPU, QEMU 7.2's nested NPT lets the stress test's guest
# triple-fault in about 1 run in 10, which one thread, or kvm_amd.npt=0,
# never did (README, "The lab's triple faults").

set -eu
set -o pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
build=$project/build
results=""
watchdog=1800
append=()
guest_cmd=""

while getopts ':b:o:T:a:e:' opt; do
	case $opt in
	b) build=$OPTARG ;;
	o) results=$OPTARG ;;
	T) [[ $OPTARG =~ ^[1-9][0-9]*$ ]] || die "-T wants seconds, not '$OPTARG'"
	   watchdog=$OPTARG ;;
	a) append+=(--append "$OPTARG") ;;
	e) guest_cmd=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage
kernel=$1
shift
[ -f "$kernel" ] || die "no kernel image $kernel"
kernel=$(cd "$(dirname "$kernel")" && pwd)/$(basename "$kernel")
build=$(cd "$build" && pwd) || die "no build folder $build"
[ -n "$guest_cmd" ] || [ -x "$build/x86_64/snp_rmp_user_fault_test" ] ||
	die "no suite in $build/x86_64: run make first"
results=${results:-$build/results/vm-$(date -u +%Y%m%dT%H%M%SZ)-$$}
mkdir -p "$results"
results=$(cd "$results" && pwd)
rm -f "$results/guest.rc" "$results/guest.out" "$results/guest.started"

vng_dir=$("$project/scripts/ksrc.sh" virtme-ng) || die "virtme-ng could not be provisioned"
command -v qemu-system-x86_64 >/dev/null || die "no qemu-system-x86_64 (make deps)"

accel=${VMTEST_ACCEL:-}
if [ -z "$accel" ]; then
	accel=tcg
	if [ -r /dev/kvm ] && [ -w /dev/kvm ] && grep -qw -e vmx -e svm /proc/cpuinfo; then
		accel=kvm
	fi
fi
case $accel in
kvm) accel_opts=() ;;
tcg) accel_opts=(--disable-kvm "--qemu-opts=-accel tcg,thread=${VMTEST_TCG_THREAD:-single}") ;;
*) die "VMTEST_ACCEL must be kvm or tcg, not '$accel'" ;;
esac
if [ -n "${VMTEST_QEMU_OPTS:-}" ]; then
	accel_opts+=("--qemu-opts=$VMTEST_QEMU_OPTS")
fi

# The guest's side: mark the start, run, keep the exit status.
if [ -z "$guest_cmd" ]; then
	printf -v guest_cmd '%q ' ./run_tests.sh -b "$build" -o "$results/run" "$@"
fi
cat >"$results/guest.sh" <<EOF
#!/bin/bash
uname -r >$results/guest.started
cp /proc/config.gz $results/ 2>/dev/null
cd $project
( $guest_cmd ) >$results/guest.out 2>$results/guest.err
echo \$? >$results/guest.rc
EOF

start=$SECONDS
echo "lab/vmtest.sh: booting $kernel ($accel), watchdog ${watchdog} s" >&2
rc=0
PATH=$vng_dir/usr/bin:$PATH PYTHONPATH=$vng_dir/usr/lib/python3/dist-packages \
	timeout --kill-after=10 "$watchdog" /usr/bin/python3 "$vng_dir/usr/bin/vng" \
	--run "$kernel" "${accel_opts[@]}" --verbose --cpus 2 --memory 4G \
	"--qemu-opts=-smp 2,sockets=2,cores=1,threads=1" \
	--numa 2G,cpus=0 --numa 2G,cpus=1 --rwdir "$results" --cwd "$project" \
	"${append[@]}" --exec "bash $results/guest.sh" \
	</dev/null >"$results/console.log" 2>&1 || rc=$?
elapsed=$((SECONDS - start))

# not_ok WHY: the guest gave no result of its own.
not_ok() {
	echo "TAP version 13"
	echo "1..1"
	if [ -s "$results/guest.out" ]; then
		echo "# the guest's output so far:"
		sed 's/^/# /' "$results/guest.out"
	fi
	echo "not ok 1 vmtest # $1"
	echo "# console log: $results/console.log"
	exit 1
}

panic=$(grep -m 1 -o 'Kernel panic - not syncing.*' "$results/console.log" | tr -d '\r') || true
if [ -n "$panic" ]; then
	not_ok "guest kernel panic: $panic"
elif [ ! -s "$results/guest.rc" ] && ((rc == 124 || rc == 137)); then
	not_ok "TIMEOUT the VM ran for $elapsed s (watchdog $watchdog s)"
elif [ ! -f "$results/guest.started" ]; then
	not_ok "boot failure: the guest never started its command (vng exit $rc): $(
		grep -v '^[[:space:]]*$' "$results/console.log" | tail -n 1 | tr -d '\r')"
elif [ ! -s "$results/guest.rc" ]; then
	not_ok "the guest stopped in its command (vng exit $rc): $(
		grep -v '^[[:space:]]*$' "$results/console.log" | tail -n 1 | tr -d '\r')"
fi

# The kernel's configuration: the build's .config beside its bzImage, else
# /proc/config.gz of the guest.  Report what the suite's fragment wants.
config_report() {
	local dir=${kernel%/*} conf="" from missing

	for from in "$dir/.config" "$dir/../../../.config" "$dir/config-${kernel##*/vmlinuz-}"; do
		if [ -f "$from" ]; then
			conf=$(cat "$from")
			break
		fi
	done
	if [ -z "$conf" ] && [ -f "$results/config.gz" ]; then
		from=$results/config.gz conf=$(zcat "$results/config.gz")
	fi
	if [ -z "$conf" ]; then
		echo "# vmtest: kernel config unknown (no .config beside it, no /proc/config.gz)"
		return
	fi
	missing=$(grep -o '^CONFIG_[A-Z0-9_]*=y' "$project/kvm/config" | while read -r opt; do
		grep -qx -e "$opt" -e "${opt%=y}=m" <<<"$conf" || printf '%s ' "${opt%=y}"
	done)
	if [ -n "$missing" ]; then
		echo "# vmtest: kernel config ($(realpath "$from")) lacks options of the suite's config fragment: $missing"
	else
		echo "# vmtest: kernel config ($(realpath "$from")) has every option of the suite's config fragment"
	fi
}

# Which flavours ran, from the per-case results ("# ok N case.flavour").
flavour_report() {
	local f n ran="" skipped=""

	for f in snp sw_protected default legacy_v6; do
		n=$(grep -cE "^# ok [0-9]+ [a-z0-9_]+\.$f\$" "$results/guest.out") || true
		((n == 0)) || ran+=" $f ($n)"
		n=$(grep -cE "^# ok [0-9]+ [a-z0-9_]+\.$f # SKIP" "$results/guest.out") || true
		((n == 0)) || skipped+=" $f ($n)"
	done
	echo "# vmtest: flavours that ran:${ran:- none}; skipped:${skipped:- none}"
}

cat "$results/guest.out"
echo "# vmtest: guest kernel $(cat "$results/guest.started"), accel $accel, $elapsed s"
flavour_report
config_report
grt=$(cat "$results/guest.rc")
exit "$grt"
