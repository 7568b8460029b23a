#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The lab on this machine: a kernel built from KSRC (lab/kernel.sh) boots
# under virtme-ng and runs the suite (lab/vmtest.sh).  The private-memory
# flavour sw_protected must really run there: a SKIP of it on a lab kernel
# fails.  Then what happens to a guest is shown to be a result: a kernel
# command line that panics at boot, a job that hangs and a kernel that does
# not boot each end in "not ok 1 vmtest # <why>" and a non-zero exit.
#
# SNP_RMP_LAB=0 skips it all (say, on a machine without QEMU).
#
# Prints "ok N what", "not ok N what" or "ok N what # SKIP why"; nested
# output is "# " prefixed.

# The predicates below run through check(), which shellcheck cannot follow:
# shellcheck disable=SC2317
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
# shellcheck source=lib.sh
. "$top/tests/lib.sh"

if [ "${SNP_RMP_LAB:-1}" = 0 ]; then
	skip "lab" "SNP_RMP_LAB=0"
	exit 0
fi
if [ -z "${KSRC:-}" ] || [ ! -f "$KSRC/Makefile" ]; then
	skip "lab" "no kernel tree (KSRC unset)"
	exit 0
fi

# ---- make vmtest: a lab kernel of the tree, the suite inside -------------------

version=$(awk '$2 == "=" && $1 ~ /^(VERSION|PATCHLEVEL|SUBLEVEL)$/ { v = v sep $3; sep = "." }
	END { print v }' "$KSRC/Makefile")
kernel=$BUILD/lab/kernel/obj/arch/x86/boot/bzImage
start=$SECONDS
make -s -C "$top" O="$BUILD" KSRC="$KSRC" vmtest VMTEST_ARGS=-q VMTEST_OPTS="-o $T/vm" \
	>"$T/ktap" 2>"$T/vm.err"
rc=$?
show "$T/ktap"
show "$T/vm.err"
echo "# make vmtest ($version): $((SECONDS - start)) s"
check "make vmtest exits 0 (got $rc)" test "$rc" -eq 0
check "lab/kernel.sh built $version from $KSRC" test -f "$kernel"
if [ ! -f "$kernel" ]; then
	exit 1
fi
check "the guest ran the lab kernel ($version)" \
	grep -qE "^# vmtest: guest kernel ${version}[ ,.-]" "$T/ktap"
check "every program reported ok" bash -c "! grep -qE '^not ok' '$T/ktap'"
check "the guest kernel booted without a WARN or BUG" \
	bash -c "! grep -E 'WARNING:|BUG:' '$T/vm/console.log'"

# Results of snp_rmp_user_fault_test that really ran, of one flavour or all.
ran() {
	grep -cE "^# ok [0-9]+ [a-z0-9_]+\\.${1:-[a-z0-9_]+}\$" "$T/ktap"
}

# guest_memfd mmap (6.18+) brings the SIGBUS cases to sw_protected.
if [ "$(printf '%s\n' "$version" 6.18 | sort -V | head -n 1)" = 6.18 ]; then
	least_sw=9 least_all=16
else
	least_sw=6 least_all=10
fi
check "sw_protected ran, not skipped: $(ran sw_protected) results (at least $least_sw)" \
	test "$(ran sw_protected)" -ge "$least_sw"
check "default ran: $(ran default) results" test "$(ran default)" -ge 4
check "snp_rmp_user_fault_test: $(ran) real results (at least $least_all)" \
	test "$(ran)" -ge "$least_all"

stress_ok() {
	python3 - "$T/vm/run/snp_thp_split_stress.json" <<-'EOF'
	import json, sys
	d = json.load(open(sys.argv[1]))
	assert d["env"]["flavour"] == "sw_protected", d["env"]["flavour"]
	assert d["metrics"]["conversions"]["value"] > 0, d["metrics"]["conversions"]
	assert d["env"]["nodes"] == 2 and len(d["per_node"]) == 2, d["per_node"]
	assert all(v == 0 for v in d["invariants"].values()), d["invariants"]
	EOF
}
check "stress: sw_protected, conversions > 0, 2 NUMA nodes, invariants 0" stress_ok

# ---- a kernel built elsewhere --------------------------------------------------

# No .config beside this copy: the guest's /proc/config.gz must serve.
cp "$kernel" "$T/bzImage"
make -s -C "$top" O="$BUILD" KSRC="$KSRC" vmtest KERNEL="$T/bzImage" \
	VMTEST_ARGS="-q -t snp_thp_smoke_test" VMTEST_OPTS="-o $T/vmk" >"$T/ktapk" 2>&1
rc=$?
show "$T/ktapk"
check "make vmtest KERNEL=<a copied bzImage> exits 0 (got $rc)" test "$rc" -eq 0
check "...reads the options from /proc/config.gz" \
	grep -q "^# vmtest: kernel config ($T/vmk/config.gz) has every option" "$T/ktapk"

# A .config beside the image is read first: one without an option is named.
mkdir -p "$T/k"
cp "$kernel" "$T/k/bzImage"
grep -v '^CONFIG_KVM_SW_PROTECTED_VM=' "$BUILD/lab/kernel/obj/.config" >"$T/k/.config"
"$top/lab/vmtest.sh" -b "$BUILD" -o "$T/vmc" -e true "$T/k/bzImage" >"$T/ktapc" 2>&1
show "$T/ktapc"
check "...and names a missing option from the .config beside the image" \
	grep -q "^# vmtest: kernel config ($T/k/.config) lacks .*CONFIG_KVM_SW_PROTECTED_VM" "$T/ktapc"

# ---- what happens to a guest is a result ---------------------------------------

# vmtest_fails WHY ARGS...: exit 1, "not ok 1 vmtest # WHY..." and a console log.
vmtest_fails() {
	local want=$1 out=$T/fail.out rc=0

	shift
	rm -rf "$T/fail"
	"$top/lab/vmtest.sh" -b "$BUILD" -o "$T/fail" "$@" >"$out" 2>&1 || rc=$?
	show "$out"
	[ "$rc" -ne 0 ] || why "exit 0" || return
	grep -q "^not ok 1 vmtest # $want" "$out" || why "no 'not ok 1 vmtest # $want'" || return
	[ -s "$T/fail/console.log" ] || why "no console log kept"
}

check "a kernel command line that panics at boot: not ok, guest kernel panic" \
	vmtest_fails "guest kernel panic: " -a rootfstype=bogus "$kernel"
check "a job that hangs: not ok, TIMEOUT, nothing left running" \
	vmtest_fails "TIMEOUT " -T 20 -e 'sleep 600' "$kernel"
check "...no QEMU of that job left running" bash -c "! pgrep -f 'qemu-syste[m].*$T/fail'"
echo "not a kernel" >"$T/bogus"
check "a kernel that does not boot: not ok, boot failure" \
	vmtest_fails "boot failure: " "$T/bogus"

exit "$FAILED"
