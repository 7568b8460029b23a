# shellcheck shell=bash disable=SC2034 # FAILED is read by the sourcing test
# SPDX-License-Identifier: GPL-2.0-only
#
# Sourced by the project's shell tests (tests/t_*.sh): numbered result
# lines for tests/run.sh to count, and a scratch folder $T that goes away
# on exit together with anything still running from it (a broken program
# under test may leave children behind).
#
#   check WHAT COMMAND...   "ok N WHAT" if COMMAND succeeds, else "not ok"
#   skip WHAT REASON        "ok N WHAT # SKIP REASON"
#   why MESSAGE             a "# " line saying why, then fail (predicates)
#   show FILE               FILE's lines as "# " diagnostics
#   exit "$FAILED"          at the end

N=0
FAILED=0
T=$(mktemp -d "${TMPDIR:-/tmp}/$(basename "$0" .sh).XXXXXX")

t_cleanup() {
	local pids

	pids=$(pgrep -f -- "$T/") || pids=""
	if [[ -n $pids ]]; then
		# shellcheck disable=SC2086 # one pid per word on purpose
		kill -KILL $pids 2>/dev/null
	fi
	rm -rf -- "$T"
}
trap t_cleanup EXIT

check() {
	local what=$1

	shift
	N=$((N + 1))
	if "$@"; then
		echo "ok $N $what"
	else
		echo "not ok $N $what"
		FAILED=1
	fi
}

skip() {
	N=$((N + 1))
	echo "ok $N $1 # SKIP $2"
}

why() {
	echo "# $*"
	return 1
}

show() {
	sed 's/^/# /' "$1"
}
