#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# CI's subset of the mutation campaign (lab/mutants.sh): four mutants, the
# quickest across the code the contract runs through (guest_memfd, KVM's
# memory attributes, THP splits, the x86 fault path), each of which the
# suite's own programs must kill on a mainline lab kernel.  The whole
# campaign is `lab/mutants.sh`; README has its table.
#
# Runs with KSRC at the mainline tree (the subset's mutants are written
# for it); with another tree it SKIPs.  SNP_RMP_LAB=0 skips it too.
#
# Prints "ok N what", "not ok N what" or "ok N what # SKIP why"; nested
# output is "# " prefixed.

set -u

top=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lib.sh
. "$top/tests/lib.sh"

SUBSET=(01 06 16 20)

if [ "${SNP_RMP_LAB:-1}" = 0 ]; then
	skip "mutant subset" "SNP_RMP_LAB=0"
	exit 0
fi
mainline=$(readlink -f "$top/.cache/src/mainline" 2>/dev/null)
if [ -z "${KSRC:-}" ] || [ "$(readlink -f "$KSRC")" != "$mainline" ]; then
	skip "mutant subset" "written for the mainline tree; KSRC is ${KSRC:-unset}"
	exit 0
fi

start=$SECONDS
"$top/lab/mutants.sh" -s -t mainline -o "$T/mut" "${SUBSET[@]}" >"$T/out" 2>&1
rc=$?
show "$T/out"
echo "# lab/mutants.sh -s ${SUBSET[*]}: $((SECONDS - start)) s"
check "lab/mutants.sh: no mutant of the subset survived (exit $rc)" test "$rc" -eq 0
for m in "${SUBSET[@]}"; do
	line=$(grep -E "^$m-" "$T/mut/table.txt")
	check "mutant ${line%% *} killed by the suite: ${line#* }" \
		bash -c "[[ '$line' =~ ' ok '.*killed ]]"
done
exit "$FAILED"
