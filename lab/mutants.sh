#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The mutation campaign: plant each kernel mutant of tests/mutants/ in a
# lab kernel, boot it, run the suite and upstream's own tests for the same
# code, and score who caught what.
#
#   lab/mutants.sh [-s] [-t mainline|lts] [-o RESULTS] [-T SECONDS] [MUTANT...]
#
# MUTANT is a file of tests/mutants/ or its number (07); without one,
# every mutant whose "Trees:" names the tree.  -s runs the suite's own
# programs only (CI's quick subset).  The pristine kernel runs
# first: a program's result on a mutant counts as a kill only where it
# differs from the pristine one, and only if it is a "not ok" or a
# non-zero exit.  A guest that shut down (triple fault) is no kill, nor
# is a guest kernel panic unless the mutant's "Expect: panic" says so.
#
# Per program the outcome is killed, survived, shutdown, timeout or
# not-run; per mutant also build-failed, boot-failed, panic, timeout or
# not-runnable ("Expect: not-runnable": SNP code, built only).  The table
# is printed and kept, with the per-program logs, in RESULTS (default
# build/results/mutants-<time>) as mutants.json and table.txt.  Exits 1
# if a runnable mutant that is not equivalent survived every program.

set -eu
set -o pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
tree=mainline
results=""
watchdog=900
PROG_TIMEOUT=300

# Columns: ours first, then upstream's.
PROGS=(fault stress guest_memfd_test private_mem_conversions_test split_huge_page_test khugepaged)

while getopts ':st:o:T:' opt; do
	case $opt in
	s) PROGS=(fault stress) ;;
	t) tree=$OPTARG ;;
	o) results=$OPTARG ;;
	T) [[ $OPTARG =~ ^[1-9][0-9]*$ ]] || die "-T wants seconds, not '$OPTARG'"
	   watchdog=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
case $tree in
mainline) build=$project/build/mainline tree_word=mainline ;;
lts) build=$project/build tree_word=6.12 ;;
*) die "-t wants mainline or lts, not '$tree'" ;;
esac

# header FILE KEY: the value of a mutant's header line.
header() {
	sed -n "s/^$2: *//p" "$1" | head -n 1
}

mutants=()
if (($#)); then
	for m in "$@"; do
		f=$(find "$project/tests/mutants" -name "$m*.patch" -o -name "$m" | sort | head -n 1)
		[ -n "$f" ] || die "no mutant '$m' in tests/mutants"
		[[ " $(header "$f" Trees) " == *" $tree_word "* ]] ||
			die "$(basename "$f") is not for $tree_word (Trees: $(header "$f" Trees))"
		mutants+=("$f")
	done
else
	for f in "$project"/tests/mutants/*.patch; do
		if [[ " $(header "$f" Trees) " == *" $tree_word "* ]]; then
			mutants+=("$f")
		fi
	done
fi
((${#mutants[@]})) || die "no mutant for $tree_word"

results=${results:-$project/build/results/mutants-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$results"
results=$(cd "$results" && pwd)

ksrc=$("$project/scripts/ksrc.sh" "$tree")
say "building the suite and upstream's tests against $ksrc"
make -s -C "$project" O="$build" KSRC="$ksrc" all >&2
"$project/lab/upstream.sh" "$ksrc" "$build" >"$results/upstream.txt"

# upstream NAME: the path of one of upstream's programs.
upstream() {
	awk -v n="$1" '$1 == n { print $2 }' "$results/upstream.txt"
}

# The guest's side: each program under a timeout, its output and exit
# status into OUT/NAME.{out,rc}.  The guest is thrown away afterwards, so
# the THP settings the programs change need no restoring.
cat >"$results/guest.sh" <<EOF
#!/bin/bash
out=\$1
run() {
	local name=\$1
	shift
	timeout -k 5 $PROG_TIMEOUT "\$@" >"\$out/\$name.out" 2>&1 </dev/null
	echo \$? >"\$out/\$name.rc"
}
export SNP_RMP_QUICK=1
cd "\$(mktemp -d)"
EOF
for prog in "${PROGS[@]}"; do
	case $prog in
	fault) echo "run fault $build/x86_64/snp_rmp_user_fault_test" ;;
	stress) echo "run stress $build/x86_64/snp_thp_split_stress" ;;
	split_huge_page_test)
		# 6.12's page-cache phase writes 4 MiB a byte at a time, nine
		# times: minutes on bare metal, far more under TCG.
		if [ "$tree" = mainline ]; then
			echo "run $prog $(upstream "$prog")"
		fi ;;
	# MADV_COLLAPSE of anonymous memory: what the collapse mutants break.
	khugepaged) echo "run $prog $(upstream "$prog") madvise:anon" ;;
	*) echo "run $prog $(upstream "$prog")" ;;
	esac
done >>"$results/guest.sh"

# boot NAME [PATCH]: build the kernel (with PATCH), run the programs in it.
# Prints the mutant-wide outcome: ok, build-failed, boot-failed, panic, timeout.
boot() {
	local name=$1 patch=${2:-} dir=$results/$1 kernel rc=0 start

	mkdir -p "$dir"
	start=$SECONDS
	if ! kernel=$("$project/lab/kernel.sh" ${patch:+-p "$patch"} "$ksrc" "$build/lab/kernel" \
			2>"$dir/kernel.log"); then
		echo $((SECONDS - start)) >"$dir/build_s"
		echo build-failed
		return
	fi
	echo $((SECONDS - start)) >"$dir/build_s"
	start=$SECONDS
	"$project/lab/vmtest.sh" -b "$build" -o "$dir" -T "$watchdog" \
		-e "bash $results/guest.sh $dir" "$kernel" >"$dir/vmtest.out" 2>&1 || rc=$?
	echo $((SECONDS - start)) >"$dir/run_s"
	if grep -q '^not ok 1 vmtest # guest kernel panic' "$dir/vmtest.out"; then
		echo panic
	elif grep -q '^not ok 1 vmtest # TIMEOUT' "$dir/vmtest.out"; then
		echo timeout
	elif grep -q '^not ok 1 vmtest # boot failure' "$dir/vmtest.out"; then
		echo boot-failed
	else
		echo ok
	fi
}

# failed DIR PROG: did the program fail there?  Its not-ok lines go to
# DIR/PROG.failed, for the comparison with the pristine run.
failed() {
	local rc

	rc=$(cat "$1/$2.rc" 2>/dev/null) || return 1
	grep -E '^(# )?not ok [0-9]+' "$1/$2.out" | sed -E 's/^(# )?not ok [0-9]+ //' \
		>"$1/$2.failed" || true
	[ -s "$1/$2.failed" ] || { [ "$rc" != 0 ] && [ "$rc" != 4 ]; }
}

# verdict MUTANT_DIR PROG: this program's outcome on the mutant.
verdict() {
	local dir=$1 prog=$2 rc

	if [ ! -f "$dir/$prog.rc" ]; then
		echo not-run
		return
	fi
	rc=$(cat "$dir/$prog.rc")
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		echo timeout
	elif grep -q 'got SHUTDOWN' "$dir/$prog.out"; then
		echo shutdown
	elif ! failed "$dir" "$prog"; then
		echo survived
	elif ! failed "$results/pristine" "$prog"; then
		echo killed
	elif ! cmp -s "$dir/$prog.failed" "$results/pristine/$prog.failed" ||
	     [ "$rc" != "$(cat "$results/pristine/$prog.rc")" ]; then
		# It failed on the pristine kernel too: only a new failure counts.
		echo killed
	else
		echo survived
	fi
}

say "pristine $tree_word kernel"
base=$(boot pristine)
[ "$base" = ok ] || die "the pristine kernel did not run the programs ($base): see $results/pristine"
for prog in "${PROGS[@]}"; do
	if failed "$results/pristine" "$prog"; then
		say "note: $prog fails on the pristine kernel too; only new failures count"
	fi
done

table=$results/table.txt
json=$results/mutants.json
{
	printf '%-38s %-13s' mutant outcome
	printf ' %-9.9s' "${PROGS[@]}"
	printf '\n'
} >"$table"
echo "{\"tree\": \"$tree_word\", \"ksrc\": \"$ksrc\", \"date\": \"$(date -u +%FT%TZ)\", \"mutants\": [" >"$json"
sep=""
survivors=0
for m in "${mutants[@]}"; do
	name=$(basename "$m" .patch)
	expect=$(header "$m" Expect)
	equivalent=$(header "$m" Equivalent)
	say "$name"
	outcome=$(boot "$name" "$m")
	dir=$results/$name
	verdicts=()
	any=0
	for prog in "${PROGS[@]}"; do
		# A guest that died part way had run some programs to the end.
		if [ "$outcome" = ok ] || [ -f "$dir/$prog.rc" ]; then
			v=$(verdict "$dir" "$prog")
		else
			v=$outcome
		fi
		if [ "$v" = panic ] && [ "${expect%% *}" = panic ]; then
			v=killed
		fi
		[ "$v" != killed ] || any=1
		verdicts+=("$v")
	done
	if [ "${expect%% *}" = not-runnable ]; then
		[ "$outcome" = build-failed ] || outcome=not-runnable
	elif ((!any)) && [ "${equivalent%% *}" != yes ]; then
		survivors=$((survivors + 1))
	fi
	{
		printf '%-38s %-13s' "$name" "$outcome"
		printf ' %-9.9s' "${verdicts[@]}"
		printf '\n'
	} >>"$table"
	printf '%s{"name": "%s", "outcome": "%s", "expect": "%s", "equivalent": "%s", "build_s": %s, "run_s": %s, "programs": {' \
		"$sep" "$name" "$outcome" "${expect%% *}" "${equivalent%% *}" \
		"$(cat "$dir/build_s" 2>/dev/null || echo null)" "$(cat "$dir/run_s" 2>/dev/null || echo null)" >>"$json"
	for i in "${!PROGS[@]}"; do
		printf '%s"%s": "%s"' "$([ "$i" = 0 ] || echo ', ')" "${PROGS[i]}" "${verdicts[i]}" >>"$json"
	done
	printf '}}\n' >>"$json"
	sep=", "
done
echo "]}" >>"$json"

# Put the lab kernel back to the tree's own content.
"$project/lab/kernel.sh" "$ksrc" "$build/lab/kernel" >/dev/null 2>"$results/restore.log" ||
	say "could not rebuild the pristine kernel, see $results/restore.log"

python3 "$project/lab/mutants-score.py" "$json" >>"$table"
cat "$table"
echo "# results: $results"
[ "$survivors" = 0 ]
