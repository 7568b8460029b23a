#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Test scripts/intree.sh (make intree / uninstall-intree) on copies of a
# kernel tree's files, never on the tree itself:
#
# 1. A copy of tools/testing/selftests/kvm and the few files its Makefile
#    reads (about a second): install, what the tree's make then knows
#    (kselftest's emit_tests, -lnuma on our links only), refusals, exact
#    uninstall (diff -r against a pristine copy), the patch form.
# 2. A real build (30-60 s; SNP_RMP_INTREE_BUILD=0 skips it): tools/ of
#    the tree plus its uapi headers, `make -C tools/testing/selftests
#    TARGETS=kvm`, kselftest_install.sh, run_kselftest.sh -l and -t for
#    each of our programs (quick mode), then uninstall and make clean
#    leave tools/ as it was.
#
# KSRC picks the tree (default: the project's linux-source-6.12); run it
# again with KSRC=<a mainline tree> for the other layout.  BUILD, when it
# was built for KSRC, lends its uapi headers.  Prints "ok N what" /
# "not ok N what" per check.
#
# The predicates below run through check(), which shellcheck cannot follow:
# shellcheck disable=SC2317

set -u

top=$(cd -- "$(dirname -- "$0")/.." && pwd -P)
readonly INTREE=$top/scripts/intree.sh
KSRC=${KSRC:-$top/.cache/src/linux-source-6.12}
BUILD=${BUILD:-$top/build}
# shellcheck source=lib.sh
. "$top/tests/lib.sh"
RC=0
ARCH=""
MK=""
PROGS=()

rc_is() {
	[[ $RC == "$1" ]] || why "exit code $RC, wanted $1: $(tail -n 3 "$T/err" 2>/dev/null)"
}

err_has() {
	grep -qF -- "$1" "$T/err" || why "'$1' not on stderr: $(head -c 300 "$T/err")"
}

refused() {
	rc_is 1 && err_has "$1"
}

written() {
	rc_is 0 && { [[ -s $1 ]] || why "$1 is empty"; }
}

# succeeded_and COMMAND...: the last step exited 0 and COMMAND holds.
succeeded_and() {
	rc_is 0 && "$@"
}

# succeeded LOG: the last step exited 0, else show the end of its LOG.
succeeded() {
	((RC == 0)) || { echo "# exit code $RC"; tail -n 5 "$1" | sed 's/^/# /'; false; }
}

# intree ARGS...: run the script; stderr in $T/err, exit code in RC.
intree() {
	RC=0
	"$INTREE" "$@" >"$T/out" 2>"$T/err" || RC=$?
}

# same A B: folders A and B hold the same files with the same contents
# (symbolic links compared as links: tools/ has some into the rest of the
# tree).
same() {
	diff -r --no-dereference -- "$1" "$2" >"$T/diff" 2>&1 || why "differs: $(head -n 5 "$T/diff" | tr '\n' ' ')"
}

# ---- a copy of the kvm folder -------------------------------------------

# mini DEST: the kvm folder of KSRC and what its Makefile includes.
mini() {
	local d=$1 sel=tools/testing/selftests

	mkdir -p "$d/$sel" "$d/tools/build" "$d/scripts"
	cp -a "$KSRC/$sel/kvm" "$d/$sel/"
	cp -a "$KSRC/$sel/lib.mk" "$d/$sel/"
	cp -a "$KSRC/tools/build/Build.include" "$d/tools/build/"
	cp -a "$KSRC/scripts/subarch.include" "$d/scripts/"
	# Mainline's kvm links the cgroup helpers, which use clone3's header.
	if [[ -d $KSRC/$sel/cgroup/lib ]]; then
		mkdir -p "$d/$sel/cgroup"
		cp -a "$KSRC/$sel/cgroup/lib" "$d/$sel/cgroup/"
		cp -a "$KSRC/$sel/clone3" "$d/$sel/"
	fi
}

kvm_of() {
	printf '%s/tools/testing/selftests/kvm' "$1"
}

layout() {
	if [[ -f $(kvm_of "$KSRC")/Makefile.kvm ]]; then
		ARCH=x86 MK=Makefile.kvm
	else
		ARCH=x86_64 MK=Makefile
	fi
	local f

	for f in "$top"/kvm/x86_64/*.c; do
		f=${f##*/}
		PROGS+=("${f%.c}")
	done
}

installed_files() {
	local kvm

	kvm=$(kvm_of "$1")
	[[ -f $kvm/$ARCH/snp_thp_smoke_test.c ]] || why "no $ARCH/snp_thp_smoke_test.c" || return 1
	[[ -f $kvm/lib/$ARCH/rmpt_thp_util.c ]] || why "no lib/$ARCH/rmpt_thp_util.c" || return 1
	[[ -f $kvm/include/$ARCH/snp_util.h ]] || why "no include/$ARCH/snp_util.h"
}

config_merged() {
	local kvm

	kvm=$(kvm_of "$1")
	[[ $(grep -c '^CONFIG_KVM_AMD_SEV=y$' "$kvm/config") == 1 ]] || why "CONFIG_KVM_AMD_SEV=y not there once" || return 1
	[[ $(grep -c '^CONFIG_KVM=y$' "$kvm/config") == 1 ]] || why "CONFIG_KVM=y duplicated"
}

# The tree's own make lists our programs the way kselftest_install does.
emitted() {
	local p

	make -s --no-print-directory -C "$(kvm_of "$1")" OUTPUT="$T/o" COLLECTION=kvm \
		emit_tests >"$T/emit" 2>"$T/emit.err" || why "emit_tests: $(head -n 3 "$T/emit.err")" || return 1
	for p in "${PROGS[@]}"; do
		grep -qx "kvm:$p" "$T/emit" || why "emit_tests lacks kvm:$p" || return 1
	done
}

# -lnuma on the link of our programs, and only there.
numa_for_ours_only() {
	local kvm

	kvm=$(kvm_of "$1")
	make -n -C "$kvm" OUTPUT="$T/o" "$T/o/$ARCH/snp_thp_smoke_test" "$T/o/$ARCH/cpuid_test" \
		>"$T/dry" 2>&1 || why "make -n: $(tail -n 3 "$T/dry")" || return 1
	grep -E -- "-o $T/o/$ARCH/snp_thp_smoke_test\$" "$T/dry" | grep -q -- '-lnuma' ||
		why "no -lnuma linking snp_thp_smoke_test" || return 1
	grep -E -- "rmpt_thp_util\.o .*-o $T/o/$ARCH/snp_thp_smoke_test\$" "$T/dry" >/dev/null ||
		why "our lib objects are not linked into snp_thp_smoke_test" || return 1
	! grep -E -- "-o $T/o/$ARCH/cpuid_test\$" "$T/dry" | grep -qE -- '-lnuma|rmpt_' ||
		why "cpuid_test gets -lnuma or our objects"
}

check_install_uninstall() {
	local m=$T/m p=$T/pristine

	mini "$m"
	cp -a "$m" "$p"
	intree install "$m"
	check "install: exit 0" rc_is 0
	check "install: programs, lib (rmpt_*) and headers in the $ARCH layout" installed_files "$m"
	check "install: config gains our options once, keeps its own" config_merged "$m"
	check "the tree's emit_tests lists kvm:<each program>" emitted "$m"
	check "-lnuma and our objects go into our links only" numa_for_ours_only "$m"
	intree install "$m"
	check "a second install is refused" refused "already installed"
	intree uninstall "$m"
	check "uninstall: exit 0" rc_is 0
	check "uninstall: diff -r against the pristine copy is empty" same "$p" "$m"
}

check_refusals() {
	local m=$T/m p=$T/pristine kvm

	kvm=$(kvm_of "$m")
	echo "/* someone else's */" >"$kvm/include/$ARCH/snp_util.h"
	intree install "$m"
	check "a file of the same name in the tree: refused" refused "snp_util.h already exists"
	rm -f "$kvm/include/$ARCH/snp_util.h"
	check "...and nothing was changed" same "$p" "$m"

	SNP_RMP_CACHE=$T intree install "$m"
	check "a tree under the project's cache is refused" refused "provisioned tree"
	check "...and nothing was changed" same "$p" "$m"

	intree install "$m"
	echo "/* local change */" >>"$kvm/lib/$ARCH/rmpt_thp_util.c"
	intree uninstall "$m"
	check "uninstall keeps a file changed since install" refused "changed since install"
	intree uninstall -f "$m"
	check "uninstall -f drops it: exit 0" rc_is 0
	check "...and the tree is as it was" same "$p" "$m"
	intree uninstall "$m"
	check "uninstall with nothing installed: exit 1" refused "nothing to uninstall"
}

# The patch form gives the same tree as install, and reverts with -R.
check_patch() {
	local m=$T/m p=$T/pristine a=$T/applied

	intree patch "$m" "$T/snp.patch"
	check "patch: written" written "$T/snp.patch"
	cp -a "$p" "$a"
	(cd "$a" && patch -s -p1 <"$T/snp.patch") >"$T/err" 2>&1
	RC=$?
	check "patch -p1 applies it" rc_is 0
	intree install "$m"
	rm -f "$(kvm_of "$m")/.snp-rmp-intree"
	check "the patched tree equals the installed one" same "$m" "$a"
	(cd "$a" && patch -s -R -p1 <"$T/snp.patch") >"$T/err" 2>&1
	RC=$?
	check "patch -R -p1 reverts it exactly" succeeded_and same "$p" "$a"
	if command -v git >/dev/null; then
		RC=0
		(cd "$p" && git apply --check "$T/snp.patch") >"$T/err" 2>&1 || RC=$?
		check "git apply --check takes it" rc_is 0
	else
		skip "git apply --check takes it" "no git"
	fi
}

# ---- a real build -------------------------------------------------------

# uapi headers for KSRC: the project's build folder's, the tree's own, or
# generated here (make O=, KSRC is not written).
find_headers() {
	if [[ -f $BUILD/kbuild/usr/include/linux/kvm.h &&
	      $(cat "$BUILD/.ksrc" 2>/dev/null) == "$KSRC" ]]; then
		printf '%s' "$BUILD/kbuild/usr/include"
	elif [[ -f $KSRC/usr/include/linux/kvm.h ]]; then
		printf '%s' "$KSRC/usr/include"
	elif make -s -C "$KSRC" O="$T/kbuild" ARCH=x86 headers >"$T/headers.log" 2>&1; then
		printf '%s' "$T/kbuild/usr/include"
	fi
}

# tools/ of the tree, its uapi headers in usr/include as `make headers`
# leaves them, and what the selftests Makefile reads from scripts/.
real_tree() {
	local d=$1 hdr=$2

	mkdir -p "$d/scripts" "$d/usr"
	cp -a "$KSRC/tools" "$d/"
	cp -a "$KSRC/scripts/subarch.include" "$d/scripts/"
	cp -a "$hdr" "$d/usr/include"
}

built() {
	local p

	for p in "${PROGS[@]}"; do
		[[ -x $(kvm_of "$T/r")/$ARCH/$p ]] || why "no $ARCH/$p" || return 1
	done
}

listed() {
	local p

	(cd "$T/ksft" && ./run_kselftest.sh -l) >"$T/list" 2>&1 || why "run_kselftest.sh -l failed" || return 1
	for p in "${PROGS[@]}"; do
		grep -qx "kvm:$p" "$T/list" || why "run_kselftest.sh -l lacks kvm:$p" || return 1
	done
}

# run_ksft PROG: our program through the kselftest runner, quick mode.
run_ksft() {
	RC=0
	(cd "$T/ksft" && SNP_RMP_QUICK=1 ./run_kselftest.sh -t "kvm:$1") >"$T/ksft.out" 2>&1 || RC=$?
	sed 's/^/# /' "$T/ksft.out" | tail -n 5
}

ran_ok() {
	grep -qE "^ok 1 selftests: kvm: $1( # SKIP.*)?\$" "$T/ksft.out" ||
		why "$(grep -E "selftests: kvm: $1" "$T/ksft.out" | tail -n 1)"
}

check_real_build() {
	local r=$T/r hdr start p sel

	if [[ ${SNP_RMP_INTREE_BUILD:-1} == 0 ]]; then
		skip "real in-tree build" "SNP_RMP_INTREE_BUILD=0"
		return
	fi
	hdr=$(find_headers)
	if [[ -z $hdr ]]; then
		skip "real in-tree build" "no uapi headers for $KSRC: $(tail -n 1 "$T/headers.log")"
		return
	fi
	real_tree "$r" "$hdr"
	sel=$r/tools/testing/selftests
	intree install "$r"
	check "real tree: install" rc_is 0
	start=$SECONDS
	RC=0
	make -C "$sel" TARGETS=kvm -j"$(nproc)" >"$T/build.log" 2>&1 || RC=$?
	echo "# make -C tools/testing/selftests TARGETS=kvm: $((SECONDS - start)) s"
	check "make -C tools/testing/selftests TARGETS=kvm" succeeded "$T/build.log"
	check "...built our programs" built
	if ! command -v rsync >/dev/null; then
		skip "kselftest_install.sh and run_kselftest.sh" "no rsync, which kselftest's install uses"
		uninstall_and_compare "$r"
		return
	fi
	mkdir -p "$T/ksft"
	RC=0
	(cd "$sel" && MAKEFLAGS='-- TARGETS=kvm' ./kselftest_install.sh "$T/ksft") >"$T/install.log" 2>&1 || RC=$?
	check "kselftest_install.sh (TARGETS=kvm)" succeeded "$T/install.log"
	check "run_kselftest.sh -l lists kvm:<each program>" listed
	for p in "${PROGS[@]}"; do
		run_ksft "$p"
		check "run_kselftest.sh -t kvm:$p: ok or SKIP" ran_ok "$p"
	done
	uninstall_and_compare "$r"
}

uninstall_and_compare() {
	intree uninstall "$1"
	make -s -C "$1/tools/testing/selftests" TARGETS=kvm clean >/dev/null 2>&1
	check "uninstall + make clean: tools/ as in the tree" same "$KSRC/tools" "$1/tools"
}

main() {
	if [[ ! -f $(kvm_of "$KSRC")/lib/kvm_util.c ]]; then
		skip "in-tree install" "no kernel tree with kvm selftests at KSRC=$KSRC"
		exit 0
	fi
	KSRC=$(cd -- "$KSRC" && pwd -P)
	layout
	echo "# tree $KSRC: $MK, $ARCH/ layout"
	check_install_uninstall
	check_refusals
	check_patch
	check_real_build
	exit "$FAILED"
}

main "$@"
