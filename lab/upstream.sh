#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Build upstream's own selftests for the kernel code the suite exercises,
# out of tree, and print "NAME PATH" for each program:
#
#   lab/upstream.sh KSRC BUILD
#
#   kvm  guest_memfd_test, private_mem_conversions_test
#   mm   split_huge_page_test, khugepaged
#
# into BUILD/upstream/kvm and BUILD/upstream/mm, with the tree's own
# Makefiles (6.12 x86_64/ or mainline x86/ layout), naming only these
# targets so that nothing else (liburing, libcap, 32-bit pkeys ...) is
# needed.  KSRC is never written.  The uapi headers are BUILD's, those
# `make O=BUILD KSRC=KSRC` generated (made here if missing).
#
# Exits 1 naming the programs that could not be built; the make output
# of the last run is kept in BUILD/upstream/build.log.  A second run
# rebuilds nothing.

set -eu
set -o pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -eq 2 ] || usage
# Symlinks resolved, so that a tree is one path whatever names it.
ksrc=$(cd "$1" 2>/dev/null && pwd -P) || die "no kernel tree at $1"
mkdir -p "$2"
build=$(cd "$2" && pwd)
st=$ksrc/tools/testing/selftests
for f in kvm/guest_memfd_test.c mm/khugepaged.c mm/split_huge_page_test.c; do
	[ -f "$st/$f" ] ||
		die "$ksrc has no tools/testing/selftests/$f (a 6.12 or newer tree is needed)"
done

# The tree's x86 folder: x86_64/ up to 6.12, x86/ since 6.16.
arch_dir=""
for d in x86 x86_64; do
	[ -f "$st/kvm/$d/private_mem_conversions_test.c" ] && arch_dir=$d
done
[ -n "$arch_dir" ] || die "$st/kvm has no x86{,_64}/private_mem_conversions_test.c"

# One build folder serves one tree, as in the Makefile: headers of
# another tree would compile, and test the wrong uapi.
built_for=$(cat "$build/.ksrc" 2>/dev/null) || built_for=""
[ ! -d "$built_for" ] || built_for=$(cd "$built_for" && pwd -P)
[ -z "$built_for" ] || [ "$built_for" = "$ksrc" ] ||
	die "$build was built against $built_for, not $ksrc: pick another BUILD"

out=$build/upstream
log=$out/build.log
mkdir -p "$out/kvm" "$out/mm"
: >"$log"

# uapi headers: where the Makefile keeps them.  A tree configured in place
# refuses O=, so it must have its own usr/include.
if [ -e "$ksrc/.config" ] || [ -d "$ksrc/include/config" ]; then
	hdr=$ksrc/usr/include
	[ -f "$hdr/linux/kvm.h" ] ||
		die "$ksrc is configured in place and has no usr/include: run 'make headers' in it"
else
	hdr=$build/kbuild/usr/include
	if [ ! -f "$hdr/linux/kvm.h" ]; then
		echo "lab/upstream.sh: generating uapi headers into $hdr" >&2
		make -s -C "$ksrc" O="$build/kbuild" ARCH=x86 headers >>"$log" 2>&1 ||
			die "could not generate the uapi headers, see $log"
		echo "$ksrc" >"$build/.ksrc"
	fi
fi

# At most two jobs: the machines this runs on have few cores to share.
kmake=(make -j2 KHDR_INCLUDES="-isystem $hdr")

# kvm: OUTPUT= takes the objects out of the tree and TMPOUT= the scratch
# files of its compiler probes (try-run), one folder per probe's shell.
kvm_make=("${kmake[@]}" -C "$st/kvm" OUTPUT="$out/kvm"
	  "TMPOUT=$out/kvm/.tmp_\$\$\$\$")

# mm: its Makefile includes local_config.mk, which check_config.sh would
# write into the tree, and the generic rule wants local_config.h beside
# the sources.  Both only record whether liburing is there, and neither
# program uses it: -I finds our own local_config.mk (make searches -I
# folders for an include missing from the current one), and LOCAL_HDRS=
# (a command line variable wins over the Makefile's +=) keeps of
# upstream's list the two headers these programs include.
[ -f "$out/mm/local_config.mk" ] ||
	printf '%s\n' '# lab/upstream.sh: liburing unused by the programs built here' \
		'IOURING_EXTRA_LIBS =' >"$out/mm/local_config.mk"
mm_make=("${kmake[@]}" -C "$st/mm" OUTPUT="$out/mm" -I "$out/mm"
	 LOCAL_HDRS="$st/kselftest_harness.h $st/kselftest.h")

# 6.12.y's khugepaged.c returns KSFT_SKIP but includes no kselftest.h
# (mainline's vm_util.h brings it in), so the tree's own build fails:
# force the include in, for that tree shape only.
khugepaged_fix=()
if grep -q KSFT_SKIP "$st/mm/khugepaged.c" &&
   ! grep -q 'kselftest\.h' "$st/mm/khugepaged.c" "$st/mm/vm_util.h"; then
	khugepaged_fix=(EXTRA_CFLAGS="-include $st/kselftest.h")
	echo "lab/upstream.sh: khugepaged.c lacks kselftest.h: built with -include" >&2
fi

progs=(
	"guest_memfd_test kvm/guest_memfd_test"
	"private_mem_conversions_test kvm/$arch_dir/private_mem_conversions_test"
	"split_huge_page_test mm/split_huge_page_test"
	"khugepaged mm/khugepaged"
)

# One make per program, so that a failure names its program; the
# objects they share are built by the first and found by the next.
start=$SECONDS
failed=()
for p in "${progs[@]}"; do
	name=${p%% *}
	path=$out/${p#* }
	case $p in
	*" kvm/"*) mk=("${kvm_make[@]}") ;;
	khugepaged*) mk=("${mm_make[@]}" "${khugepaged_fix[@]}") ;;
	*) mk=("${mm_make[@]}") ;;
	esac
	first=$(($(wc -l <"$log") + 1))
	{ printf '### %s:' "$name"; printf ' %q' "${mk[@]}" "$path"; echo; } >>"$log"
	# Build, then settle: 7.2's libcgroup object depends on its folder,
	# which objects finished after it (-j2) make newer, so the next run
	# would rebuild it; a second make now keeps that run empty.
	if "${mk[@]}" "$path" >>"$log" 2>&1 &&
	   { "${mk[@]}" -q "$path" >/dev/null 2>&1 || "${mk[@]}" "$path" >>"$log" 2>&1; } &&
	   [ -x "$path" ]; then
		echo "$name $path"
	else
		failed+=("$name")
		# Its first errors, from its own part of the log.
		echo "lab/upstream.sh: $name failed:" >&2
		sed -n "$first,\$p" "$log" | grep -m 4 -E 'error|Error|\*\*\*' |
			sed 's/^/  /' >&2 || true
	fi
done

[ ${#failed[@]} -eq 0 ] ||
	die "could not build ${failed[*]} from $ksrc (make output: $log)"
echo "lab/upstream.sh: ${#progs[@]} programs of $ksrc ready in $((SECONDS - start)) s" >&2
