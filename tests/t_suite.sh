#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The suite itself on this machine, through run_tests.sh in quick mode:
# every program's result, the KTAP document checked by the kernel's own
# parser, the real THP sysfs restored after a SIGINT, and a user without
# /dev/kvm access, or a KVM that refuses the framework's vCPU
# (SNP_RMP_INJECT_VCPU_FAILURE), getting SKIPs that say so instead of
# failures.
# Results are printed as "ok N ..." / "not ok N ..."; nested output is
# "# " prefixed.

set -u

top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
runner=$top/run_tests.sh
thp=/sys/kernel/mm/transparent_hugepage
# shellcheck source=lib.sh
. "$top/tests/lib.sh"

# 1. The whole suite in quick mode.
"$runner" -q -b "$BUILD" -o "$T/results" >"$T/ktap.txt" 2>"$T/stderr.txt"
rc=$?
show "$T/ktap.txt"
check "suite exits 0 (got $rc)" test "$rc" -eq 0
check "no test program failed" bash -c "! grep -q '^not ok' '$T/ktap.txt'"
check "kernel_log_clean is ok" grep -qE '^ok [0-9]+ kernel_log_clean( |$)' "$T/ktap.txt"
for prog in "$BUILD"/x86_64/*; do
	if [ -f "$prog" ] && [ -x "$prog" ]; then
		name=$(basename "$prog")
		check "$name reported ok" grep -qE "^ok [0-9]+ $name( |\$)" "$T/ktap.txt"
	fi
done

parser=${KSRC:-}/tools/testing/kunit/kunit.py
if [ -n "${KSRC:-}" ] && [ -f "$parser" ]; then
	# No __pycache__ in KSRC: the tree is never written.
	PYTHONDONTWRITEBYTECODE=1 python3 "$parser" parse "$T/ktap.txt" >"$T/parsed.txt" 2>&1
	prc=$?
	show "$T/parsed.txt"
	check "kunit.py parse accepts the document" test "$prc" -eq 0
	check "kunit.py parse counts no failure" grep -qE 'failed: 0|passed: [0-9]+$' "$T/parsed.txt"
else
	skip "kunit.py parse accepts the document" "no kernel tree's tools/testing/kunit/kunit.py (KSRC unset)"
fi

# 2. The real THP sysfs is restored after a SIGINT in the middle of a run.
snapshot() {
	find "$thp" -type f -perm -u+w -print0 2>/dev/null | sort -z |
		xargs -0 grep -H . 2>/dev/null
}

if [ "$(id -u)" = 0 ] && [ -w "$thp/defrag" ]; then
	mkdir -p "$T/fake/x86_64"
	cat >"$T/fake/x86_64/thp_changer" <<-'EOS'
	#!/bin/bash
	echo always >/sys/kernel/mm/transparent_hugepage/defrag
	echo never >/sys/kernel/mm/transparent_hugepage/enabled
	exec -a snp_rmp_thp_sleeper sleep 60
	EOS
	chmod +x "$T/fake/x86_64/thp_changer"
	snapshot >"$T/thp.before"
	# A background job starts with SIGINT ignored unless told otherwise.
	env --default-signal=INT "$runner" -b "$T/fake" -o "$T/fake/results" \
		>"$T/int.txt" 2>&1 &
	runner_pid=$!
	for _ in $(seq 100); do
		grep -q '\[never\]' "$thp/enabled" && break
		sleep 0.1
	done
	changed=$(grep -c '\[never\]' "$thp/enabled")
	kill -INT "$runner_pid"
	wait "$runner_pid"
	rc=$?
	snapshot >"$T/thp.after"
	check "the test really changed THP enabled" test "$changed" = 1
	check "SIGINT run exits 130 (got $rc)" test "$rc" -eq 130
	check "THP sysfs identical after SIGINT" cmp -s "$T/thp.before" "$T/thp.after"
	check "no test process left after SIGINT" bash -c "! pgrep -f 'snp_rmp_thp_sleepe[r]'"
	diff "$T/thp.before" "$T/thp.after" | sed 's/^/# /'
else
	skip "THP sysfs identical after SIGINT" "not root or $thp not writable"
fi

# 3. Without /dev/kvm access the programs SKIP and say why.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null && id nobody >/dev/null 2>&1; then
	chmod 755 "$T"
	mkdir -m 777 "$T/nobody"
	setpriv --reuid=nobody --regid=nogroup --clear-groups \
		"$runner" -q -b "$BUILD" -o "$T/nobody/results" >"$T/nokvm.txt" 2>&1
	rc=$?
	show "$T/nokvm.txt"
	check "without /dev/kvm the run exits 4 (got $rc)" test "$rc" -eq 4
	check "without /dev/kvm the SKIP names /dev/kvm" grep -qE '^ok [0-9]+ .*# SKIP .*/dev/kvm' "$T/nokvm.txt"
	check "without /dev/kvm nothing fails" bash -c "! grep -q '^not ok' '$T/nokvm.txt'"
else
	skip "without /dev/kvm the programs SKIP" "needs root, setpriv and user nobody"
fi

# 4. A KVM that refuses the framework's vCPU: one reason, no assertion dump.
SNP_RMP_INJECT_VCPU_FAILURE=1 "$runner" -q -b "$BUILD" -o "$T/novcpu" >"$T/novcpu.txt" 2>&1
rc=$?
show "$T/novcpu.txt"
check "a KVM refusing the framework's vCPU: the run exits 4 (got $rc)" test "$rc" -eq 4
check "...every program SKIPs naming it" test "$(grep -cE \
	"^ok [0-9]+ snp_[a-z_]+ # SKIP .*cannot create the framework's vCPU: injected" \
	"$T/novcpu.txt")" -eq "$(find "$BUILD/x86_64" -maxdepth 1 -type f -perm -u+x | wc -l)"
check "...and prints no assertion dump" bash -c "! grep -q 'Test Assertion Failure' '$T/novcpu.txt'"

exit "$FAILED"
