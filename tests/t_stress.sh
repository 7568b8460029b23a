#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# snp_thp_split_stress on this machine: usage errors leave nothing behind,
# the same seed gives the same schedule (-S) and the run follows it, a
# quick run passes and writes a metrics document of the agreed schema, and
# each invariant can fail: SNP_RMP_STRESS_INJECT (test-only) breaks one
# invariant once, and the program must then exit 1 with that "not ok" line.
#
# Prints "ok N what", "not ok N what" or "ok N what # SKIP why"; the
# program's own output is "# " prefixed.

set -u

top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
prog=$BUILD/x86_64/snp_thp_split_stress
# shellcheck source=lib.sh
. "$top/tests/lib.sh"

unset SNP_RMP_METRICS SNP_RMP_QUICK SNP_RMP_STRESS_INJECT

# The schedule lines of a dry run or of a run ("# " prefixed there).
schedule() {
	sed -nE 's/^(# )?schedule ((vcpu|host|splitter|collapser)[0-9]+ [0-9]+ 0x[0-9a-f]+)$/\2/p' "$1"
}

if [ ! -x "$prog" ]; then
	check "snp_thp_split_stress is built ($prog)" false
	exit 1
fi

# ---- options -----------------------------------------------------------------

"$prog" -q -m 3 -o "$T/bad.json" >"$T/bad.out" 2>"$T/bad.err"
rc=$?
check "bad -m exits 1 (got $rc)" test "$rc" -eq 1
check "bad -m prints usage on stderr" grep -q '^Usage:' "$T/bad.err"
check "bad -m leaves no metrics file" test ! -e "$T/bad.json"
check "bad -m prints no TAP" bash -c "! grep -q '^TAP' '$T/bad.out'"
"$prog" -h >"$T/help.out" 2>&1
rc=$?
check "-h exits 0 with usage (got $rc)" bash -c "[ $rc -eq 0 ] && grep -q '^Usage:' '$T/help.out'"

# ---- the schedule is a function of the seed ----------------------------------

args=(-q -v 2 -t 2 -m 64)
"$prog" "${args[@]}" -S -s 0x5eed >"$T/dry1" 2>&1
"$prog" "${args[@]}" -S -s 0x5eed >"$T/dry2" 2>&1
"$prog" "${args[@]}" -S -s 0x5eee >"$T/dry3" 2>&1
schedule "$T/dry1" >"$T/s1"
schedule "$T/dry2" >"$T/s2"
schedule "$T/dry3" >"$T/s3"
show "$T/s1"
check "-S prints a hash per actor (6)" test "$(wc -l <"$T/s1")" -eq 6
check "-S: same seed, same schedule" cmp -s "$T/s1" "$T/s2"
check "-S: another seed, every actor's schedule differs" \
	bash -c "[ -z \"\$(comm -12 <(sort '$T/s1') <(sort '$T/s3'))\" ]"

if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
	skip "quick run and injected failures" "no access to /dev/kvm"
	exit "$FAILED"
fi

# ---- a quick run ---------------------------------------------------------------

SNP_RMP_QUICK=1 SNP_RMP_METRICS=$T/quick.json "$prog" -s 0x5eed -v 2 -t 2 -m 64 \
	>"$T/quick.out" 2>&1
rc=$?
show "$T/quick.out"
check "quick run exits 0 (got $rc)" test "$rc" -eq 0
check "quick run: no 'not ok'" bash -c "! grep -q '^not ok' '$T/quick.out'"
check "quick run: 9 results" test "$(grep -cE '^(not )?ok [0-9]+ ' "$T/quick.out")" -eq 9
schedule "$T/quick.out" >"$T/sq"

# Each actor's hash covers the operations it ran, fewer than -S hashes on a
# slow machine: a dry run capped at that count (-i) must give the same.
# shellcheck disable=SC2317 # called through check()
followed_schedule() {
	local actor ops hash

	[ -s "$T/sq" ] || why "the run printed no schedule lines" || return
	while read -r actor ops hash; do
		"$prog" "${args[@]}" -S -s 0x5eed -i "$ops" >"$T/dry.$actor" 2>&1
		grep -qx "schedule $actor $ops $hash" "$T/dry.$actor" ||
			why "$actor: ran $ops ops with hash $hash, -S -i $ops says" \
				"$(grep "^schedule $actor " "$T/dry.$actor")" || return
	done <"$T/sq"
}
check "the run followed the -S schedule of its seed" followed_schedule
check "metrics JSON is valid (python3 -m json.tool)" \
	python3 -m json.tool "$T/quick.json" /dev/null
check "metrics JSON has the agreed schema, all invariants 0" python3 - "$T/quick.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["schema"] == "snp-rmp-metrics/1" and d["test"] == "snp_thp_split_stress"
for k in ("kernel", "flavour", "thp", "cpu", "nodes"):
    assert k in d["env"], k
for k in ("seed", "duration_s", "vcpus", "threads", "mem_mib"):
    assert k in d["params"], k
assert d["params"]["seed"] == 0x5eed
for k in ("host_accesses_per_s", "guest_stamps_per_s", "conversions_per_s", "splits",
          "collapses", "splits_per_cpu_s", "bare_splits_per_cpu_s", "collapses_per_cpu_s",
          "bare_collapses_per_cpu_s", "sigbus_latency_p50_ns", "sigbus_latency_p99_ns",
          "host_access_latency_p50_ns", "host_access_latency_p99_ns"):
    m = d["metrics"][k]
    assert isinstance(m["value"], (int, float)) and m["better"] in ("higher", "lower", "none"), k
    assert isinstance(m["unit"], str), k
# Gated only what times a kernel operation.
gated = sorted(k for k, m in d["metrics"].items() if m["better"] != "none")
assert gated == ["sigbus_latency_p50_ns"], gated
assert d["invariants"] and all(v == 0 for v in d["invariants"].values()), d["invariants"]
assert isinstance(d["per_thread"], list) and isinstance(d["per_node"], list)
assert len([t for t in d["per_thread"] if t["actor"] == "host"]) == 2
EOF

# ---- every invariant can fail ------------------------------------------------

# inject NAME "not ok N subtest": the run must exit 1 and print exactly that.
inject() {
	local name=$1 want=$2 out=$T/inject.$1 rc line

	SNP_RMP_STRESS_INJECT=$name SNP_RMP_METRICS=$out.json "$prog" -q -d 2 -m 64 \
		>"$out" 2>&1
	rc=$?
	line=$(grep -E "^(not )?ok [0-9]+ ${want#not ok [0-9]* }( |$)" "$out")
	if [[ $line == *"# SKIP"* ]]; then
		skip "injected $name fails $want" "${line#*# SKIP }"
		return
	fi
	if [ "$rc" -ne 1 ] || ! grep -qx "$want" "$out"; then
		show "$out"
	fi
	check "injected $name: exit 1 (got $rc) and '$want'" \
		bash -c "[ $rc -eq 1 ] && grep -qx '$want' '$out'"
}

inject unexpected_sigbus "not ok 1 no_unexpected_sigbus"
inject missed_sigbus "not ok 2 no_missed_sigbus"
inject host_mismatch "not ok 3 no_stamp_mismatch"
inject lost_write "not ok 3 no_stamp_mismatch"
inject guest_mismatch "not ok 3 no_stamp_mismatch"
inject kvm_run_error "not ok 4 no_kvm_run_error"
inject no_split "not ok 5 thp_splits_seen"
inject no_collapse "not ok 6 thp_collapses_seen"
inject kmsg "not ok 8 kernel_log_clean"
check "an injected mismatch reaches the metrics invariants" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["invariants"]["stamp_mismatches"] > 0, d["invariants"]
' "$T/inject.host_mismatch.json"

# ---- what this machine cannot run is a SKIP naming the capability ---------

"$prog" -q -f snp >"$T/snp.out" 2>&1
rc=$?
if [ "$rc" -eq 4 ]; then
	check "-f snp SKIPs naming what is missing" grep -qE '^1\.\.0 # SKIP flavour snp: .+' "$T/snp.out"
else
	check "-f snp runs and passes where SNP is usable (got $rc)" test "$rc" -eq 0
fi

exit "$FAILED"
