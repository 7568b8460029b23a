#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The suite itself on this machine, through run_tests.sh in quick mode:
# every program's result, the KTAP document checked by the kernel's own
# parser, the real THP sysfs restored after a SIGINT, and a user without
# /dev/kvm access getting SKIPs that name /dev/kvm instead of failures.
# Results are printed as "ok N ..." / "not ok N ..."; nested output is
# "# " prefixed.

set -u

top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
runner=$top/run_tests.sh
thp=/sys/kernel/mm/transparent_hugepage
tmp=$(mktemp -d)
n=0
failed=0

trap 'rm -rf "$tmp"' EXIT

result() {
	n=$((n + 1))
	if [ "$1" = ok ]; then
		echo "ok $n $2"
	elif [ "$1" = skip ]; then
		echo "ok $n $2 # SKIP $3"
	else
		echo "not ok $n $2"
		failed=1
	fi
}

check() {
	local name=$1

	shift
	if "$@"; then result ok "$name"; else result fail "$name"; fi
}

show() {
	sed 's/^/# /' "$1"
}

# 1. The whole suite in quick mode.
"$runner" -q -b "$BUILD" -o "$tmp/results" >"$tmp/ktap.txt" 2>"$tmp/stderr.txt"
rc=$?
show "$tmp/ktap.txt"
check "suite exits 0 (got $rc)" test "$rc" -eq 0
check "no test program failed" bash -c "! grep -q '^not ok' '$tmp/ktap.txt'"
check "kernel_log_clean is ok" grep -qE '^ok [0-9]+ kernel_log_clean( |$)' "$tmp/ktap.txt"
for prog in "$BUILD"/x86_64/*; do
	if [ -f "$prog" ] && [ -x "$prog" ]; then
		name=$(basename "$prog")
		check "$name reported ok" grep -qE "^ok [0-9]+ $name( |\$)" "$tmp/ktap.txt"
	fi
done

parser=${KSRC:-}/tools/testing/kunit/kunit.py
if [ -n "${KSRC:-}" ] && [ -f "$parser" ]; then
	# No __pycache__ in KSRC: the tree is never written.
	PYTHONDONTWRITEBYTECODE=1 python3 "$parser" parse "$tmp/ktap.txt" >"$tmp/parsed.txt" 2>&1
	prc=$?
	show "$tmp/parsed.txt"
	check "kunit.py parse accepts the document" test "$prc" -eq 0
	check "kunit.py parse counts no failure" grep -qE 'failed: 0|passed: [0-9]+$' "$tmp/parsed.txt"
else
	result skip "kunit.py parse accepts the document" "no kernel tree's tools/testing/kunit/kunit.py (KSRC unset)"
fi

# 2. The real THP sysfs is restored after a SIGINT in the middle of a run.
snapshot() {
	find "$thp" -type f -perm -u+w -print0 2>/dev/null | sort -z |
		xargs -0 grep -H . 2>/dev/null
}

if [ "$(id -u)" = 0 ] && [ -w "$thp/defrag" ]; then
	mkdir -p "$tmp/fake/x86_64"
	cat >"$tmp/fake/x86_64/thp_changer" <<-'EOS'
	#!/bin/bash
	echo always >/sys/kernel/mm/transparent_hugepage/defrag
	echo never >/sys/kernel/mm/transparent_hugepage/enabled
	exec -a snp_rmp_thp_sleeper sleep 60
	EOS
	chmod +x "$tmp/fake/x86_64/thp_changer"
	snapshot >"$tmp/thp.before"
	# A background job starts with SIGINT ignored unless told otherwise.
	env --default-signal=INT "$runner" -b "$tmp/fake" -o "$tmp/fake/results" \
		>"$tmp/int.txt" 2>&1 &
	runner_pid=$!
	for _ in $(seq 100); do
		grep -q '\[never\]' "$thp/enabled" && break
		sleep 0.1
	done
	changed=$(grep -c '\[never\]' "$thp/enabled")
	kill -INT "$runner_pid"
	wait "$runner_pid"
	rc=$?
	snapshot >"$tmp/thp.after"
	check "the test really changed THP enabled" test "$changed" = 1
	check "SIGINT run exits 130 (got $rc)" test "$rc" -eq 130
	check "THP sysfs identical after SIGINT" cmp -s "$tmp/thp.before" "$tmp/thp.after"
	check "no test process left after SIGINT" bash -c "! pgrep -f 'snp_rmp_thp_sleepe[r]'"
	diff "$tmp/thp.before" "$tmp/thp.after" | sed 's/^/# /'
else
	result skip "THP sysfs identical after SIGINT" "not root or $thp not writable"
fi

# 3. Without /dev/kvm access the programs SKIP and say why.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null && id nobody >/dev/null 2>&1; then
	chmod 755 "$tmp"
	mkdir -m 777 "$tmp/nobody"
	setpriv --reuid=nobody --regid=nogroup --clear-groups \
		"$runner" -q -b "$BUILD" -o "$tmp/nobody/results" >"$tmp/nokvm.txt" 2>&1
	rc=$?
	show "$tmp/nokvm.txt"
	check "without /dev/kvm the run exits 4 (got $rc)" test "$rc" -eq 4
	check "without /dev/kvm the SKIP names /dev/kvm" grep -qE '^ok [0-9]+ .*# SKIP .*/dev/kvm' "$tmp/nokvm.txt"
	check "without /dev/kvm nothing fails" bash -c "! grep -q '^not ok' '$tmp/nokvm.txt'"
else
	result skip "without /dev/kvm the programs SKIP" "needs root, setpriv and user nobody"
fi

exit "$failed"
