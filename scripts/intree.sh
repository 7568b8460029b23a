#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Put the suite into a kernel tree's tools/testing/selftests/kvm, so that
# `make -C tools/testing/selftests TARGETS=kvm` builds it and
# kselftest_install.sh / run_kselftest.sh know its programs; and take it
# out again, leaving the tree byte for byte as it was.
#
#   intree.sh install KSRC      copy the files in, edit the kvm Makefile
#                               and config, record it all in a manifest
#   intree.sh uninstall KSRC    undo exactly what the manifest records
#   intree.sh patch KSRC [OUT]  write the same change as a patch for
#                               `git apply` / `patch -p1` (to OUT or
#                               stdout); KSRC is only read
#
# Both kvm layouts are handled: 6.12 (Makefile, x86_64/, lib/x86_64/,
# include/x86_64/, TEST_GEN_PROGS_x86_64) and mainline (Makefile.kvm,
# x86/, lib/x86/, include/x86/, TEST_GEN_PROGS_x86).
#
# Where things go, and why:
# - x86_64/*.c   -> <arch>/ and TEST_GEN_PROGS_<arch>: built, installed
#   and listed as kvm:<name> like any kvm test.
# - include/*.h  -> include/<arch>/, already on the tree's -I path.
# - lib/*.c      -> lib/<arch>/rmpt_<name>.c.  The prefix keeps them apart
#   from the framework's files of today and tomorrow.  They are not added
#   to LIBKVM: the tree links LIBKVM into every kvm test, and numa_util
#   would then drag -lnuma into all of them.  They are compiled with the
#   tree's own CFLAGS and linked, with -lnuma, into our programs only.
# - config: the options of our config fragment that the tree's lacks.
# Every edit is one block between two marker lines, so uninstall only
# has to cut the blocks out; the manifest's checksums prove it did.
#
# Never run it on the trees under the project's .cache: the out-of-tree
# build reads their framework.  Copy a tree first.

set -eu
set -o pipefail

readonly BEGIN_MARK='# snp-rmp selftests: begin (added by the snp-rmp scripts/intree.sh; its uninstall removes it)'
readonly END_MARK='# snp-rmp selftests: end'
readonly MANIFEST_NAME=.snp-rmp-intree

project=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
readonly project

# Set by detect_layout().
KVM=""		# the tree's tools/testing/selftests/kvm
MK=""		# its Makefile holding the test lists
ARCH=""		# x86_64 (6.12) or x86 (mainline): folder and list suffix
ARCH_COND=""	# the make condition true when building for that arch
LAYOUT=""
LAYOUT_VAR=""	# the make variable naming the arch folder
ANCHOR=""	# the line our lists go before: where the tree merges its lists
TMP=""

die() {
	printf 'intree: %s\n' "$*" >&2
	exit 1
}

say() {
	printf 'intree: %s\n' "$*" >&2
}

usage() {
	cat >&2 <<EOF
usage: ${0##*/} install KSRC
       ${0##*/} uninstall [-f] KSRC
       ${0##*/} patch KSRC [OUT]
  install    put the suite into KSRC/tools/testing/selftests/kvm
  uninstall  take it out again; -f also drops files changed since install
  patch      write the change as a patch for 'git apply' or 'patch -p1'
EOF
	exit 2
}

cleanup() {
	if [[ -n $TMP ]]; then
		rm -rf -- "$TMP"
	fi
}

sha() {
	sha256sum <"$1" | cut -d ' ' -f 1
}

# ---- what we install ----------------------------------------------------

prog_names() {
	local f

	for f in "$project"/x86_64/*.c; do
		[[ -f $f ]] || continue
		f=${f##*/}
		printf '%s\n' "${f%.c}"
	done | LC_ALL=C sort
}

lib_names() {
	local f

	for f in "$project"/lib/*.c; do
		[[ -f $f ]] || continue
		f=${f##*/}
		printf '%s\n' "${f%.c}"
	done | LC_ALL=C sort
}

header_names() {
	local f

	for f in "$project"/include/*.h; do
		[[ -f $f ]] || continue
		printf '%s\n' "${f##*/}"
	done | LC_ALL=C sort
}

# The tree-relative name of lib file $1 (without .c).
lib_dest() {
	printf 'lib/%s/rmpt_%s.c' "$ARCH" "${1#rmpt_}"
}

# "SOURCE DEST" pairs, DEST relative to the kvm folder.
file_pairs() {
	local n

	while IFS= read -r n; do
		printf 'x86_64/%s.c %s/%s.c\n' "$n" "$ARCH" "$n"
	done < <(prog_names)
	while IFS= read -r n; do
		printf 'lib/%s.c %s\n' "$n" "$(lib_dest "$n")"
	done < <(lib_names)
	while IFS= read -r n; do
		printf 'include/%s include/%s/%s\n' "$n" "$ARCH" "$n"
	done < <(header_names)
}

# ---- the tree -----------------------------------------------------------

# Refuse the provisioned trees: the out-of-tree build uses them as is.
refuse_cache_tree() {
	local cache

	cache=$(cd -- "${SNP_RMP_CACHE:-$project/.cache}" 2>/dev/null && pwd -P) || return 0
	case $1/ in
	"$cache"/*)
		die "$1 is a provisioned tree under $cache, which the out-of-tree build reads: copy it (cp -a) and use the copy" ;;
	esac
}

detect_layout() {
	local ksrc=$1 d

	[[ -n $ksrc ]] || die "no kernel tree given: KSRC=/path/to/linux"
	[[ -d $ksrc ]] || die "no such folder: $ksrc"
	ksrc=$(cd -- "$ksrc" && pwd -P)
	KVM=$ksrc/tools/testing/selftests/kvm
	[[ -f $KVM/lib/kvm_util.c ]] || die "$ksrc has no tools/testing/selftests/kvm framework"
	# shellcheck disable=SC2016 # ARCH_COND is make syntax, not shell
	if [[ -f $KVM/Makefile.kvm ]] && grep -q '^LIBKVM_x86 +=' "$KVM/Makefile.kvm"; then
		MK=Makefile.kvm ARCH=x86 ARCH_COND='ifeq ($(ARCH),x86)' LAYOUT=mainline
		LAYOUT_VAR=ARCH
	elif grep -q '^LIBKVM_x86_64 +=' "$KVM/Makefile" 2>/dev/null; then
		MK=Makefile ARCH=x86_64 ARCH_COND='ifeq ($(ARCH_DIR),x86_64)' LAYOUT=6.12
		LAYOUT_VAR=ARCH_DIR
	else
		die "$KVM: neither the 6.12 (LIBKVM_x86_64 in Makefile) nor the mainline (LIBKVM_x86 in Makefile.kvm) layout"
	fi
	for d in "$ARCH" "lib/$ARCH" "include/$ARCH"; do
		[[ -d $KVM/$d ]] || die "$KVM has no $d/ folder ($LAYOUT layout)"
	done
	[[ -f $KVM/config ]] || die "$KVM has no config file"
	ANCHOR="TEST_PROGS += \$(TEST_PROGS_\$(${LAYOUT_VAR}))"
	if [[ $(grep -cxF -- "$ANCHOR" "$KVM/$MK") != 1 ]]; then
		die "$KVM/$MK: expected exactly one line '$ANCHOR'"
	fi
}

# ---- the edits ----------------------------------------------------------

# The lists, read where the tree merges its per-arch lists: before lib.mk
# turns TEST_GEN_PROGS into paths.
lists_block() {
	local n

	printf '%s\n' "$BEGIN_MARK"
	while IFS= read -r n; do
		printf 'TEST_GEN_PROGS_%s += %s/%s\n' "$ARCH" "$ARCH" "$n"
	done < <(prog_names)
	while IFS= read -r n; do
		printf 'SNP_RMP_LIB += %s\n' "$(lib_dest "$n")"
	done < <(lib_names)
	printf '%s\n' "$END_MARK"
}

# The rules, read last, when OUTPUT and LIBKVM_OBJS are known.  The
# target-specific values reach our programs' link only.
rules_block() {
	local progs

	progs=$(prog_names | sed "s|^|$ARCH/|" | tr '\n' ' ')
	cat <<EOF
$BEGIN_MARK
$ARCH_COND
SNP_RMP_PROGS := \$(addprefix \$(OUTPUT)/,${progs% })
SNP_RMP_OBJS := \$(patsubst %.c,\$(OUTPUT)/%.o,\$(SNP_RMP_LIB))
\$(SNP_RMP_PROGS): \$(SNP_RMP_OBJS)
\$(SNP_RMP_PROGS): LIBKVM_OBJS += \$(SNP_RMP_OBJS)
\$(SNP_RMP_PROGS): LDLIBS += -lnuma
\$(SNP_RMP_OBJS): \$(OUTPUT)/%.o: %.c \$(GEN_HDRS)
	\$(CC) \$(CFLAGS) \$(CPPFLAGS) \$(TARGET_ARCH) -c \$< -o \$@
-include \$(SNP_RMP_OBJS:.o=.d)
EXTRA_CLEAN += \$(SNP_RMP_OBJS) \$(SNP_RMP_OBJS:.o=.d)
endif
$END_MARK
EOF
}

# edited_makefile IN OUT: the lists before the anchor, the rules at the end.
edited_makefile() {
	local lists=$TMP/lists

	lists_block >"$lists"
	awk -v anchor="$ANCHOR" -v lists="$lists" '
		$0 == anchor { while ((getline l < lists) > 0) print l }
		{ print }' "$1" >"$2"
	rules_block >>"$2"
}

# The CONFIG_ lines of our fragment whose option the tree's config lacks.
missing_config() {
	local line name

	while IFS= read -r line || [[ -n $line ]]; do
		[[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)= ]] || continue
		name=${BASH_REMATCH[1]}
		if ! grep -qE "^($name=|# $name is not set)" "$1"; then
			printf '%s\n' "$line"
		fi
	done <"$project/config"
}

# edited_config IN OUT: nothing to add leaves it untouched (OUT = IN).
edited_config() {
	local add

	add=$(missing_config "$1")
	cp -- "$1" "$2"
	if [[ -n $add ]]; then
		# A file without a final newline would glue our marker to its last line.
		if [[ -s $1 && -n $(tail -c 1 -- "$1") ]]; then
			printf '\n' >>"$2"
		fi
		printf '%s\n%s\n%s\n' "$BEGIN_MARK" "$add" "$END_MARK" >>"$2"
	fi
}

# strip_blocks IN OUT: IN without our marked blocks.
strip_blocks() {
	awk -v b="$BEGIN_MARK" -v e="$END_MARK" '
		$0 == b { skip = 1; next }
		skip && $0 == e { skip = 0; next }
		!skip' "$1" >"$2"
}

# ---- install ------------------------------------------------------------

check_free() {
	local src dest clash=0

	if [[ -e $KVM/$MANIFEST_NAME ]]; then
		die "already installed in $KVM (see $MANIFEST_NAME): uninstall first"
	fi
	if grep -qxF -- "$BEGIN_MARK" "$KVM/$MK" "$KVM/config"; then
		die "$KVM holds snp-rmp marker lines but no manifest: restore $MK and config by hand"
	fi
	while read -r src dest; do
		if [[ -e $KVM/$dest ]]; then
			say "$KVM/$dest already exists"
			clash=1
		fi
	done < <(file_pairs)
	((clash == 0)) || die "refusing to overwrite files of the tree"
}

# stage DIR: the edited Makefile and config into DIR.
stage_edits() {
	edited_makefile "$KVM/$MK" "$1/$MK"
	edited_config "$KVM/config" "$1/config"
}

# Write over the file in place: its mode, owner and links stay.
replace_content() {
	cat -- "$2" >"$1"
}

# stage_files STAGE: a snapshot of our files, so that what the manifest
# hashes is what gets installed even while the project is being edited.
stage_files() {
	local src dest

	while read -r src dest; do
		mkdir -p "$1/files/$(dirname -- "$dest")"
		cp -- "$project/$src" "$1/files/$dest"
	done < <(file_pairs)
}

# apply_install STAGE: copy our files in, then the staged edits over the
# tree's.  Checked step by step: set -e does not act inside an "if !".
apply_install() {
	local src dest f

	while read -r src dest; do
		install -m 0644 -- "$1/files/$dest" "$KVM/$dest" || return 1
	done < <(file_pairs)
	while read -r f _; do
		replace_content "$KVM/$f" "$1/$f" || return 1
	done < <(sed -n 's/^edit //p' "$KVM/$MANIFEST_NAME")
}

install_tree() {
	local src dest f stage=$TMP/stage

	detect_layout "$1"
	refuse_cache_tree "${KVM%/tools/testing/selftests/kvm}"
	check_free
	mkdir -p "$stage"
	stage_edits "$stage"
	stage_files "$stage"
	{
		printf '# snp-rmp in-tree install; scripts/intree.sh uninstall reads this\n'
		printf 'layout %s\n' "$LAYOUT"
		for f in "$MK" config; do
			if ! cmp -s "$KVM/$f" "$stage/$f"; then
				printf 'edit %s %s %s\n' "$f" "$(sha "$KVM/$f")" "$(sha "$stage/$f")"
			fi
		done
		while read -r src dest; do
			printf 'file %s %s\n' "$dest" "$(sha "$stage/files/$dest")"
		done < <(file_pairs)
	} >"$KVM/$MANIFEST_NAME"
	# The manifest comes first, so a failure half way can be undone.
	if ! apply_install "$stage"; then
		say "install failed half way: undoing it"
		uninstall_tree 1 "$1"
		exit 1
	fi
	say "installed into $KVM ($LAYOUT layout): $(prog_names | tr '\n' ' ')"
	say "build: make headers in the tree, then make -C ${KVM%/kvm} TARGETS=kvm"
}

# ---- uninstall ----------------------------------------------------------

# The build products of our sources, when the tree was built in place.
products_of() {
	local base=${1%.c}

	case $1 in
	*.c)
		printf '%s\n' "$base.o" "$base.d"
		if [[ $1 == "$ARCH"/* ]]; then
			printf '%s\n' "$base"
		fi ;;
	esac
}

# Say what changed since install; false if one of our files did, as
# removing it would lose that work.  An edited Makefile or config is fine:
# only our blocks are cut out of it.
check_manifest() {
	local kind path a b changed=0 stripped=$TMP/stripped

	while read -r kind path a b; do
		case $kind in
		file)
			if [[ ! -e $KVM/$path ]]; then
				say "already gone: $path"
			elif [[ $(sha "$KVM/$path") != "$a" ]]; then
				say "changed since install: $path"
				changed=1
			fi ;;
		edit)
			strip_blocks "$KVM/$path" "$stripped"
			if [[ $(sha "$KVM/$path") != "$b" && $(sha "$stripped") != "$a" ]]; then
				say "edited since install: $path (our blocks will be cut out, the rest kept)"
			fi ;;
		esac
	done < <(grep -E '^(file|edit) ' "$KVM/$MANIFEST_NAME")
	return "$changed"
}

# uninstall_tree FORCE KSRC: cut our blocks out, remove our files and what
# an in-place build made of them, then the manifest.
uninstall_tree() {
	local force=$1 kind path a b p stripped=$TMP/stripped

	if [[ -z $KVM ]]; then
		detect_layout "$2"
	fi
	[[ -f $KVM/$MANIFEST_NAME ]] || die "nothing to uninstall: no $KVM/$MANIFEST_NAME"
	if ! check_manifest && ((!force)); then
		die "not uninstalled: keep your changes elsewhere, or use -f to drop them"
	fi
	while read -r kind path a b; do
		case $kind in
		edit)
			strip_blocks "$KVM/$path" "$stripped"
			replace_content "$KVM/$path" "$stripped"
			if [[ $(sha "$KVM/$path") != "$a" ]]; then
				say "$path differs from before the install (edited since?)"
			fi ;;
		file)
			rm -f -- "$KVM/$path"
			while IFS= read -r p; do
				rm -f -- "${KVM:?}/$p"
			done < <(products_of "$path") ;;
		esac
	done < <(grep -E '^(file|edit) ' "$KVM/$MANIFEST_NAME")
	rm -f -- "${KVM:?}/$MANIFEST_NAME"
	say "uninstalled from $KVM"
}

# ---- patch --------------------------------------------------------------

# The same edits on a scratch copy of the files they touch, diffed.
write_patch() {
	local out=${2:-} rel=tools/testing/selftests/kvm real_kvm rc=0 src dest

	detect_layout "$1"
	real_kvm=$KVM
	mkdir -p "$TMP/a/$rel" "$TMP/b/$rel"
	cp -- "$real_kvm/$MK" "$real_kvm/config" "$TMP/a/$rel/"
	cp -- "$real_kvm/$MK" "$real_kvm/config" "$TMP/b/$rel/"
	KVM=$TMP/b/$rel
	mkdir -p "$TMP/stage-b"
	stage_edits "$TMP/stage-b"
	cp -- "$TMP/stage-b/$MK" "$TMP/stage-b/config" "$KVM/"
	while read -r src dest; do
		[[ ! -e $real_kvm/$dest ]] || die "$real_kvm/$dest already exists"
		mkdir -p "$(dirname -- "$KVM/$dest")"
		install -m 0644 -- "$project/$src" "$KVM/$dest"
	done < <(file_pairs)
	(cd -- "$TMP" && LC_ALL=C diff -Naur a b) >"$TMP/patch" || rc=$?
	((rc == 1)) || die "diff failed ($rc)"
	if [[ -n $out ]]; then
		cp -- "$TMP/patch" "$out"
		say "wrote $out ($LAYOUT layout): apply with 'git apply' or 'patch -p1' in the tree, revert with -R"
	else
		cat -- "$TMP/patch"
	fi
}

main() {
	local force=0 cmd=${1:-}

	(($#)) || usage
	shift
	TMP=$(mktemp -d "${TMPDIR:-/tmp}/snp-rmp-intree.XXXXXX")
	trap cleanup EXIT
	case $cmd in
	install)
		(($# == 1)) || usage
		install_tree "$1" ;;
	uninstall)
		if [[ ${1:-} == -f ]]; then
			force=1
			shift
		fi
		(($# == 1)) || usage
		uninstall_tree "$force" "$1" ;;
	patch)
		(($# == 1 || $# == 2)) || usage
		write_patch "$@" ;;
	-h|--help|help)
		usage ;;
	*)
		usage ;;
	esac
}

main "$@"
