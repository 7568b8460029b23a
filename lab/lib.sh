# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash disable=SC2034
#
# Sourced by the lab scripts: the project folder, messages named after
# the script, and its usage from its header's "#   lab/..." lines.

project=$(cd "$(dirname "$0")/.." && pwd)

say() {
	echo "lab/${0##*/}: $*" >&2
}

die() {
	say "$@"
	exit 1
}

usage() {
	echo usage: >&2
	sed -n '/^#   lab\//,/^#$/s/^#   /  /p' "$0" >&2
	exit 2
}
