#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Run the snp-rmp selftests and print one KTAP document on stdout, shaped
# like the kselftest runner's so that kernel parsers read it unchanged.
# On top of that runner: each program runs in a process group of its own
# that is killed with it, the THP sysfs knobs are put back on every way
# out, the kernel log since the start is checked as the last result (for
# the strings of kvm/include/kmsg_bad.inc, which the C checks use too), and
# --repeat/--save/--gate measure and gate metrics with scripts/gate.py.
#
# Hooks for the project's tests: SNP_RMP_THP_DIR=DIR is saved and restored
# instead of the THP sysfs; SNP_RMP_KLOG_FILE=FILE is read as the kernel
# log, and /dev/kmsg is then never written.

set -eu

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
readonly SCRIPT_DIR GATE_PY=$SCRIPT_DIR/scripts/gate.py KILL_AFTER=5

MODE=run BUILD_DIR=${O:-$SCRIPT_DIR/build} RESULTS_DIR="" TIMEOUT=""
REPEAT=1 SAVE_DIR="" GATE_DIR="" STORE="" KLOG_UNREADABLE="" SIGNALLED=""
QUICK=()		# (--quick) with -q
WANTED=() RUN=() THP_FILES=()
DOC=""			# "", open (header printed), closed
PLAN=0 NUM=0 PASS=0 FAIL=0 SKIP=0
PROG_SKIPS=0		# test programs (not kernel_log_clean) that skipped
TEST_PID=""		# timeout(1) of the running test; leads its group
STREAM_PID=""		# the pipeline copying its log into the document
declare -A THP_SAVED=()

usage() {
	cat <<EOF
Usage: ${0##*/} [-h] [-l] [-q] [-t NAME]... [-T SECONDS] [-b BUILD_DIR] [-o RESULTS_DIR]
                    [--repeat N] [--save DIR] [--gate BASELINE_DIR]
Run the snp-rmp selftests and print one KTAP document on stdout.

  -b DIR      build folder, tests are DIR/x86_64/* (default: \$O, else
              <script dir>/build)
  -l          list the test names and exit
  -q          quick mode: export SNP_RMP_QUICK=1 to the tests
  -t NAME     run only this test (repeatable)
  -T SECS     per-test timeout (default: \$SNP_RMP_TIMEOUT, else settings, else 45)
  -o DIR      results folder (default: BUILD_DIR/results/<UTC timestamp>)
  --repeat N  run the tests N times (logs in RESULTS_DIR/round-N) and print
              the CV of every metric
  --save DIR  keep the passing runs' metrics in the new or empty DIR: a
              baseline for --gate
  --gate DIR  compare the metrics with baseline DIR (scripts/gate.py) as the
              extra result "gate"; use --repeat 5 or more

Exit status: 0 passed, 1 something failed, 2 usage error, 4 every test
skipped, 128+N killed by signal N (the tests are stopped, THP restored).
EOF
}

# die MESSAGE [2]: exit 1, or 2 for a usage error, which shows the usage.
die() {
	printf '%s: %s\n' "${0##*/}" "$1" >&2
	[[ ${2:-1} == 1 ]] || usage >&2
	exit "${2:-1}"
}

parse_args() {
	while (($#)); do
		case $1 in
		--repeat=* | --save=* | --gate=*)
			set -- "${1%%=*}" "${1#*=}" "${@:2}" ;;
		-[tTbo] | --repeat | --save | --gate)
			(($# > 1)) || die "option $1 needs an argument" 2 ;;
		esac
		case $1 in
		-h | --help) usage; exit 0 ;;
		-l) MODE=list ;;
		-q) QUICK=(--quick) ;;
		-t) WANTED+=("$2"); shift ;;
		-T) TIMEOUT=$2; shift ;;
		-b) BUILD_DIR=$2; shift ;;
		-o) RESULTS_DIR=$2; shift ;;
		--repeat) REPEAT=$2; shift ;;
		--save) SAVE_DIR=$2; shift ;;
		--gate) GATE_DIR=$2; shift ;;
		-*) die "unknown option $1" 2 ;;
		*) die "unexpected argument '$1'" 2 ;;
		esac
		shift
	done
	[[ $REPEAT =~ ^[1-9][0-9]{0,3}$ ]] ||
		die "--repeat wants a count from 1 to 9999, not '$REPEAT'" 2
}

# -T, else $SNP_RMP_TIMEOUT, else the settings file's last timeout=N, else 45.
resolve_timeout() {
	local from=-T settings=$SCRIPT_DIR/kvm/settings

	[[ -n $TIMEOUT ]] || from=SNP_RMP_TIMEOUT TIMEOUT=${SNP_RMP_TIMEOUT:-}
	[[ -n $TIMEOUT || ! -r $settings ]] ||
		from=$settings TIMEOUT=$(sed -n 's/^timeout=//p' "$settings" | tail -n 1)
	[[ -n $TIMEOUT ]] || from=default TIMEOUT=45
	[[ $TIMEOUT =~ ^[1-9][0-9]{0,8}$ ]] ||
		die "timeout from $from must be a positive integer, not '$TIMEOUT'" 2
}

# RUN: the executable files of BUILD_DIR/x86_64 named by -t, else all, sorted.
select_tests() {
	local tests name

	tests=$(for name in "$BUILD_DIR"/x86_64/*; do
		if [[ -f $name && -x $name ]]; then
			printf '%s\n' "${name##*/}"
		fi
	done | LC_ALL=C sort)
	[[ -n $tests ]] || die "no test programs in $BUILD_DIR/x86_64: run make first"
	for name in "${WANTED[@]}"; do
		grep -qxF -e "$name" <<<"$tests" || die "no test '$name' in $BUILD_DIR/x86_64 (see -l)" 2
	done
	if ((${#WANTED[@]})); then
		tests=$(grep -xF -f <(printf '%s\n' "${WANTED[@]}") <<<"$tests")
	fi
	mapfile -t RUN <<<"$tests"
}

# Everything that can be refused is, before the document opens: a baseline
# is never overwritten, and a run that cannot be gated is not worth
# starting.  The tests run from the x86_64 folder: all their paths are
# absolute.
prepare_run() {
	local stamp inc=$SCRIPT_DIR/kvm/include/kmsg_bad.inc

	BUILD_DIR=$(cd -- "$BUILD_DIR" && pwd -P)
	# ls lists a file, or a folder's entries.
	if [[ -n $SAVE_DIR && -n $(ls -A -- "$SAVE_DIR" 2>/dev/null) ]]; then
		die "--save $SAVE_DIR: not a new or empty folder; a saved run is never overwritten" 2
	fi
	if [[ -n $GATE_DIR ]]; then
		[[ -f $GATE_DIR/manifest.json ]] ||
			die "--gate $GATE_DIR: no saved run there (no manifest.json; make one with --repeat N --save DIR)" 2
		GATE_DIR=$(cd -- "$GATE_DIR" && pwd -P)
	fi
	if ((REPEAT > 1)) || [[ -n $SAVE_DIR$GATE_DIR ]]; then
		command -v python3 >/dev/null || die "--repeat, --save and --gate need python3 (for $GATE_PY)"
	fi
	KLOG_BAD=$(sed -n 's/^[[:space:]]*"\(.*\)",[[:space:]]*$/\1/p' "$inc") || true
	[[ -n $KLOG_BAD ]] || die "no kernel log patterns in $inc"

	stamp=$(date -u +%Y%m%dT%H%M%SZ)
	export SNP_RMP_KLOG_MARKER="snp-rmp-selftests: run $stamp-$$ start"
	RESULTS_DIR=$(abs_dir "${RESULTS_DIR:-$BUILD_DIR/results/$stamp}")
	export SNP_RMP_RESULTS=$RESULTS_DIR
	ROUND_DIR=$RESULTS_DIR
	KTAP_COPY=$RESULTS_DIR/ktap.txt
	: >"$KTAP_COPY"
	((${#QUICK[@]} == 0)) || export SNP_RMP_QUICK=1
	if ((REPEAT > 1)) || [[ -n $SAVE_DIR$GATE_DIR ]]; then
		STORE=$(abs_dir "${SAVE_DIR:-$RESULTS_DIR/metrics}")
	fi
}

# Create folder $1 if need be and print its absolute path.
abs_dir() {
	mkdir -p -- "$1" && cd -- "$1" && pwd -P
}

# A line of the document, copied to ktap.txt.
out() {
	printf '%s\n' "$1"
	printf '%s\n' "$1" >>"$KTAP_COPY"
}

# A diagnostic line, while the document is open.
note() {
	if [[ $DOC == open ]]; then
		out "# $1"
	fi
}

# stdin as "# " diagnostics of the document.
prefixed() {
	sed -u 's/^/# /' | tee -a -- "$KTAP_COPY"
}

# result pass|fail|skip NAME [DIRECTIVE]
result() {
	local directive=${3:+ # $3}

	NUM=$((NUM + 1))
	case $1 in
	pass) PASS=$((PASS + 1)) ;;
	skip) SKIP=$((SKIP + 1)) ;;
	fail) FAIL=$((FAIL + 1)); out "not ok $NUM $2$directive"; return ;;
	esac
	out "ok $NUM $2$directive"
}

# A knob's value: the [selected] word of "always [madvise] never" lists.
thp_value() {
	local line=""

	IFS= read -r line 2>/dev/null <"$1" || [[ -n $line ]] || return 1
	if [[ $line =~ \[([^]]*)\] ]]; then
		line=${BASH_REMATCH[1]}
	fi
	printf '%s' "$line"
}

# Files with a write bit only: for root, access(2) calls the read-only
# ones (hpage_pmd_size, stats/*) writable too.
thp_save() {
	local dir=${SNP_RMP_THP_DIR:-/sys/kernel/mm/transparent_hugepage} f value

	while IFS= read -r -d '' f; do
		if [[ -w $f ]] && value=$(thp_value "$f"); then
			THP_FILES+=("$f")
			THP_SAVED[$f]=$value
		fi
	done < <(find "$dir" -type f -perm /222 -print0 2>/dev/null | LC_ALL=C sort -z)
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
		[[ $now != "${THP_SAVED[$f]}" ]] || continue
		if { printf '%s\n' "${THP_SAVED[$f]}" >"$f"; } 2>/dev/null; then
			note "restored $f: $now -> ${THP_SAVED[$f]}"
		else
			note "could not restore $f: $now, wanted ${THP_SAVED[$f]}"
		fi
	done
}

# The log after the start marker, or all of it if the marker is gone: then
# the ring buffer wrapped and everything in it is newer.
klog_since_start() {
	if [[ -n ${SNP_RMP_KLOG_FILE:-} ]]; then
		cat -- "$SNP_RMP_KLOG_FILE"
	else
		dmesg
	fi | awk -v m="$SNP_RMP_KLOG_MARKER" '!start && index($0, m) { start = NR; next }
		{ line[NR] = $0 }
		END { for (i = start + 1; i <= NR; i++) print line[i] }'
	return "${PIPESTATUS[0]}"
}

report_klog() {
	local log=$RESULTS_DIR/kernel.log err bad

	if [[ -z $KLOG_UNREADABLE ]] && ! err=$(klog_since_start 2>&1 >"$log"); then
		KLOG_UNREADABLE=${err%%$'\n'*}
		KLOG_UNREADABLE=${KLOG_UNREADABLE:-dmesg failed}
	fi
	if [[ -n $KLOG_UNREADABLE ]]; then
		printf 'kernel log not readable: %s\n' "$KLOG_UNREADABLE" >"$log"
		result skip kernel_log_clean "SKIP kernel log not readable: $KLOG_UNREADABLE"
		return 0
	fi
	bad=$(grep -cF -- "$KLOG_BAD" "$log") || true
	if ((bad == 0)); then
		result pass kernel_log_clean
		return 0
	fi
	note "kernel log: $bad suspicious line(s) since the start (all in $log):"
	grep -F -- "$KLOG_BAD" "$log" | head -n 50 | prefixed
	result fail kernel_log_clean
}

# The reason of the last "1..0 # SKIP why", else of any "# SKIP why", else
# the last line: the framework's own skips (e.g. no access to /dev/kvm)
# exit 4 after a message but print no SKIP line.
skip_reason() {
	awk 'function why(s) {
		sub(/.*# SKIP/, "", s)
		gsub(/^[[:space:]]+|[[:space:]]+$/, "", s)
		return s
	}
	/^[[:space:]]*1\.\.0 # SKIP([[:space:]].*)?$/ && why($0) != "" { plan = why($0) }
	/# SKIP([[:space:]].*)?$/ && why($0) != "" { any = why($0) }
	NF { last = why($0) }
	END { print (plan != "" ? plan : any != "" ? any : last != "" ? last : "no reason given") }' "$1"
}

# Kill what the test left in its process group, let the copy of its log
# finish, then kill whoever still holds the log: a child that left the
# group (setsid, daemon).
end_test() {
	local pid streamed

	if [[ -n $TEST_PID ]]; then
		kill -KILL -- "-$TEST_PID" 2>/dev/null || true
		TEST_PID=""
	fi
	if [[ -z $STREAM_PID ]]; then
		return 0
	fi
	wait "$STREAM_PID" || true
	STREAM_PID=""
	# tail may stop short of the log's end (seen in a lab guest, whose log
	# is on 9p): copy the rest, continuing a line it left unterminated.
	streamed=$(stat -c %s -- "$CURRENT_LOG.streamed")
	if (($(stat -c %s -- "$CURRENT_LOG") > streamed)); then
		tail -c +$((streamed + 1)) -- "$CURRENT_LOG" | {
			if [[ -n $(tail -c 1 -- "$CURRENT_LOG.streamed") ]]; then
				IFS= read -r line
				printf '%s\n' "$line" | tee -a -- "$KTAP_COPY"
			fi
			prefixed
		}
	fi
	rm -f -- "$CURRENT_LOG.streamed"
	while read -r pid; do
		note "killing pid $pid ($(cat "/proc/$pid/comm" 2>/dev/null)): it left the test's process group"
		kill -KILL "$pid" 2>/dev/null || true
	done < <(find /proc/[0-9]*/fd -maxdepth 1 -printf '%l\t%h\n' 2>/dev/null |
		LOG=$CURRENT_LOG awk -F '\t' '$1 == ENVIRON["LOG"] { split($2, p, "/"); if (!seen[p[3]]++) print p[3] }')
	# An unterminated last line would swallow the result line.
	if [[ -n $(tail -c 1 -- "$CURRENT_LOG") ]]; then
		out ""
	fi
}

# timeout(1) makes the test the leader of a process group of its own.  The
# test writes its log and tail copies it into the document as it grows,
# until the test is gone: a child left holding the log holds up nothing.
# stdbuf line-buffers the test's stdout as kselftest does.
run_one() {
	local name=$1 rc=0 start=$SECONDS metrics=$ROUND_DIR/$1.json

	out "# selftests: snp-rmp: $name"
	CURRENT_LOG=$ROUND_DIR/$name.log
	rm -f -- "$metrics"
	: >"$CURRENT_LOG"
	SNP_RMP_METRICS=$metrics timeout --kill-after="$KILL_AFTER" "$TIMEOUT" \
		stdbuf --output=L "./$name" </dev/null >"$CURRENT_LOG" 2>&1 &
	TEST_PID=$!
	tail -s 0.1 -n +1 -f --pid="$TEST_PID" -- "$CURRENT_LOG" |
		tee -- "$CURRENT_LOG.streamed" | prefixed &
	STREAM_PID=$!
	# 2>/dev/null: no "Killed" job notice from the shell; the result says it.
	wait "$TEST_PID" 2>/dev/null || rc=$?
	end_test
	if ((rc == 0)); then
		result pass "$name"
	elif ((rc == 4)); then
		PROG_SKIPS=$((PROG_SKIPS + 1))
		result skip "$name" "SKIP $(skip_reason "$CURRENT_LOG")"
	elif (((rc == 124 || rc == 137) && SECONDS - start >= TIMEOUT)); then
		# timeout(1)'s codes, but also codes a test could exit with itself.
		result fail "$name" "TIMEOUT $TIMEOUT seconds"
	else
		result fail "$name" "exit=$rc"
	fi
	# A failed run's numbers describe a broken run: not kept.
	if [[ -n $STORE && -f $metrics ]]; then
		if ((rc == 0)); then
			mkdir -p -- "$STORE/$name"
			cp -- "$metrics" "$STORE/$name/$ROUND.json"
		else
			note "metrics of $name (round $ROUND) not kept: the test did not pass"
		fi
	fi
}

report_metrics() {
	local err rc=0

	if ! err=$(python3 "$GATE_PY" manifest "$STORE" --repeat "$REPEAT" "${QUICK[@]}" 2>&1); then
		note "could not write $STORE/manifest.json: ${err%%$'\n'*}"
	fi
	if ((REPEAT > 1)); then
		python3 "$GATE_PY" noise "$STORE" >"$RESULTS_DIR/noise.txt" 2>&1 || true
		prefixed <"$RESULTS_DIR/noise.txt"
	fi
	if [[ -z $GATE_DIR ]]; then
		return 0
	fi
	python3 "$GATE_PY" compare "$GATE_DIR" "$STORE" "${RUN[@]/#/--test=}" \
		>"$RESULTS_DIR/gate.txt" 2>&1 || rc=$?
	prefixed <"$RESULTS_DIR/gate.txt"
	if ((rc == 1)); then
		result fail gate
	elif ((rc != 0)); then
		result fail gate "bad input (gate.py exit $rc)"
	elif grep -q '^gate: SKIP' -- "$RESULTS_DIR/gate.txt"; then
		result skip gate "SKIP no metric measured in both the baseline and this run"
	else
		result pass gate
	fi
}

close_document() {
	out "# Totals: pass:$PASS fail:$FAIL xfail:0 xpass:0 skip:$SKIP error:0"
	DOC=closed
}

# Every way out, signals too: leave no test running and the THP knobs as
# found.  After a signal the running test and those not run are reported
# interrupted, so that the document stays whole.  No set -e here: a failed
# write to a closed stdout must not cut the restore short.
on_exit() {
	local i n=$((REPEAT * ${#RUN[@]}))

	set +e
	trap '' INT TERM HUP PIPE
	# A running test: timeout(1) turns SIGTERM into SIGKILL after KILL_AFTER.
	if [[ -n $TEST_PID ]]; then
		kill -TERM -- "-$TEST_PID" 2>/dev/null || kill -TERM "$TEST_PID" 2>/dev/null
		wait "$TEST_PID" 2>/dev/null
	fi
	end_test
	thp_restore
	if [[ $DOC != open ]]; then
		return
	elif [[ -z $SIGNALLED ]]; then
		note "run_tests.sh stopped early: this document is incomplete"
		exit 1
	fi
	note "interrupted by a signal"
	for ((i = NUM; i < n; i++)); do
		result fail "${RUN[i % ${#RUN[@]}]}" interrupted
	done
	if ((NUM == n)); then
		result fail kernel_log_clean interrupted
	fi
	if ((NUM < PLAN)); then
		result fail gate interrupted
	fi
	close_document
}

main() {
	local name

	parse_args "$@"
	[[ $MODE == list ]] || resolve_timeout
	select_tests
	if [[ $MODE == list ]]; then
		printf '%s\n' "${RUN[@]}"
		return 0
	fi
	prepare_run
	trap on_exit EXIT
	trap 'SIGNALLED=1; exit 129' HUP
	trap 'SIGNALLED=1; exit 130' INT
	trap 'SIGNALLED=1; exit 143' TERM
	# Nobody reads stdout any more: stop quietly.
	trap 'DOC=closed; exit 141' PIPE
	# Every round's tests, kernel_log_clean, and the gate if asked for.
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
	thp_save
	if [[ -z ${SNP_RMP_KLOG_FILE:-} ]] && ! { printf '%s\n' "$SNP_RMP_KLOG_MARKER" >/dev/kmsg; } 2>/dev/null; then
		KLOG_UNREADABLE="cannot write /dev/kmsg (euid $EUID)"
	fi
	cd -- "$BUILD_DIR/x86_64"
	for ((ROUND = 1; ROUND <= REPEAT; ROUND++)); do
		if ((REPEAT > 1)); then
			ROUND_DIR=$RESULTS_DIR/round-$ROUND
			mkdir -p -- "$ROUND_DIR"
			export SNP_RMP_RESULTS=$ROUND_DIR
			note "round $ROUND of $REPEAT"
		fi
		for name in "${RUN[@]}"; do
			run_one "$name"
		done
	done
	thp_restore
	report_klog
	if [[ -n $STORE ]]; then
		report_metrics
	fi
	close_document
	# kselftest's rule: any failure wins, then "everything skipped".
	if ((FAIL)); then
		return 1
	fi
	if ((PROG_SKIPS == REPEAT * ${#RUN[@]})); then
		return 4
	fi
}

main "$@"
