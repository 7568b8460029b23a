#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Test run_tests.sh with fake test programs, a fake THP sysfs folder and a
# fake kernel log, so neither /dev/kvm nor root is needed and the real
# /sys/kernel/mm/transparent_hugepage and /dev/kmsg are never touched.
#
# Prints "ok N what" or "not ok N what" (or "ok N what # SKIP why") per
# check, with "# " lines saying why a check failed; exits 1 if any failed.
# KSRC=/path/to/linux enables the check with the kernel's KTAP parser.
#
# The predicates below run through check(), which shellcheck cannot follow:
# shellcheck disable=SC2317

set -u

HERE=$(cd -- "$(dirname -- "$0")" && pwd -P)
readonly REAL_RUNNER=$HERE/../run_tests.sh
RUNNER=$REAL_RUNNER		# the one runner() starts
# shellcheck source=lib.sh
. "$HERE/lib.sh"
RC=0
STREAMED=0

# Never the real sysfs or /dev/kmsg, and no settings from the caller.
export SNP_RMP_THP_DIR=$T/thp
export SNP_RMP_KLOG_FILE=$T/klog
export FAKE_BIN=$T/bin
unset O SNP_RMP_TIMEOUT SNP_RMP_QUICK SNP_RMP_RESULTS SNP_RMP_METRICS

# ---- reporting ----------------------------------------------------------

# ---- fixtures -----------------------------------------------------------

# fake NAME [DIR]: a test program from stdin.
fake() {
	local dir=${2:-$T/build/x86_64}

	cat >"$dir/$1"
	chmod +x "$dir/$1"
}

make_build() {
	mkdir -p "$T/build/x86_64/subdir" "$T/build2/x86_64" "$T/build3/x86_64" \
		"$T/empty/x86_64" "$T/bin"
	# A sleeper with a name no other process has, for pgrep.
	ln -s "$(command -v sleep)" "$T/bin/snp-fake-sleep"
	echo "not a test" >"$T/build/x86_64/notes.txt"

	fake pass_ok <<-'EOF'
		#!/bin/sh
		echo "TAP version 13"
		echo "1..2"
		echo "ok 1 first"
		echo "ok 2 second"
		echo "# Totals: pass:2 fail:0 xfail:0 xpass:0 skip:0 error:0"
		echo "metrics=${SNP_RMP_METRICS:-unset} results=${SNP_RMP_RESULTS:-unset}"
		echo "quick=${SNP_RMP_QUICK:-0}"
		echo '{"passed": 2}' >"$SNP_RMP_METRICS"
	EOF
	fake fail_one <<-'EOF'
		#!/bin/sh
		echo "not ok 1 widget frobbed" >&2
		exit 1
	EOF
	# The decoy comes last: the "1..0 # SKIP" reason must still win.
	fake skip_widget <<-'EOF'
		#!/bin/sh
		echo "1..0 # SKIP no widget"
		echo "# SKIP decoy"
		exit 4
	EOF
	fake hang <<-'EOF'
		#!/bin/sh
		echo "# hanging"
		"$FAKE_BIN/snp-fake-sleep" 3600 &
		wait
	EOF
	# Flips THP knobs as sysfs would show them; FAKE_HOLD=1 then hangs.
	fake thp_poke <<-'EOF'
		#!/bin/sh
		echo "always madvise [never]" >"$SNP_RMP_THP_DIR/enabled"
		echo 0 >"$SNP_RMP_THP_DIR/khugepaged/defrag"
		echo "# THP knobs flipped"
		if [ -n "${FAKE_HOLD:-}" ]; then
			"$FAKE_BIN/snp-fake-sleep" 3600 &
			wait
		fi
	EOF
	# Logs to the fake kernel log as a test would to the real one.
	fake klog_poke "$T/build2/x86_64" <<-'EOF'
		#!/bin/sh
		echo "$SNP_RMP_KLOG_MARKER" >>"$SNP_RMP_KLOG_FILE"
		echo "${FAKE_KLOG_LINE:-kvm: all quiet}" >>"$SNP_RMP_KLOG_FILE"
		echo "marker=$SNP_RMP_KLOG_MARKER"
	EOF
	# Leaves a child in a session of its own, out of its process group.
	fake escapee "$T/build3/x86_64" <<-'EOF'
		#!/bin/sh
		setsid "$FAKE_BIN/snp-fake-sleep" 3601 &
		while ! pgrep -f "$FAKE_BIN/snp-fake-sleep 3601" >/dev/null; do
			sleep 0.05
		done
		echo "# escaped"
	EOF
	# Exits at once, leaving a child in its group, not holding the output.
	fake leaver "$T/build3/x86_64" <<-'EOF'
		#!/bin/sh
		"$FAKE_BIN/snp-fake-sleep" 3602 >/dev/null 2>&1 &
		echo "# left a child behind"
	EOF
}

make_thp() {
	local d=$T/thp

	rm -rf -- "$d"
	mkdir -p "$d/khugepaged" "$d/hugepages-2048kB"
	echo "always [madvise] never" >"$d/enabled"
	echo "always defer defer+madvise [madvise] never" >"$d/defrag"
	echo 1 >"$d/khugepaged/defrag"
	echo "always inherit madvise [never]" >"$d/hugepages-2048kB/enabled"
	echo 2097152 >"$d/hpage_pmd_size"
	chmod 0444 "$d/hpage_pmd_size"
}

# Each knob as "file=value", the value being the [selected] word if any.
thp_state() {
	local f

	for f in enabled defrag khugepaged/defrag hugepages-2048kB/enabled; do
		printf '%s=%s\n' "$f" "$(sed -n '1{s/.*\[\(.*\)\].*/\1/;p;}' "$T/thp/$f")"
	done
}

# Modification times of the knobs no test changes.
thp_mtimes() {
	stat -c '%n %y' "$T/thp/defrag" "$T/thp/hugepages-2048kB/enabled"
}

klog_clean() {
	printf '%s\n' "[    1.000000] kvm: loaded" \
		"[    2.000000] ccp 0000:00:18.0: SEV-SNP API:1.55 build:21" >"$T/klog"
}

klog_with() {
	klog_clean
	printf '%s\n' "$1" >>"$T/klog"
}

# runner ARGS...: run it on the fake build; output in $T/out and $T/err,
# exit code in RC.  The timeout only guards against a hung runner.
runner() {
	RC=0
	timeout -k 5 120 "$RUNNER" "$@" >"$T/out" 2>"$T/err" || RC=$?
}

rc_is() {
	[[ $RC == "$1" ]] || why "exit code $RC, wanted $1"
}

out_has() {
	grep -qxF -- "$1" "$T/out" || why "no line '$1' in the output"
}

err_has() {
	grep -qF -- "$1" "$T/err" || why "'$1' not on stderr"
}

out_lacks() {
	! grep -qF -- "$1" "$T/out" || why "'$1' is in the output"
}

no_sleeper() {
	! pgrep -f -- "$T/bin/snp-fake-sleep" >/dev/null || why "a test's child survived"
}

klog_failed() {
	rc_is 1 && out_has "not ok 2 kernel_log_clean"
}

klog_passed() {
	rc_is 0 && out_has "ok 2 kernel_log_clean"
}

thp_restored() {
	thp_state | cmp -s - "$T/thp.before" || why "now: $(thp_state | tr '\n' ' ')"
}

# ---- usage --------------------------------------------------------------

help_shown() {
	rc_is 0 && { grep -q '^Usage:' "$T/out" || why "no usage on stdout"; }
}

usage_refused() {
	rc_is 2 && err_has "Usage:" && { [[ ! -s $T/out ]] || why "stdout not empty"; }
}

name_refused() {
	rc_is 2 && err_has "$1"
}

check_usage() {
	runner -h
	check "-h exits 0 with usage on stdout" help_shown
	runner -b "$T/build" -Z
	check "-Z exits 2 with usage on stderr only" usage_refused
	runner -b "$T/build" -T abc
	check "-T abc exits 2" rc_is 2
	runner -b "$T/build" -T 0
	check "-T 0 exits 2" rc_is 2
	runner -b "$T/build" -t nosuch
	check "-t nosuch exits 2 naming it" name_refused nosuch
	runner -b "$T/build" stray
	check "a stray argument exits 2" rc_is 2
	runner -b "$T/build" -t
	check "-t without a name exits 2" rc_is 2
	SNP_RMP_TIMEOUT=soon runner -b "$T/build"
	check "a bad SNP_RMP_TIMEOUT exits 2" rc_is 2
}

listed_fakes() {
	rc_is 0 || return 1
	printf '%s\n' fail_one hang pass_ok skip_widget thp_poke | cmp -s - "$T/out" ||
		why "listed: $(tr '\n' ' ' <"$T/out")"
}

told_to_make() {
	rc_is 1 && err_has "run make first"
}

check_list() {
	runner -b "$T/build" -l
	check "-l lists exactly the executable files" listed_fakes
	runner -b "$T/empty" -l
	check "an empty build folder exits 1 saying run make" told_to_make
}

# ---- one full run -------------------------------------------------------

plan_matches() {
	local results plan

	results=$(grep -cE '^(not )?ok [0-9]+ ' "$T/full.out")
	plan=$(grep -m 1 -E '^1\.\.[0-9]+$' "$T/full.out")
	[[ $plan == "1..$results" && $results == 6 ]] || why "plan '$plan', $results results"
}

numbered_in_order() {
	grep -E '^(not )?ok [0-9]+ ' "$T/full.out" | sed -E 's/^(not )?ok ([0-9]+) .*/\2/' |
		cmp -s - <(seq 1 6) || why "result numbers are not 1..6"
}

# The test's own lines show up prefixed, between its header and result.
streamed_prefixed() {
	awk '/^# selftests: snp-rmp: pass_ok$/ { h = 1 }
	     h && /^# ok 1 first$/ { l = 1 }
	     /^ok [0-9]+ pass_ok$/ { exit !(h && l) }' "$T/full.out" ||
		why "pass_ok's output is not prefixed before its result"
}

kunit_parse() {
	local parser=$KSRC/tools/testing/kunit/kunit.py

	# No __pycache__ in the kernel tree.
	PYTHONDONTWRITEBYTECODE=1 python3 "$parser" parse "$T/full.out" >"$T/kunit.out" 2>&1
	if grep -q 'ERROR' "$T/kunit.out" ||
	   ! grep -q 'Testing complete\. Ran 6 tests: passed: 3, failed: 2, skipped: 1$' "$T/kunit.out"; then
		why "kunit.py parse says: $(grep -E 'ERROR|Testing complete' "$T/kunit.out")"
	fi
}

check_kunit_parser() {
	if [[ -z ${KSRC:-} ]]; then
		skip "kernel KTAP parser accepts the document" "KSRC not set"
	elif [[ ! -f $KSRC/tools/testing/kunit/kunit.py ]]; then
		skip "kernel KTAP parser accepts the document" "no $KSRC/tools/testing/kunit/kunit.py"
	elif ! command -v python3 >/dev/null; then
		skip "kernel KTAP parser accepts the document" "no python3"
	else
		check "kernel KTAP parser counts 3 passed, 2 failed, 1 skipped" kunit_parse
	fi
}

metrics_in_results() {
	local res=$T/res

	if ! grep -qxF "metrics=$res/pass_ok.json results=$res" "$res/pass_ok.log" ||
	   ! grep -q passed "$res/pass_ok.json"; then
		why "SNP_RMP_METRICS/SNP_RMP_RESULTS not pointing into $res"
	fi
}

logs_exist() {
	local t

	for t in fail_one hang pass_ok skip_widget thp_poke; do
		[[ -f $T/res/$t.log ]] || why "no $t.log" || return 1
	done
	[[ -f $T/res/kernel.log ]] || why "no kernel.log"
}

mtimes_are() {
	[[ $(thp_mtimes) == "$1" ]] || why "rewritten: $(thp_mtimes)"
}

log_is_raw() {
	grep -qx "ok 1 first" "$T/res/pass_ok.log" ||
		why "pass_ok.log: $(head -c 200 "$T/res/pass_ok.log")"
}

check_full_run() {
	local before

	make_thp
	klog_clean
	before=$(thp_mtimes)
	thp_state >"$T/thp.before"
	runner -b "$T/build" -T 1 -o "$T/res"
	cp "$T/out" "$T/full.out"
	check "a full run exits 1" rc_is 1
	check "the plan counts every result" plan_matches
	check "results are numbered 1..6" numbered_in_order
	check "a failing test is not ok with exit=1" out_has "not ok 1 fail_one # exit=1"
	check "a hung test is not ok with TIMEOUT" out_has "not ok 2 hang # TIMEOUT 1 seconds"
	check "a passing test is ok" out_has "ok 3 pass_ok"
	check "a skipped test says SKIP no widget" out_has "ok 4 skip_widget # SKIP no widget"
	check "a clean kernel log is ok" out_has "ok 6 kernel_log_clean"
	check "the Totals line adds up" \
		out_has "# Totals: pass:3 fail:2 xfail:0 xpass:0 skip:1 error:0"
	check "test output is streamed, prefixed, before its result" streamed_prefixed
	check_kunit_parser
	check "the hung test's children are gone" no_sleeper
	check "...killed with its process group, no stray to hunt down" \
		out_lacks "left the test's process group"
	check "THP knobs changed by a test are restored" thp_restored
	check "THP knobs nobody changed are not rewritten" mtimes_are "$before"
	check "each test's log and kernel.log are in the results" logs_exist
	check "a test's log holds its raw output" log_is_raw
	check "ktap.txt equals stdout" cmp -s "$T/res/ktap.txt" "$T/full.out"
	check "SNP_RMP_METRICS and SNP_RMP_RESULTS point into the results" metrics_in_results
}

# ---- exit codes, options ------------------------------------------------

default_results() {
	compgen -G "$T/build/results/[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z/ktap.txt" >/dev/null ||
		why "no build/results/<timestamp>/ktap.txt"
}

two_run() {
	rc_is 0 && out_has "1..3"
}

check_exit_codes() {
	make_thp
	klog_clean
	runner -b "$T/build" -t skip_widget -o "$T/r1"
	check "only skipped tests: exit 4" rc_is 4
	runner -b "$T/build" -t pass_ok
	check "only passing tests: exit 0" rc_is 0
	check "results default to BUILD/results/<UTC timestamp>" default_results
	check "without -q, SNP_RMP_QUICK is not set" out_has "# quick=0"
	runner -b "$T/build" -t pass_ok -t skip_widget -q -o "$T/r2"
	check "two -t run two tests; pass+skip: exit 0" two_run
	check "-q exports SNP_RMP_QUICK=1" out_has "# quick=1"
	# The framework skips (e.g. /dev/kvm not accessible) with a message and
	# exit 4 but no SKIP line: its last line is the reason.
	mkdir -p "$T/build_fwskip/x86_64"
	fake framework_skip "$T/build_fwskip/x86_64" <<-'EOF'
		#!/bin/sh
		echo "  Failed to open '/dev/kvm'"
		echo "Access denied - Exiting, skipping test"
		echo
		exit 4
	EOF
	runner -b "$T/build_fwskip" -o "$T/r3"
	check "a skip without a SKIP line gives the last line as reason" \
		out_has "ok 1 framework_skip # SKIP Access denied - Exiting, skipping test"
}

# A copy of the runner, with the kernel log patterns it reads, next to its
# own settings file.
runner_copy() {
	mkdir -p "$T/copy/kvm/include"
	cp "$REAL_RUNNER" "$T/copy/run_tests.sh"
	cp "$HERE/../kvm/include/kmsg_bad.inc" "$T/copy/kvm/include/"
	if [[ -n $1 ]]; then
		echo "timeout=$1" >"$T/copy/kvm/settings"
	else
		rm -f "$T/copy/kvm/settings"
	fi
}

check_timeout_sources() {
	RUNNER=$T/copy/run_tests.sh
	runner_copy ""
	runner -b "$T/build" -t pass_ok -o "$T/r3"
	check "no settings, no env: 45 s" out_has "# timeout set to 45 seconds; results in $T/r3"
	runner_copy 1
	runner -b "$T/build" -t hang -o "$T/r4"
	check "the settings file sets the timeout" out_has "not ok 1 hang # TIMEOUT 1 seconds"
	runner_copy 1000
	SNP_RMP_TIMEOUT=1 runner -b "$T/build" -t hang -o "$T/r5"
	check "SNP_RMP_TIMEOUT beats settings" out_has "not ok 1 hang # TIMEOUT 1 seconds"
	SNP_RMP_TIMEOUT=1000 runner -b "$T/build" -t hang -T 1 -o "$T/r6"
	check "-T beats SNP_RMP_TIMEOUT" out_has "not ok 1 hang # TIMEOUT 1 seconds"
	RUNNER=$REAL_RUNNER
	check "no leftover test processes after timeouts" no_sleeper
}

# ---- signals ------------------------------------------------------------

# wait_for SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
	local tries=$(($1 * 10))

	shift
	while ! "$@"; do
		tries=$((tries - 1))
		((tries > 0)) || return 1
		sleep 0.1
	done
}

thp_poked() {
	grep -q '\[never\]' "$T/thp/enabled" && pgrep -f -- "$T/bin/snp-fake-sleep" >/dev/null
}

gone() {
	! kill -0 "$1" 2>/dev/null
}

# interrupt SIGNAL: run thp_poke held, send SIGNAL once THP is changed.
# A background job of a script ignores SIGINT, and a shell cannot trap
# what it started ignoring: env --default-signal gives it back.
interrupt() {
	local pid

	make_thp
	klog_clean
	thp_state >"$T/thp.before"
	FAKE_HOLD=1 env --default-signal=INT "$RUNNER" -b "$T/build" -t thp_poke \
		-o "$T/r-$1" >"$T/out" 2>"$T/err" &
	pid=$!
	wait_for 10 thp_poked || echo "# thp_poke never got going"
	STREAMED=0
	if wait_for 10 grep -qx "# # THP knobs flipped" "$T/out"; then
		STREAMED=1
	fi
	kill "-$1" "$pid"
	wait_for 20 gone "$pid" || kill -KILL "$pid"
	RC=0
	wait "$pid" || RC=$?
}

streamed() {
	((STREAMED)) || why "no output before the test ended"
}

reported_interrupted() {
	out_has "not ok 1 thp_poke # interrupted" &&
		out_has "not ok 2 kernel_log_clean # interrupted"
}

check_signal() {
	local sig=$1 code=$2

	if ! env --default-signal=INT true 2>/dev/null; then
		skip "SIG$sig stops the run" "env has no --default-signal"
		return
	fi
	interrupt "$sig"
	check "SIG$sig: the runner exits $code" rc_is "$code"
	check "SIG$sig: output was streamed while the test ran" streamed
	check "SIG$sig: the running test is killed" no_sleeper
	check "SIG$sig: THP knobs are restored" thp_restored
	check "SIG$sig: the test is reported interrupted" reported_interrupted
}

# ---- a child that leaves its process group ------------------------------

check_escapee() {
	if ! command -v setsid >/dev/null; then
		skip "children left behind are killed" "no setsid"
		return
	fi
	make_thp
	klog_clean
	runner -b "$T/build3" -o "$T/e1"
	check "children left behind do not hang the run" three_results_ok
	check "children left in or out of the test's group are killed" no_sleeper
	check "the one that left the group is named" out_has_pattern \
		"^# killing pid [0-9]+ \(snp-fake-sleep\): it left the test's process group$"
}

three_results_ok() {
	rc_is 0 && out_has "ok 3 kernel_log_clean"
}

out_has_pattern() {
	grep -qE -- "$1" "$T/out" || why "nothing matches '$1'"
}

# ---- kernel log ---------------------------------------------------------

klog_skipped() {
	rc_is 0 && {
		grep -q '^ok 2 kernel_log_clean # SKIP kernel log not readable: .*nosuch' "$T/out" ||
			why "no SKIP naming the missing file"
	}
}

after_marker_only() {
	[[ $(cat "$T/k4/kernel.log") == "kvm: all quiet" ]] ||
		why "kernel.log: $(cat "$T/k4/kernel.log")"
}

check_klog() {
	make_thp
	klog_with "[   42.000000] WARNING: CPU: 1 PID: 42 at mm/huge_memory.c:123 split_huge_page+0x1/0x2"
	runner -b "$T/build" -t pass_ok -o "$T/k1"
	check "a WARNING in the kernel log fails kernel_log_clean" klog_failed
	check "the offending line is shown as a diagnostic" \
		out_has "# [   42.000000] WARNING: CPU: 1 PID: 42 at mm/huge_memory.c:123 split_huge_page+0x1/0x2"
	klog_with "[   43.000000] SEV-SNP: RMP violation at 0x1000"
	runner -b "$T/build" -t pass_ok -o "$T/k2"
	check "an RMP violation fails kernel_log_clean" klog_failed
	SNP_RMP_KLOG_FILE=$T/nosuch runner -b "$T/build" -t pass_ok -o "$T/k3"
	check "an unreadable kernel log is a SKIP with the reason" klog_skipped

	klog_with "[   44.000000] BUG: before the run"
	runner -b "$T/build2" -o "$T/k4"
	check "kernel log lines before the start marker are ignored" klog_passed
	check "kernel.log holds the lines after the marker only" after_marker_only
	klog_clean
	FAKE_KLOG_LINE="BUG: kernel NULL pointer dereference" runner -b "$T/build2" -o "$T/k5"
	check "a BUG after the start marker fails kernel_log_clean" klog_failed
	check_kmsg_untouched

	# The runner reads its patterns from kvm/include/kmsg_bad.inc, as the C code.
	runner_copy ""
	echo '"frobnicator jammed",' >>"$T/copy/kvm/include/kmsg_bad.inc"
	klog_with "[   45.000000] frobnicator jammed"
	RUNNER=$T/copy/run_tests.sh
	runner -b "$T/build" -t pass_ok -o "$T/k6"
	RUNNER=$REAL_RUNNER
	check "a pattern added to kvm/include/kmsg_bad.inc fails kernel_log_clean" klog_failed
}

# With the file hook the marker must not have gone to /dev/kmsg.
check_kmsg_untouched() {
	local marker

	marker=$(sed -n 's/^# marker=//p' "$T/out")
	if ! dmesg >"$T/dmesg" 2>/dev/null; then
		skip "the file hook keeps /dev/kmsg untouched" "dmesg not readable"
		return
	fi
	check "the file hook keeps /dev/kmsg untouched" marker_not_in_dmesg "$marker"
}

marker_not_in_dmesg() {
	[[ -n $1 ]] || why "the test saw no SNP_RMP_KLOG_MARKER" || return 1
	! grep -qF -- "$1" "$T/dmesg" || why "marker '$1' is in dmesg"
}

main() {
	make_build
	check_usage
	check_list
	check_full_run
	check_exit_codes
	check_timeout_sources
	check_signal INT 130
	check_signal TERM 143
	check_escapee
	check_klog
	exit "$FAILED"
}

main "$@"
