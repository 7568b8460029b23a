#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# snp_rmp_user_fault_test must be able to fail: each case that runs here,
# with its expectation inverted (-X CASE: a SIGBUS expected one byte off,
# a split expected not to happen, EFAULT expected to succeed, a pattern
# the guest must not see, a kernel log line the scan must flag), has to
# come out "not ok" and the program has to exit 1.  Bad options must be
# refused with usage and exit 1.

set -u

top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
prog=$BUILD/x86_64/snp_rmp_user_fault_test
# shellcheck source=lib.sh
. "$top/tests/lib.sh"

if [ ! -x "$prog" ]; then
	check "$prog is built" false
	exit 1
fi

"$prog" -f default >"$T/plain.txt" 2>&1
plain_rc=$?
sed 's/^/# /' "$T/plain.txt"
check "the default flavour passes as it is (exit $plain_rc)" test "$plain_rc" -eq 0

# Cases that ran (not skipped) on the default flavour.
ran=$(sed -nE 's/^ok [0-9]+ ([a-z0-9_]+)\.default$/\1/p' "$T/plain.txt")
check "some cases ran on the default flavour" test -n "$ran"

for case in $ran; do
	"$prog" -f default -X "$case" >"$T/$case.txt" 2>&1
	rc=$?
	grep -E "^(not )?ok [0-9]+ $case\.default" "$T/$case.txt" | sed 's/^/# /'
	grep -E '(expected|got)' "$T/$case.txt" | head -n 2 | sed 's/^/# /'
	check "-X $case makes $case.default fail" grep -qE "^not ok [0-9]+ $case\.default\$" "$T/$case.txt"
	check "-X $case fails nothing else" test "$(grep -c '^not ok' "$T/$case.txt")" -eq 1
	check "-X $case exits 1 (got $rc)" test "$rc" -eq 1
done

# A run in which every case skipped is a skip (4), not a pass.
if ! grep -q '^# flavour snp: usable' "$T/plain.txt"; then
	"$prog" -f snp >"$T/snp.txt" 2>&1
	rc=$?
	check "-f snp, where snp cannot run, exits 4 (got $rc)" test "$rc" -eq 4
else
	skip "-f snp, where snp cannot run, exits 4" "snp runs on this machine"
fi

# shellcheck disable=SC2317 # only called through check()
usage_fails() {
	"$prog" "$@" >"$T/usage.out" 2>"$T/usage.err"
	[ $? -eq 1 ] && grep -q '^usage:' "$T/usage.err" && ! grep -q '^ok' "$T/usage.out"
}

check "-f nosuch is refused with usage" usage_fails -f nosuch
check "-s 12x is refused with usage" usage_fails -s 12x
check "-X nosuch is refused with usage" usage_fails -X nosuch
check "a stray argument is refused with usage" usage_fails stray
check "-Z is refused with usage" usage_fails -Z
check "-h prints usage and exits 0" bash -c "'$prog' -h | grep -q '^usage:'"

exit "$FAILED"
