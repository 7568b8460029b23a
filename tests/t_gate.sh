#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Test the regression gate: scripts/gate.py on synthetic metrics documents
# from a seeded generator (a 20% slower run must fail, a second run of the
# same build must pass), its statistics against brute force, and
# run_tests.sh --repeat/--save/--gate with fake test programs, a fake THP
# folder and a fake kernel log, so neither /dev/kvm nor root is needed.
#
# Prints "ok N what" / "not ok N what" per check, "# " lines saying why a
# check failed; exits 1 if any failed.  KSRC=/path/to/linux enables the
# check with the kernel's KTAP parser.
#
# The predicates below run through check(), which shellcheck cannot follow:
# shellcheck disable=SC2317

set -u

HERE=$(cd -- "$(dirname -- "$0")" && pwd -P)
readonly GATE=$HERE/../scripts/gate.py
readonly RUNNER=$HERE/../run_tests.sh
# shellcheck source=lib.sh
. "$HERE/lib.sh"
RC=0

export SNP_RMP_THP_DIR=$T/thp
export SNP_RMP_KLOG_FILE=$T/klog
export FAKE_STATE=$T/state
export PYTHONDONTWRITEBYTECODE=1
unset O SNP_RMP_TIMEOUT SNP_RMP_QUICK SNP_RMP_RESULTS SNP_RMP_METRICS FAKE_SLOW FAKE_FAIL_RUN FAKE_HOLD

rc_is() {
	[[ $RC == "$1" ]] || why "exit code $RC, wanted $1"
}

out_has() {
	grep -qE -- "$1" "$T/out" || why "nothing matches '$1' in the output"
}

out_lacks() {
	! grep -qE -- "$1" "$T/out" || why "'$1' is in the output"
}

err_has() {
	grep -qF -- "$1" "$T/err" || why "'$1' not on stderr: $(head -c 300 "$T/err")"
}

# gate ARGS...: run gate.py; output in $T/out and $T/err, exit code in RC.
gate() {
	RC=0
	python3 "$GATE" "$@" >"$T/out" 2>"$T/err" || RC=$?
}

# runner ARGS...: run run_tests.sh on the fake build.
runner() {
	RC=0
	timeout -k 5 120 "$RUNNER" -b "$T/build" "$@" >"$T/out" 2>"$T/err" || RC=$?
}

# ---- synthetic metrics --------------------------------------------------

# gen DIR SEED [key=value...]: a saved run of snp_thp_split_stress whose
# metrics are drawn from a seeded normal distribution: runs=5, cv=0.03,
# slower=0 (0.2 is 20% slower: rates down, latencies up).
write_generator() {
	cat >"$T/gen.py" <<-'EOF'
		import json, os, random, sys

		top, seed = sys.argv[1], int(sys.argv[2])
		opt = {"runs": 5, "cv": 0.03, "slower": 0.0, "noisy_cv": 0.30,
		       "drop": "", "better": "", "test": "snp_thp_split_stress"}
		for kv in sys.argv[3:]:
		    k, v = kv.split("=", 1)
		    opt[k] = type(opt[k])(v)
		rnd = random.Random(seed)
		spec = [("host_faults_per_s", 250000.0, "1/s", "higher", opt["cv"]),
		        ("splits_per_s", 1200.0, "1/s", "higher", opt["cv"]),
		        ("guest_stamps_per_s", 90000.0, "1/s", "higher", opt["noisy_cv"]),
		        ("fault_latency_p99_ns", 8000.0, "ns", "lower", opt["cv"]),
		        ("splits", 6000.0, "count", "none", opt["cv"])]
		folder = os.path.join(top, opt["test"])
		os.makedirs(folder, exist_ok=True)
		for run in range(1, opt["runs"] + 1):
		    metrics = {}
		    for name, mean, unit, better, cv in spec:
		        if name == opt["drop"]:
		            continue
		        if better == "higher":
		            mean *= 1 - opt["slower"]
		        elif better == "lower":
		            mean /= 1 - opt["slower"]
		        if name == "splits":
		            mean *= 1 + 2 * opt["slower"]
		        if opt["better"] and name == "host_faults_per_s":
		            better = opt["better"]
		        metrics[name] = {"value": round(mean * rnd.gauss(1, cv), 3),
		                         "unit": unit, "better": better}
		    doc = {"schema": "snp-rmp-metrics/1", "test": opt["test"],
		           "env": {"kernel": "synthetic"}, "params": {"seed": seed},
		           "metrics": metrics, "invariants": {"data_mismatches": 0}}
		    with open(os.path.join(folder, f"{run}.json"), "w") as f:
		        json.dump(doc, f)
		with open(os.path.join(top, "manifest.json"), "w") as f:
		    json.dump({"schema": "snp-rmp-runs/1", "repeat": opt["runs"]}, f)
	EOF
}

gen() {
	python3 "$T/gen.py" "$@"
}

verdict_is() {
	out_has "^$1 .* $2\$"
}

check_gate_verdicts() {
	gen "$T/base" 1
	gen "$T/same" 2
	gen "$T/slow" 3 slower=0.2
	gen "$T/fast" 4 slower=-0.2

	gate compare "$T/base" "$T/same"
	cp "$T/out" "$T/same.out"
	check "same build: exit 0" rc_is 0
	check "same build: no regression" out_lacks "regression$"
	check "same build: PASS" out_has "^gate: 0 regression\(s\) in 4 compared metric\(s\): PASS$"

	gate compare "$T/base" "$T/slow"
	check "20% slower: exit 1" rc_is 1
	check "20% slower: host_faults_per_s regresses" verdict_is host_faults_per_s regression
	check "20% slower: splits_per_s regresses" verdict_is splits_per_s regression
	check "20% slower: a lower-is-better latency regresses" verdict_is fault_latency_p99_ns regression
	check "20% slower: change is about -20%" out_has "^host_faults_per_s .* -(19|20|21)\.[0-9]%"
	check "20% slower: a noisy metric is noisy, not a regression" verdict_is guest_stamps_per_s noisy
	check "20% slower: a better:none metric is info only" verdict_is splits info
	check "20% slower: FAIL with the regressions named" \
		out_has "^gate: REGRESSION snp_thp_split_stress: host_faults_per_s "

	gate compare "$T/base" "$T/fast"
	check "20% faster: exit 0" rc_is 0
	check "20% faster: improved" verdict_is host_faults_per_s improved

	gate compare "$T/base" "$T/same"
	check "the same input gives the same output" cmp -s "$T/out" "$T/same.out"
}

check_gate_thresholds() {
	gen "$T/steady" 5 cv=0.005
	gen "$T/steady3" 6 cv=0.005 slower=0.03
	gate compare "$T/steady" "$T/steady3"
	check "3% slower, steady: significant but below 5%: ok" verdict_is host_faults_per_s ok
	check "3% slower, steady: exit 0" rc_is 0
	gate compare --min-effect 2 "$T/steady" "$T/steady3"
	check "--min-effect 2 makes the same 3% a regression" rc_is 1
	gen "$T/noisy" 11 noisy_cv=0.15
	gen "$T/noisy40" 12 noisy_cv=0.15 slower=0.4
	gate compare "$T/noisy" "$T/noisy40"
	check "CV 15%, 40% slower: noisy, not gated" verdict_is guest_stamps_per_s noisy
	gate compare --max-cv 50 "$T/noisy" "$T/noisy40"
	check "--max-cv 50 gates it: regression" verdict_is guest_stamps_per_s regression

	gen "$T/one" 7 runs=1
	gen "$T/one2" 8 runs=1 slower=0.5
	gate compare "$T/one" "$T/one2"
	check "1 vs 1 run: says nothing can fail" out_has "cannot reach p <= 0.01"
	check "1 vs 1 run: exit 0" rc_is 0

	gen "$T/nolat" 9 drop=fault_latency_p99_ns
	gate compare "$T/base" "$T/nolat"
	check "a metric gone from the current run is missing" verdict_is fault_latency_p99_ns missing
	check "a missing metric does not fail the gate" rc_is 0
}

check_gate_bad_input() {
	mkdir -p "$T/broken/snp_thp_split_stress"
	cp "$T/base/manifest.json" "$T/broken/"
	echo '{"schema": "snp-rmp-metrics/1", "metrics": {' >"$T/broken/snp_thp_split_stress/1.json"
	gate compare "$T/base" "$T/broken"
	check "malformed JSON: exit 2" rc_is 2
	check "malformed JSON: the file is named" err_has "broken/snp_thp_split_stress/1.json: not valid JSON"

	echo '{"schema": "other/1", "metrics": {}}' >"$T/broken/snp_thp_split_stress/1.json"
	gate compare "$T/base" "$T/broken"
	check "another schema: exit 2" rc_is 2

	echo '{"schema": "snp-rmp-metrics/1", "metrics": {"x": {"value": 1, "unit": "s", "better": "up"}}}' \
		>"$T/broken/snp_thp_split_stress/1.json"
	gate compare "$T/base" "$T/broken"
	check "better: up is refused" err_has "better must be one of higher, lower, none"

	gate compare "$T/nosuch" "$T/same"
	check "no baseline folder: exit 2" rc_is 2
	mkdir -p "$T/nomanifest"
	cp -r "$T/same/snp_thp_split_stress" "$T/nomanifest/"
	gate compare "$T/nomanifest" "$T/same"
	check "a baseline without manifest.json: exit 2" rc_is 2

	gen "$T/flipped" 10 better=lower
	gate compare "$T/base" "$T/flipped"
	check "a metric whose direction changed: exit 2" rc_is 2
	check "...saying to make a new baseline" err_has "make a new baseline"
	gate
	check "no command: exit 2" rc_is 2
}

check_noise() {
	mkdir -p "$T/cv/t"
	local i

	for i in 1 2 3 4 5; do
		printf '{"schema": "snp-rmp-metrics/1", "metrics": {"m": {"value": %d, "unit": "1/s", "better": "higher"}, "k": {"value": 7, "unit": "1/s", "better": "higher"}}}\n' \
			"$i" >"$T/cv/t/$i.json"
	done
	gate noise "$T/cv"
	check "noise: CV of 1..5 is 52.7%, not gateable" out_has "^m +1/s +5 +3 +52\.7%  no: CV > 10%$"
	check "noise: a constant metric has CV 0%, gateable" out_has "^k +1/s +5 +7 +0\.0%  yes$"
}

# Exact tails against enumeration of every split, ties included; the
# normal approximation near the exact answer where both apply.
check_statistics() {
	python3 - "$GATE" >"$T/out" 2>&1 <<-'EOF'
		import importlib.util, itertools, random, sys
		spec = importlib.util.spec_from_file_location("gate", sys.argv[1])
		g = importlib.util.module_from_spec(spec)
		spec.loader.exec_module(g)
		rnd = random.Random(42)
		for trial in range(300):
		    nb, nc = rnd.randint(1, 6), rnd.randint(1, 6)
		    base = [rnd.choice([1, 2, 2, 3, 5, 8]) for _ in range(nb)]
		    cur = [rnd.choice([1, 2, 3, 3, 5, 9]) for _ in range(nc)]
		    ranks = g.doubled_midranks(base + cur)
		    obs = sum(ranks[nb:])
		    sums = [sum(c) for c in itertools.combinations(ranks, nc)]
		    want = (sum(s <= obs for s in sums) / len(sums),
		            sum(s >= obs for s in sums) / len(sums))
		    got = g.mann_whitney(base, cur)
		    if any(abs(a - b) > 1e-12 for a, b in zip(got, want)):
		        print(f"mismatch {base} {cur}: {got} != {want}")
		        sys.exit(1)
		base = [rnd.gauss(0, 1) for _ in range(20)]
		cur = [rnd.gauss(0.5, 1) for _ in range(20)]
		ranks = g.doubled_midranks(base + cur)
		exact = g.exact_rank_sum_tails(ranks, 20, sum(ranks[20:]))
		approx = g.normal_rank_sum_tails(ranks, 20, sum(ranks[20:]))
		if any(abs(a - b) > 0.01 for a, b in zip(exact, approx)):
		    print(f"normal approximation {approx} far from exact {exact}")
		    sys.exit(1)
		print("statistics agree")
	EOF
	check "exact Mann-Whitney tails equal brute force (300 samples, ties)" \
		out_has "^statistics agree$"
}

# ---- run_tests.sh --repeat, --save, --gate ------------------------------

# A test program whose metrics follow a fixed sequence of factors, one per
# run, times 0.8 (rates) with FAKE_SLOW=1; FAKE_FAIL_RUN=N fails run N,
# FAKE_HOLD=N hangs in run N.
make_fakes() {
	mkdir -p "$T/build/x86_64" "$T/thp" "$T/state" "$T/bin"
	ln -s "$(command -v sleep)" "$T/bin/snp-gate-sleep"
	echo "[    1.000000] kvm: loaded" >"$T/klog"
	cat >"$T/build/x86_64/fake_stress" <<-'EOF'
		#!/bin/sh
		n=$(cat "$FAKE_STATE/count" 2>/dev/null || echo 0)
		n=$((n + 1))
		echo "$n" >"$FAKE_STATE/count"
		set -- 1.00 1.02 0.98 1.01 0.99 1.03 0.97 1.00 1.02 0.98
		shift $(((n - 1) % 10))
		awk -v f="$1" -v k="${FAKE_SLOW:+0.8}" -v out="$SNP_RMP_METRICS" 'BEGIN {
			if (k == "") k = 1
			printf "{\"schema\": \"snp-rmp-metrics/1\", \"test\": \"fake_stress\", " > out
			printf "\"env\": {}, \"params\": {}, \"metrics\": {" > out
			printf "\"host_faults_per_s\": {\"value\": %.1f, \"unit\": \"1/s\", \"better\": \"higher\"}, ", 100000 * f * k > out
			printf "\"fault_latency_p99_ns\": {\"value\": %.1f, \"unit\": \"ns\", \"better\": \"lower\"}}, ", 5000 * f / k > out
			printf "\"invariants\": {}}\n" > out
		}'
		echo "ok 1 run $n"
		if [ "${FAKE_HOLD:-0}" = "$n" ]; then
			"$FAKE_BIN/snp-gate-sleep" 3600 &
			wait
		fi
		[ "${FAKE_FAIL_RUN:-0}" != "$n" ]
	EOF
	cat >"$T/build/x86_64/no_metrics" <<-'EOF'
		#!/bin/sh
		echo "ok 1 nothing measured"
	EOF
	chmod +x "$T/build/x86_64/fake_stress" "$T/build/x86_64/no_metrics"
	export FAKE_BIN=$T/bin
}

reset_count() {
	rm -f "$T/state/count"
}

saved_layout() {
	local i

	for i in 1 2 3 4 5; do
		[[ -f $T/saved/fake_stress/$i.json ]] || why "no saved/fake_stress/$i.json" || return 1
	done
	grep -q '"repeat": 5' "$T/saved/manifest.json" || why "manifest.json: $(cat "$T/saved/manifest.json")"
}

plan_counts_results() {
	local plan results

	plan=$(sed -n 's/^1\.\.\([0-9]*\)$/\1/p' "$T/out" | head -n 1)
	results=$(grep -cE '^(not )?ok [0-9]+ ' "$T/out")
	[[ $plan == "$1" && $results == "$1" ]] || why "plan $plan, $results results, wanted $1"
}

refused_naming() {
	rc_is 2 && err_has "$1"
}

failed_run_not_kept() {
	[[ ! -e $T/saved2/fake_stress/2.json && -f $T/saved2/fake_stress/3.json ]] ||
		why "saved2/fake_stress holds: $(ls "$T/saved2/fake_stress")"
}

no_sleeper() {
	! pgrep -f -- "$T/bin/snp-gate-sleep" >/dev/null || why "a test's child survived"
}

kunit_parse() {
	local parser=$KSRC/tools/testing/kunit/kunit.py

	python3 "$parser" parse "$T/gated.out" >"$T/kunit.out" 2>&1
	if grep -q 'ERROR' "$T/kunit.out" ||
	   ! grep -q 'Testing complete\. Ran 7 tests: passed: 6, failed: 1$' "$T/kunit.out"; then
		why "kunit.py parse says: $(grep -E 'ERROR|Testing complete' "$T/kunit.out")"
	fi
}

check_runner_usage() {
	runner --repeat 0
	check "--repeat 0: exit 2" rc_is 2
	runner --repeat many
	check "--repeat many: exit 2" rc_is 2
	runner --repeat
	check "--repeat without a count: exit 2" rc_is 2
	runner --gate "$T/nosuch"
	check "--gate without a saved run there: exit 2 naming manifest.json" \
		refused_naming "no manifest.json"
	mkdir -p "$T/full"
	echo x >"$T/full/keep"
	runner --save "$T/full"
	check "--save onto a folder that is not empty: exit 2" rc_is 2
	check "...and the folder is untouched" test "$(ls "$T/full")" = keep
	runner --bogus
	check "an unknown long option: exit 2" rc_is 2
}

check_runner_save() {
	reset_count
	runner -t fake_stress --repeat 5 --save "$T/saved" -o "$T/r1"
	check "--repeat 5 --save: exit 0" rc_is 0
	check "--repeat 5: 5 results and kernel_log_clean in the plan" plan_counts_results 6
	check "--save: DIR/<test>/<run>.json and manifest.json" saved_layout
	check "--repeat 5: the noise table is printed" \
		out_has "^# host_faults_per_s +1/s +5 +100000 +1\.6%  yes$"
	check "--repeat 5: round 3 logs in its own folder" test -f "$T/r1/round-3/fake_stress.log"
}

check_runner_gate() {
	runner -t fake_stress --repeat=5 --gate "$T/saved" -o "$T/r2"
	check "same build gated: exit 0" rc_is 0
	check "same build gated: ok 7 gate" out_has "^ok 7 gate$"
	check "the gate's table is in the document" \
		out_has "^# host_faults_per_s +1/s +100000 +100000 +\+0\.0% .* ok$"

	FAKE_SLOW=1 runner -t fake_stress --repeat 5 --gate "$T/saved" -o "$T/r3"
	cp "$T/out" "$T/gated.out"
	check "20% slower gated: exit 1" rc_is 1
	check "20% slower gated: not ok 7 gate" out_has "^not ok 7 gate$"
	check "20% slower gated: the regression is named" \
		out_has "^# gate: REGRESSION fake_stress: host_faults_per_s 100000 -> 80000 1/s"
	check "the gate's table is kept in the results" test -s "$T/r3/gate.txt"
	if [[ -z ${KSRC:-} || ! -f ${KSRC:-}/tools/testing/kunit/kunit.py ]]; then
		skip "kernel KTAP parser accepts the gated document" "KSRC not set"
	else
		check "kernel KTAP parser: 7 tests, 6 passed, 1 failed" kunit_parse
	fi

	runner -t no_metrics --repeat 2 --gate "$T/saved" -o "$T/r4"
	check "nothing to compare: the gate is a SKIP" \
		out_has "^ok 4 gate # SKIP no metric measured in both"

	reset_count
	FAKE_FAIL_RUN=2 runner -t fake_stress --repeat 3 --save "$T/saved2" -o "$T/r5"
	check "a failed run's metrics are not kept" failed_run_not_kept
	check "...and that is said" out_has "^# metrics of fake_stress \(round 2\) not kept"
}

# SIGTERM in round 2 of 3: every planned result is still printed.
check_runner_signal() {
	local pid tries=100

	reset_count
	FAKE_HOLD=2 "$RUNNER" -b "$T/build" -t fake_stress --repeat 3 --gate "$T/saved" \
		-o "$T/r6" >"$T/out" 2>"$T/err" &
	pid=$!
	while ! pgrep -f -- "$T/bin/snp-gate-sleep" >/dev/null && ((tries-- > 0)); do
		sleep 0.1
	done
	kill -TERM "$pid"
	RC=0
	wait "$pid" || RC=$?
	check "SIGTERM in round 2: exit 143" rc_is 143
	check "SIGTERM in round 2: all 5 planned results printed" plan_counts_results 5
	check "SIGTERM in round 2: the gate is reported interrupted" out_has "^not ok 5 gate # interrupted$"
	check "SIGTERM in round 2: the test's child is gone" no_sleeper
}

main() {
	if ! command -v python3 >/dev/null; then
		skip "regression gate" "no python3"
		exit 0
	fi
	write_generator
	check_gate_verdicts
	check_gate_thresholds
	check_gate_bad_input
	check_noise
	check_statistics
	make_fakes
	check_runner_usage
	check_runner_save
	check_runner_gate
	check_runner_signal
	exit "$FAILED"
}

main "$@"
