#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Run the snp-rmp selftests and print one KTAP document on stdout, shaped
# like the kselftest runner's output so that the kernel's own parsers and
# CI log scrapers read it unchanged.
#
# Each test program runs in its own process group under timeout(1), so a
# hung test is killed together with its children and the run goes on.  The
# THP sysfs knobs the tests may flip are saved first and put back on every
# way out.  At the end the kernel log since a start marker is checked for
# splats, as the last result of the document.
#
# With --repeat N the tests run N rounds and the coefficient of variation
# of every metric they report is shown; --save keeps those metrics as a
# baseline, and --gate compares them with one (scripts/gate.py), adding
# the result "gate" after kernel_log_clean.
#
# Hooks for the project's own tests (tests/t_runner.sh):
#   SNP_RMP_THP_DIR=DIR     save and restore DIR instead of the THP sysfs
#   SNP_RMP_KLOG_FILE=FILE  read the "kernel log" from FILE; /dev/kmsg is
#                           then never written

set -eu

readonly SUITE=snp-rmp
readonly SKIP_RC=4		# KSFT_SKIP
readonly TIMEOUT_RC=124		# timeout(1): the test ran out of time ...
readonly KILLED_RC=137		# ... and this if it also ignored SIGTERM
readonly KILL_AFTER=5		# seconds from SIGTERM to SIGKILL
readonly DEFAULT_TIMEOUT=45	# kselftest's default
readonly THP_SYSFS=/sys/kernel/mm/transparent_hugepage
readonly MAX_REPEAT=9999

# Kernel log lines that mean the run hurt the host (extended regex).
readonly KLOG_BAD='WARNING:|BUG:|kernel BUG|Oops|RMP|[Bb]ad page|general protection fault|Call Trace:'
readonly KLOG_SHOWN=50		# offending lines copied into the document

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
readonly SCRIPT_DIR
readonly GATE_PY=$SCRIPT_DIR/scripts/gate.py

# Command line.
MODE=run
QUICK=0
WANTED=()
OPT_TIMEOUT=""
BUILD_DIR=${O:-$SCRIPT_DIR/build}
RESULTS_DIR=""
REPEAT=1
SAVE_DIR=""
GATE_DIR=""
SHORT_ARGS=()		# the command line without its long options

# Run state; the signal and exit traps read it.
TESTS=()		# every test program, sorted by name
RUN=()			# the ones this run executes, in order
TIMEOUT=""
RUN_ID=""
ROUND=1			# the round running, 1..REPEAT
ROUND_DIR=""		# its logs and metrics: RESULTS_DIR, or a round-N folder
STORE=""		# where passing rounds' metrics are filed as <test>/<round>.json
TMP_DIR=""
FIFO=""
KTAP_COPY=""
DOC=""			# "", open (header printed), closed, broken (no stdout)
PLAN=0
NUM=0			# results printed so far
PASS=0
FAIL=0
SKIP=0
PROG_SKIPS=0		# test programs (not kernel_log_clean) that skipped
TEST_PID=""		# timeout(1) of the running test; leads its group
STREAM_PID=""		# the reader copying its output to log and stdout
CURRENT_LOG=""
KLOG_MARKER=""
KLOG_UNREADABLE=""
declare -A THP_SAVED=()
THP_FILES=()
STDBUF=()

usage() {
	cat <<EOF
Usage: ${0##*/} [-h] [-l] [-q] [-t NAME]... [-T SECONDS] [-b BUILD_DIR] [-o RESULTS_DIR]
                    [--repeat N] [--save DIR] [--gate BASELINE_DIR]
Run the $SUITE selftests and print one KTAP document on stdout.

  -b DIR   build folder, tests are DIR/x86_64/* (default: \$O, else
           <script dir>/build)
  -l       list the test names and exit
  -q       quick mode: export SNP_RMP_QUICK=1 to the tests
  -t NAME  run only this test (repeatable)
  -T SECS  per-test timeout; beats \$SNP_RMP_TIMEOUT, which beats the
           settings file, which beats $DEFAULT_TIMEOUT
  -o DIR   results folder (default: BUILD_DIR/results/<UTC timestamp>)
  -h       show this help
  --repeat N   run the tests N times, round N's logs in RESULTS_DIR/round-N;
               from 2 on, print the CV of every metric (noise table)
  --save DIR   keep the metrics of the passing runs as DIR/<test>/<run>.json
               plus DIR/manifest.json: a baseline for --gate (DIR must be
               new or empty)
  --gate DIR   compare the metrics with the baseline DIR; a regression
               beyond the noise fails the extra result "gate" (see
               scripts/gate.py; use --repeat 5 or more)

Exit status: 0 passed, 1 something failed, 2 usage error, 4 every test
skipped, 128+N killed by signal N (the tests are stopped, THP restored).
EOF
}

usage_error() {
	printf '%s: %s\n' "${0##*/}" "$1" >&2
	usage >&2
	exit 2
}

die() {
	printf '%s: %s\n' "${0##*/}" "$1" >&2
	exit 1
}

is_seconds() {
	[[ $1 =~ ^[1-9][0-9]{0,8}$ ]]
}

# True if the short option cluster $1 ends in an option whose argument is
# the next word (-t NAME, -qt NAME), so that word is no option of ours.
wants_next_word() {
	local i

	for ((i = 1; i < ${#1}; i++)); do
		case ${1:i:1} in
		[tTbo])
			((i == ${#1} - 1))
			return ;;
		esac
	done
	return 1
}

long_option() {
	case $1 in
	--repeat) REPEAT=$2 ;;
	--save) SAVE_DIR=$2 ;;
	--gate) GATE_DIR=$2 ;;
	esac
}

# getopts knows no long options: take them out, leave the rest in SHORT_ARGS.
split_long_options() {
	local arg

	while (($#)); do
		arg=$1
		shift
		case $arg in
		--)
			SHORT_ARGS+=(-- "$@")
			return ;;
		--repeat | --save | --gate)
			if (($# == 0)); then
				usage_error "option $arg needs an argument"
			fi
			long_option "$arg" "$1"
			shift ;;
		--repeat=* | --save=* | --gate=*)
			long_option "${arg%%=*}" "${arg#*=}" ;;
		--help)
			SHORT_ARGS+=(-h) ;;
		--*)
			usage_error "unknown option $arg" ;;
		-?*)
			SHORT_ARGS+=("$arg")
			if wants_next_word "$arg" && (($#)); then
				SHORT_ARGS+=("$1")
				shift
			fi ;;
		*)
			SHORT_ARGS+=("$arg") ;;
		esac
	done
}

parse_args() {
	local opt

	split_long_options "$@"
	set -- "${SHORT_ARGS[@]}"
	while getopts ':hlqt:T:b:o:' opt; do
		case $opt in
		h) MODE=help ;;
		l) MODE=list ;;
		q) QUICK=1 ;;
		t) WANTED+=("$OPTARG") ;;
		T) OPT_TIMEOUT=$OPTARG ;;
		b) BUILD_DIR=$OPTARG ;;
		o) RESULTS_DIR=$OPTARG ;;
		:) usage_error "option -$OPTARG needs an argument" ;;
		*) usage_error "unknown option -$OPTARG" ;;
		esac
	done
	shift $((OPTIND - 1))
	if (($#)); then
		usage_error "unexpected argument '$1'"
	fi
	if [[ -n $OPT_TIMEOUT ]] && ! is_seconds "$OPT_TIMEOUT"; then
		usage_error "-T wants a positive number of seconds, not '$OPT_TIMEOUT'"
	fi
	if [[ ! $REPEAT =~ ^[1-9][0-9]*$ ]] || ((${#REPEAT} > ${#MAX_REPEAT} || REPEAT > MAX_REPEAT)); then
		usage_error "--repeat wants a count from 1 to $MAX_REPEAT, not '$REPEAT'"
	fi
}

# The folders of --save and --gate, checked before anything runs: a
# baseline is never overwritten, and a run that cannot be gated is not
# worth starting.
check_metrics_args() {
	if [[ -n $SAVE_DIR && -e $SAVE_DIR ]]; then
		if [[ ! -d $SAVE_DIR ]]; then
			usage_error "--save $SAVE_DIR: not a folder"
		fi
		if [[ -n $(ls -A -- "$SAVE_DIR") ]]; then
			usage_error "--save $SAVE_DIR: not empty; a saved run is never overwritten, pick a new folder"
		fi
	fi
	if [[ -n $GATE_DIR ]]; then
		if [[ ! -f $GATE_DIR/manifest.json ]]; then
			usage_error "--gate $GATE_DIR: no saved run there (no manifest.json; make one with --repeat N --save DIR)"
		fi
		# The tests run from the build folder: keep the path absolute.
		GATE_DIR=$(cd -- "$GATE_DIR" && pwd -P)
	fi
	if ((REPEAT > 1)) || [[ -n $SAVE_DIR || -n $GATE_DIR ]]; then
		if ! command -v python3 >/dev/null; then
			die "--repeat, --save and --gate need python3 (for $GATE_PY)"
		fi
		[[ -r $GATE_PY ]] || die "no $GATE_PY"
	fi
}

# The last timeout=N line of the kselftest "settings" file, if any.
settings_timeout() {
	local line value=""

	if [[ -r $SCRIPT_DIR/settings ]]; then
		while IFS= read -r line || [[ -n $line ]]; do
			case $line in
			timeout=*) value=${line#timeout=} ;;
			esac
		done <"$SCRIPT_DIR/settings"
	fi
	printf '%s' "$value"
}

resolve_timeout() {
	local from=-T value=$OPT_TIMEOUT

	if [[ -z $value ]]; then
		from=SNP_RMP_TIMEOUT value=${SNP_RMP_TIMEOUT:-}
	fi
	if [[ -z $value ]]; then
		from=$SCRIPT_DIR/settings value=$(settings_timeout)
	fi
	if [[ -z $value ]]; then
		from=default value=$DEFAULT_TIMEOUT
	fi
	if ! is_seconds "$value"; then
		usage_error "timeout from $from must be a positive integer, not '$value'"
	fi
	TIMEOUT=$value
}

# Test programs are the executable regular files of BUILD_DIR/x86_64.
find_tests() {
	local f

	for f in "$BUILD_DIR"/x86_64/*; do
		if [[ -f $f && -x $f ]]; then
			printf '%s\n' "${f##*/}"
		fi
	done | LC_ALL=C sort
}

load_tests() {
	local name

	while IFS= read -r name; do
		TESTS+=("$name")
	done < <(find_tests)
	if ((${#TESTS[@]} == 0)); then
		die "no test programs in $BUILD_DIR/x86_64: run make first"
	fi
}

is_test() {
	local t

	for t in "${TESTS[@]}"; do
		if [[ $t == "$1" ]]; then
			return 0
		fi
	done
	return 1
}

is_wanted() {
	local w

	for w in "${WANTED[@]}"; do
		if [[ $w == "$1" ]]; then
			return 0
		fi
	done
	return 1
}

# RUN: the -t tests in name order, or every test without -t.
select_tests() {
	local name

	for name in "${WANTED[@]}"; do
		if ! is_test "$name"; then
			usage_error "no test '$name' in $BUILD_DIR/x86_64 (see -l)"
		fi
	done
	for name in "${TESTS[@]}"; do
		if ((${#WANTED[@]} == 0)) || is_wanted "$name"; then
			RUN+=("$name")
		fi
	done
}

# The tests run from the x86_64 folder, so every path they get is absolute.
prepare_results() {
	local stamp

	stamp=$(date -u +%Y%m%dT%H%M%SZ)
	RUN_ID=$stamp-$$
	RESULTS_DIR=${RESULTS_DIR:-$BUILD_DIR/results/$stamp}
	mkdir -p -- "$RESULTS_DIR" || die "cannot create $RESULTS_DIR"
	RESULTS_DIR=$(cd -- "$RESULTS_DIR" && pwd -P)
	KTAP_COPY=$RESULTS_DIR/ktap.txt
	: >"$KTAP_COPY"
	export SNP_RMP_RESULTS=$RESULTS_DIR
	ROUND_DIR=$RESULTS_DIR
	if ((QUICK)); then
		export SNP_RMP_QUICK=1
	fi
	prepare_store
}

# Metrics are filed when they are to be kept, compared or measured for noise.
prepare_store() {
	if [[ -n $SAVE_DIR ]]; then
		mkdir -p -- "$SAVE_DIR" || die "cannot create $SAVE_DIR"
		STORE=$(cd -- "$SAVE_DIR" && pwd -P)
	elif ((REPEAT > 1)) || [[ -n $GATE_DIR ]]; then
		STORE=$RESULTS_DIR/metrics
		mkdir -p -- "$STORE" || die "cannot create $STORE"
	fi
}

# Line-buffer the tests' stdout as kselftest does, so their output streams.
find_stdbuf() {
	if command -v stdbuf >/dev/null; then
		STDBUF=(stdbuf --output=L)
	fi
}

# ---- the document -------------------------------------------------------

# Print a line of the document, and keep the copy in ktap.txt.
out() {
	printf '%s\n' "$1"
	printf '%s\n' "$1" >>"$KTAP_COPY"
}

# A diagnostic: into the document while it is open, else to stderr.
note() {
	if [[ $DOC == open ]]; then
		out "# $1"
	elif [[ $DOC != broken ]]; then
		printf '%s: %s\n' "${0##*/}" "$1" >&2
	fi
}

# Every round's tests, kernel_log_clean, and the gate if asked for.
open_document() {
	PLAN=$((REPEAT * ${#RUN[@]} + 1))
	if [[ -n $GATE_DIR ]]; then
		PLAN=$((PLAN + 1))
	fi
	DOC=open
	out "TAP version 13"
	out "1..$PLAN"
	out "# timeout set to $TIMEOUT seconds; results in $RESULTS_DIR"
	if [[ -n $STORE ]]; then
		out "# $REPEAT round(s); metrics of passing runs filed in $STORE"
	fi
}

# result pass|fail|skip NAME [DIRECTIVE]: print and count the next result.
result() {
	local directive=${3:+ # $3}

	NUM=$((NUM + 1))
	case $1 in
	pass)
		PASS=$((PASS + 1))
		out "ok $NUM $2$directive" ;;
	skip)
		SKIP=$((SKIP + 1))
		out "ok $NUM $2$directive" ;;
	fail)
		FAIL=$((FAIL + 1))
		out "not ok $NUM $2$directive" ;;
	esac
}

close_document() {
	out "# Totals: pass:$PASS fail:$FAIL xfail:0 xpass:0 skip:$SKIP error:0"
	DOC=closed
}

# kselftest's convention: any failure wins, then "everything skipped".
exit_status() {
	if ((FAIL)); then
		return 1
	fi
	if ((PROG_SKIPS == REPEAT * ${#RUN[@]})); then
		return "$SKIP_RC"
	fi
	return 0
}

# ---- THP sysfs knobs ----------------------------------------------------

# A knob's value: the [selected] word of "always [madvise] never" lists.
thp_value() {
	local line=""

	if ! IFS= read -r line 2>/dev/null <"$1" && [[ -z $line ]]; then
		return 1
	fi
	if [[ $line =~ \[([^]]*)\] ]]; then
		line=${BASH_REMATCH[1]}
	fi
	printf '%s' "$line"
}

# Writable files only: the rest (hpage_pmd_size, stats/*) are read-only
# even for root, whose access(2) check would wrongly say yes.
thp_writable_files() {
	find "$1" -type f -perm /222 -print0 2>/dev/null | LC_ALL=C sort -z
}

thp_save() {
	local dir=${SNP_RMP_THP_DIR:-$THP_SYSFS} f value

	if [[ ! -d $dir ]]; then
		note "THP settings not saved: no $dir"
		return 0
	fi
	while IFS= read -r -d '' f; do
		if [[ -w $f ]] && value=$(thp_value "$f"); then
			THP_FILES+=("$f")
			THP_SAVED[$f]=$value
		fi
	done < <(thp_writable_files "$dir")
	if ((${#THP_FILES[@]} == 0)); then
		note "THP settings not saved: nothing writable in $dir"
	fi
}

# Write back only what differs: some knobs reject a write of their current
# value, and an unneeded write is a change of its own.
thp_restore() {
	local f now

	for f in "${THP_FILES[@]}"; do
		now=$(thp_value "$f") || now="(unreadable)"
		if [[ $now == "${THP_SAVED[$f]}" ]]; then
			continue
		fi
		if { printf '%s\n' "${THP_SAVED[$f]}" >"$f"; } 2>/dev/null; then
			note "restored $f: $now -> ${THP_SAVED[$f]}"
		else
			note "could not restore $f: $now, wanted ${THP_SAVED[$f]}"
		fi
	done
}

# ---- kernel log ---------------------------------------------------------

# Mark the start of the run in the kernel log; the check reads from there.
klog_begin() {
	KLOG_MARKER="snp-rmp-selftests: run $RUN_ID start"
	export SNP_RMP_KLOG_MARKER=$KLOG_MARKER
	if [[ -n ${SNP_RMP_KLOG_FILE:-} ]]; then
		return 0
	fi
	if ! { printf '%s\n' "$KLOG_MARKER" >/dev/kmsg; } 2>/dev/null; then
		KLOG_UNREADABLE="cannot write /dev/kmsg (euid $EUID)"
	fi
}

klog_dump() {
	if [[ -n ${SNP_RMP_KLOG_FILE:-} ]]; then
		cat -- "$SNP_RMP_KLOG_FILE"
	else
		dmesg
	fi
}

# The lines of log $1 after the start marker, or all of them if the marker
# is gone: then the ring buffer wrapped and everything in it is newer.
klog_since_marker() {
	if grep -qF -- "$KLOG_MARKER" "$1"; then
		awk -v m="$KLOG_MARKER" 'seen; index($0, m) { seen = 1 }' "$1"
	else
		cat -- "$1"
	fi
}

# The lines of kernel log $1 that look like a splat; false if none.
klog_scan() {
	grep -E -- "$KLOG_BAD" "$1"
}

# Copy the run's kernel log to the results and judge it.
report_klog() {
	local raw=$TMP_DIR/klog.raw bad=$TMP_DIR/klog.bad log=$RESULTS_DIR/kernel.log
	local why line

	if [[ -z $KLOG_UNREADABLE ]] && ! klog_dump >"$raw" 2>"$TMP_DIR/klog.err"; then
		why=$(head -n 1 -- "$TMP_DIR/klog.err")
		KLOG_UNREADABLE=${why:-dmesg failed}
	fi
	if [[ -n $KLOG_UNREADABLE ]]; then
		printf 'kernel log not readable: %s\n' "$KLOG_UNREADABLE" >"$log"
		result skip kernel_log_clean "SKIP kernel log not readable: $KLOG_UNREADABLE"
		return 0
	fi
	klog_since_marker "$raw" >"$log"
	if ! klog_scan "$log" >"$bad"; then
		result pass kernel_log_clean
		return 0
	fi
	note "kernel log: $(wc -l <"$bad") suspicious line(s) since the start (all in $log):"
	while IFS= read -r line; do
		out "# $line"
	done < <(head -n "$KLOG_SHOWN" -- "$bad")
	result fail kernel_log_clean
}

# ---- one test -----------------------------------------------------------

# Copy the test's output as is to its log, and prefixed to the document.
stream_output() {
	tee -- "$1" | sed -u 's/^/# /' | tee -a -- "$KTAP_COPY"
}

# A reader blocked opening the FIFO (its test never started) would wait
# forever: a read-write open never blocks, and closing it gives it EOF.
release_fifo() {
	local fd

	exec {fd}<>"$FIFO"
	exec {fd}>&-
}

# Let the reader drain.  A child that escaped the test's process group can
# hold the FIFO open for ever: after KILL_AFTER seconds stop reading.
finish_stream() {
	local tries=$((KILL_AFTER * 20))

	while kill -0 "$STREAM_PID" 2>/dev/null && ((tries > 0)); do
		tries=$((tries - 1))
		sleep 0.05
	done
	if ((tries == 0)); then
		# Stop only the stage reading the FIFO, so the others flush.
		pkill -TERM -P "$STREAM_PID" -f '^tee -- ' 2>/dev/null || true
	fi
	wait "$STREAM_PID" || true
	STREAM_PID=""
	# An unterminated last line would swallow the result line.
	if [[ -n $(tail -c 1 -- "$CURRENT_LOG" 2>/dev/null) ]]; then
		out ""
	fi
	if ((tries == 0)); then
		kill_fifo_holders
	fi
}

# With the reader gone, whoever still has the FIFO open is a descendant of
# the test that left its process group (setsid, daemon): kill it too.
kill_fifo_holders() {
	local fd pid last=""

	for fd in /proc/[0-9]*/fd/*; do
		pid=${fd#/proc/}
		pid=${pid%%/*}
		if [[ $pid != "$last" && $(readlink -- "$fd" 2>/dev/null) == "$FIFO" ]]; then
			last=$pid
			note "killing pid $pid ($(cat "/proc/$pid/comm" 2>/dev/null)): it left the test's process group"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done
}

# timeout(1) put the test in a process group of its own: kill whatever the
# test left in it, so no child outlives its test or holds the FIFO open.
reap_test_group() {
	kill -KILL -- "-$TEST_PID" 2>/dev/null || true
	TEST_PID=""
}

# Stop the running test, if any; timeout(1) turns SIGTERM into SIGKILL
# after KILL_AFTER seconds.
stop_test() {
	if [[ -n $TEST_PID ]]; then
		kill -TERM -- "-$TEST_PID" 2>/dev/null ||
			kill -TERM "$TEST_PID" 2>/dev/null || true
		wait "$TEST_PID" 2>/dev/null || true
		reap_test_group
	fi
	if [[ -n $STREAM_PID ]]; then
		release_fifo
		finish_stream
	fi
}

# The reason of the last "1..0 # SKIP why" line, else of any "# SKIP why",
# else the program's last line: the framework's own skips (e.g. no access
# to /dev/kvm) exit 4 after a message but print no SKIP line.
skip_reason() {
	local why

	why=$(grep -E '^[[:space:]]*1\.\.0 # SKIP([[:space:]]|$)' -- "$1" | tail -n 1)
	if [[ -z ${why#*# SKIP} ]]; then
		why=$(grep -E '# SKIP([[:space:]]|$)' -- "$1" | tail -n 1)
	fi
	if [[ -z ${why#*# SKIP} ]]; then
		why="# SKIP $(grep -v '^[[:space:]]*$' -- "$1" | tail -n 1)"
	fi
	why=${why##*# SKIP}
	why=$(printf '%s' "$why" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//')
	printf '%s' "${why:-no reason given}"
}

# 124 or 137 alone could be the test's own exit code: check the clock too.
timed_out() {
	(( ($1 == TIMEOUT_RC || $1 == KILLED_RC) && $2 >= TIMEOUT ))
}

report_test() {
	local name=$1 rc=$2 elapsed=$3

	if ((rc == 0)); then
		result pass "$name"
	elif ((rc == SKIP_RC)); then
		PROG_SKIPS=$((PROG_SKIPS + 1))
		result skip "$name" "SKIP $(skip_reason "$CURRENT_LOG")"
	elif timed_out "$rc" "$elapsed"; then
		result fail "$name" "TIMEOUT $TIMEOUT seconds"
	else
		result fail "$name" "exit=$rc"
	fi
}

# File a passing run's metrics as STORE/<test>/<round>.json.  A failed
# run's numbers describe a broken run: they stay in its folder only.
file_metrics() {
	local name=$1 rc=$2 metrics=$3

	if [[ -z $STORE || ! -f $metrics ]]; then
		return 0
	fi
	if ((rc != 0)); then
		note "metrics of $name (round $ROUND) not kept: the test did not pass"
		return 0
	fi
	mkdir -p -- "$STORE/$name"
	cp -- "$metrics" "$STORE/$name/$ROUND.json"
}

run_one() {
	local name=$1 rc=0 start=$SECONDS
	local metrics=$ROUND_DIR/$name.json

	out "# selftests: $SUITE: $name"
	CURRENT_LOG=$ROUND_DIR/$name.log
	# No stale document from an earlier run into the same folder.
	rm -f -- "$metrics"
	stream_output "$CURRENT_LOG" <"$FIFO" &
	STREAM_PID=$!
	SNP_RMP_METRICS=$metrics \
		timeout --kill-after="$KILL_AFTER" "$TIMEOUT" "${STDBUF[@]}" "./$name" \
		</dev/null >"$FIFO" 2>&1 &
	TEST_PID=$!
	# 2>/dev/null: no "Killed" job notice from the shell; the result says it.
	wait "$TEST_PID" 2>/dev/null || rc=$?
	reap_test_group
	finish_stream
	report_test "$name" "$rc" $((SECONDS - start))
	file_metrics "$name" "$rc" "$metrics"
}

# With rounds, each has a folder of its own for logs and metrics.
start_round() {
	if ((REPEAT == 1)); then
		return 0
	fi
	ROUND_DIR=$RESULTS_DIR/round-$ROUND
	mkdir -p -- "$ROUND_DIR"
	export SNP_RMP_RESULTS=$ROUND_DIR
	note "round $ROUND of $REPEAT"
}

# ---- metrics: noise and gate --------------------------------------------

# Print a file of gate.py output into the document as diagnostics.
show_file() {
	local line

	while IFS= read -r line || [[ -n $line ]]; do
		out "# $line"
	done <"$1"
}

finish_store() {
	local -a quick=()

	if ((QUICK)); then
		quick=(--quick)
	fi
	if ! python3 "$GATE_PY" manifest "$STORE" --repeat "$REPEAT" "${quick[@]}" \
			2>"$TMP_DIR/manifest.err"; then
		note "could not write $STORE/manifest.json: $(head -n 1 -- "$TMP_DIR/manifest.err")"
	fi
}

# The coefficient of variation of each metric over the rounds.
report_noise() {
	local table=$RESULTS_DIR/noise.txt

	python3 "$GATE_PY" noise "$STORE" >"$table" 2>&1 || true
	show_file "$table"
}

# The last result: the comparison with the baseline.
report_gate() {
	local table=$RESULTS_DIR/gate.txt rc=0 name
	local -a only=()

	for name in "${RUN[@]}"; do
		only+=(--test "$name")
	done
	python3 "$GATE_PY" compare "$GATE_DIR" "$STORE" "${only[@]}" >"$table" 2>&1 || rc=$?
	show_file "$table"
	case $rc in
	0)
		if grep -q '^gate: SKIP' -- "$table"; then
			result skip gate "SKIP no metric measured in both the baseline and this run"
		else
			result pass gate
		fi ;;
	1)
		result fail gate ;;
	*)
		result fail gate "bad input (gate.py exit $rc)" ;;
	esac
}

# ---- ways out -----------------------------------------------------------

# Normal end, error, set -e abort or signal: leave no test running and the
# THP knobs as found.  No set -e here: a failed write to a closed stdout
# must not cut the restore short.
cleanup() {
	set +e
	trap '' INT TERM HUP PIPE
	stop_test
	thp_restore
	if [[ -n $TMP_DIR ]]; then
		rm -rf -- "$TMP_DIR"
	fi
	if [[ $DOC == open ]]; then
		note "run_tests.sh stopped early: this document is incomplete"
		exit 1
	fi
}

# Stop the test, report it and the tests not run as interrupted, so the
# document stays whole and parseable, then exit 128+signal.
on_signal() {
	local i tests

	set +e
	trap '' INT TERM HUP PIPE
	stop_test
	thp_restore
	if [[ $DOC == open ]]; then
		note "interrupted by a signal"
		tests=$((REPEAT * ${#RUN[@]}))
		for ((i = NUM; i < tests; i++)); do
			result fail "${RUN[i % ${#RUN[@]}]}" interrupted
		done
		if ((NUM == tests)); then
			result fail kernel_log_clean interrupted
		fi
		if ((NUM < PLAN)); then
			result fail gate interrupted
		fi
		close_document
	fi
	exit "$1"
}

# Nobody reads stdout any more: stop quietly.
on_broken_pipe() {
	DOC=broken
	on_signal 141
}

set_traps() {
	trap cleanup EXIT
	trap 'on_signal 129' HUP
	trap 'on_signal 130' INT
	trap 'on_signal 143' TERM
	trap on_broken_pipe PIPE
}

# ---- modes --------------------------------------------------------------
#
# One function per mode, picked in main().  --repeat, --save and --gate
# are no mode of their own: they make mode_run() run rounds, file the
# metrics and judge them after the kernel log.

mode_help() {
	usage
}

mode_list() {
	load_tests
	select_tests
	printf '%s\n' "${RUN[@]}"
}

# Run the selected tests and print the document; the exit status follows
# kselftest's rules.
run_suite() {
	local name

	set_traps
	TMP_DIR=$(mktemp -d "${TMPDIR:-/tmp}/snp-rmp-run.XXXXXX")
	FIFO=$TMP_DIR/output
	mkfifo -- "$FIFO"
	find_stdbuf
	open_document
	thp_save
	klog_begin
	cd -- "$BUILD_DIR/x86_64"
	for ((ROUND = 1; ROUND <= REPEAT; ROUND++)); do
		start_round
		for name in "${RUN[@]}"; do
			run_one "$name"
		done
	done
	thp_restore
	report_klog
	if [[ -n $STORE ]]; then
		finish_store
	fi
	if ((REPEAT > 1)); then
		report_noise
	fi
	if [[ -n $GATE_DIR ]]; then
		report_gate
	fi
	close_document
}

mode_run() {
	resolve_timeout
	load_tests
	BUILD_DIR=$(cd -- "$BUILD_DIR" && pwd -P)
	select_tests
	check_metrics_args
	prepare_results
	run_suite
	exit_status
}

main() {
	parse_args "$@"
	case $MODE in
	help) mode_help ;;
	list) mode_list ;;
	run) mode_run ;;
	esac
}

main "$@"
