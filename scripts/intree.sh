#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Put the suite into a kernel tree's tools/testing/selftests/kvm, so that
# `make -C tools/testing/selftests TARGETS=kvm` builds it and
# kselftest_install.sh / run_kselftest.sh know its programs; and take it
# out again, leaving the tree byte for byte as it was.
#
#   intree.sh install KSRC          copy the files in, edit the kvm
#                                   Makefile and config, keep a manifest
#   intree.sh uninstall [-f] KSRC   undo exactly what the manifest records
#   intree.sh patch KSRC [OUT]      the same change as a patch for
#                                   `git apply` / `patch -p1`; KSRC is
#                                   only read
#
# Both kvm layouts are handled: 6.12 (Makefile, x86_64/) and mainline
# (Makefile.kvm, x86/).  Programs go to <arch>/ and TEST_GEN_PROGS_<arch>,
# include/*.h and *.inc to include/<arch>/ (already on the -I path), the
# library to lib/<arch>/rmpt_<name>.c: the prefix keeps it apart from the
# framework's files.  The library stays out of LIBKVM, which the tree
# links into every kvm test, as numa_util would drag -lnuma into all of
# them: it is built with the tree's CFLAGS and linked, with -lnuma, into
# our programs only.  The config gains the options of our fragment that it
# lacks.  Every edit is one block between two marker lines, so uninstall
# only has to cut the blocks out; the manifest's checksums prove it did.
#
# Never run it on the trees under the project's .cache: the out-of-tree
# build reads their framework.  Copy a tree first.

set -eu
set -o pipefail
# Globs, and so the manifest and the Makefile lists, in byte order.
export LC_ALL=C
shopt -s nullglob

readonly BEGIN_MARK='# snp-rmp selftests: begin (added by the snp-rmp scripts/intree.sh; its uninstall removes it)'
readonly END_MARK='# snp-rmp selftests: end'
readonly MANIFEST_NAME=.snp-rmp-intree

project=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)

# Set by detect_layout: the kvm folder, its Makefile holding the test
# lists, the arch folder (x86_64 on 6.12, x86 on mainline), the make
# variable naming it, and the line where the tree merges its lists.
KVM="" MK="" ARCH="" VAR="" LAYOUT="" ANCHOR="" TMP=""

say() {
	printf 'intree: %s\n' "$*" >&2
}

die() {
	say "$@"
	exit 1
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

sha() {
	sha256sum <"$1" | cut -d ' ' -f 1
}

# "SOURCE DEST" pairs of what we install, DEST relative to the kvm folder.
file_pairs() {
	local f n

	for f in "$project"/kvm/x86_64/*.c "$project"/kvm/lib/*.c "$project"/kvm/include/*.{h,inc}; do
		f=${f#"$project"/}
		n=${f##*/}
		case $f in
		kvm/lib/*) printf '%s lib/%s/rmpt_%s\n' "$f" "$ARCH" "${n#rmpt_}" ;;
		kvm/x86_64/*) printf '%s %s/%s\n' "$f" "$ARCH" "$n" ;;
		*) printf '%s include/%s/%s\n' "$f" "$ARCH" "$n" ;;
		esac
	done
}

# Our programs as <arch>/<name>, one a line.
prog_dests() {
	file_pairs | sed -n 's/^kvm\/x86_64\/[^ ]* \(.*\)\.c$/\1/p'
}

detect_layout() {
	local ksrc=$1 d

	[[ -n $ksrc ]] || die "no kernel tree given: KSRC=/path/to/linux"
	[[ -d $ksrc ]] || die "no such folder: $ksrc"
	ksrc=$(cd -- "$ksrc" && pwd -P)
	KVM=$ksrc/tools/testing/selftests/kvm
	[[ -f $KVM/lib/kvm_util.c ]] || die "$ksrc has no tools/testing/selftests/kvm framework"
	if [[ -f $KVM/Makefile.kvm ]] && grep -q '^LIBKVM_x86 +=' "$KVM/Makefile.kvm"; then
		MK=Makefile.kvm ARCH=x86 VAR=ARCH LAYOUT=mainline
	elif grep -q '^LIBKVM_x86_64 +=' "$KVM/Makefile" 2>/dev/null; then
		MK=Makefile ARCH=x86_64 VAR=ARCH_DIR LAYOUT=6.12
	else
		die "$KVM: neither the 6.12 (LIBKVM_x86_64 in Makefile) nor the mainline (LIBKVM_x86 in Makefile.kvm) layout"
	fi
	for d in "$ARCH" "lib/$ARCH" "include/$ARCH" config; do
		[[ -e $KVM/$d ]] || die "$KVM has no $d ($LAYOUT layout)"
	done
	ANCHOR="TEST_PROGS += \$(TEST_PROGS_\$($VAR))"
	[[ $(grep -cxF -- "$ANCHOR" "$KVM/$MK") == 1 ]] ||
		die "$KVM/$MK: expected exactly one line '$ANCHOR'"
}

# edited_makefile IN OUT: our lists go before the anchor, where the tree
# merges its per-arch lists and before lib.mk turns TEST_GEN_PROGS into
# paths; our rules go last, when OUTPUT and LIBKVM_OBJS are known.  The
# target-specific values reach our programs' link only.
edited_makefile() {
	local progs lists

	progs=$(prog_dests | tr '\n' ' ')
	lists=$(printf '%s\n' "$BEGIN_MARK"
		prog_dests | sed "s/^/TEST_GEN_PROGS_$ARCH += /"
		file_pairs | sed -n 's/^kvm\/lib\/[^ ]* /SNP_RMP_LIB += /p'
		printf '%s' "$END_MARK")
	lists=$lists awk -v anchor="$ANCHOR" '$0 == anchor { print ENVIRON["lists"] } { print }' "$1" >"$2"
	cat >>"$2" <<EOF
$BEGIN_MARK
ifeq (\$($VAR),$ARCH)
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

# edited_config IN OUT: IN plus the CONFIG_ lines of our fragment whose
# option IN lacks (set or "is not set"); OUT = IN when there are none.
edited_config() {
	local add

	add=$(awk -F= 'FILENAME == ARGV[1] { sub(/^# /, ""); sub(/ is not set.*/, "="); have[$1] = 1; next }
		/^CONFIG_[A-Za-z0-9_]+=/ && !have[$1]' "$1" "$project/kvm/config")
	cp -- "$1" "$2"
	if [[ -n $add ]]; then
		# A file without a final newline would glue our marker to its last line.
		[[ ! -s $1 || -z $(tail -c 1 -- "$1") ]] || printf '\n' >>"$2"
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

check_free() {
	local src dest clash=0

	[[ ! -e $KVM/$MANIFEST_NAME ]] ||
		die "already installed in $KVM (see $MANIFEST_NAME): uninstall first"
	! grep -qxF -- "$BEGIN_MARK" "$KVM/$MK" "$KVM/config" ||
		die "$KVM holds snp-rmp marker lines but no manifest: restore $MK and config by hand"
	while read -r src dest; do
		if [[ -e $KVM/$dest ]]; then
			say "$KVM/$dest already exists"
			clash=1
		fi
	done < <(file_pairs)
	((clash == 0)) || die "refusing to overwrite files of the tree"
}

# apply_install STAGE: copy our files in, then write the staged edits over
# the tree's files in place (their mode, owner and links stay).  Checked
# step by step: set -e does not act inside an "if !".
apply_install() {
	local src dest f

	while read -r src dest; do
		install -m 0644 -- "$1/files/$dest" "$KVM/$dest" || return 1
	done < <(file_pairs)
	while read -r f _; do
		cat -- "$1/$f" >"$KVM/$f" || return 1
	done < <(sed -n 's/^edit //p' "$KVM/$MANIFEST_NAME")
}

install_tree() {
	local src dest f progs cache tree=${KVM%/tools/testing/selftests/kvm} stage=$TMP/stage

	# The provisioned trees are refused: the out-of-tree build uses them as is.
	if cache=$(cd -- "${SNP_RMP_CACHE:-$project/.cache}" 2>/dev/null && pwd -P) &&
	   [[ $tree/ == "$cache"/* ]]; then
		die "$tree is a provisioned tree under $cache, which the out-of-tree build reads: copy it (cp -a) and use the copy"
	fi
	check_free
	mkdir -p "$stage"
	edited_makefile "$KVM/$MK" "$stage/$MK"
	edited_config "$KVM/config" "$stage/config"
	{
		printf '# snp-rmp in-tree install; scripts/intree.sh uninstall reads this\n'
		printf 'layout %s\n' "$LAYOUT"
		for f in "$MK" config; do
			cmp -s "$KVM/$f" "$stage/$f" ||
				printf 'edit %s %s %s\n' "$f" "$(sha "$KVM/$f")" "$(sha "$stage/$f")"
		done
		# A snapshot of our files: what is hashed is what gets installed,
		# even while the project is being edited.
		while read -r src dest; do
			install -D -m 0644 -- "$project/$src" "$stage/files/$dest"
			printf 'file %s %s\n' "$dest" "$(sha "$stage/files/$dest")"
		done < <(file_pairs)
	} >"$stage/manifest"
	# The manifest goes in first, so a failure half way can be undone.
	cp -- "$stage/manifest" "$KVM/$MANIFEST_NAME"
	if ! apply_install "$stage"; then
		say "install failed half way: undoing it"
		uninstall_tree 1
		exit 1
	fi
	progs=$(prog_dests | tr '\n' ' ')
	say "installed into $KVM ($LAYOUT layout): ${progs//"$ARCH"\/}"
	say "build: make headers in the tree, then make -C ${KVM%/kvm} TARGETS=kvm"
}

# uninstall_tree FORCE: cut our blocks out, remove our files and what an
# in-place build made of them, then the manifest.  One of our files changed
# since install stops it unless FORCE, as removing it would lose that work;
# an edited Makefile or config is fine: only our blocks are cut out of it.
uninstall_tree() {
	local force=$1 kind path a base changed=0 stripped=$TMP/stripped

	[[ -f $KVM/$MANIFEST_NAME ]] || die "nothing to uninstall: no $KVM/$MANIFEST_NAME"
	grep -E '^(file|edit) ' "$KVM/$MANIFEST_NAME" >"$TMP/entries"
	while read -r kind path a _; do
		if [[ $kind != file ]]; then
			continue
		elif [[ ! -e $KVM/$path ]]; then
			say "already gone: $path"
		elif [[ $(sha "$KVM/$path") != "$a" ]]; then
			say "changed since install: $path"
			changed=1
		fi
	done <"$TMP/entries"
	((!changed || force)) ||
		die "not uninstalled: keep your changes elsewhere, or use -f to drop them"
	while read -r kind path a _; do
		base=$KVM/${path%.c}
		case $kind:$path in
		edit:*)
			strip_blocks "$KVM/$path" "$stripped"
			cat -- "$stripped" >"$KVM/$path"
			[[ $(sha "$KVM/$path") == "$a" ]] ||
				say "$path differs from before the install (edited since?)" ;;
		file:"$ARCH"/*.c)
			rm -f -- "$KVM/$path" "$base.o" "$base.d" "$base" ;;
		file:*.c)
			rm -f -- "$KVM/$path" "$base.o" "$base.d" ;;
		file:*)
			rm -f -- "$KVM/$path" ;;
		esac
	done <"$TMP/entries"
	rm -f -- "$KVM/$MANIFEST_NAME"
	say "uninstalled from $KVM"
}

# write_patch [OUT]: the same edits on a scratch copy of the files they
# touch, diffed.
write_patch() {
	local rel=tools/testing/selftests/kvm rc=0 src dest

	mkdir -p "$TMP/a/$rel" "$TMP/b/$rel"
	cp -- "$KVM/$MK" "$KVM/config" "$TMP/a/$rel/"
	edited_makefile "$KVM/$MK" "$TMP/b/$rel/$MK"
	edited_config "$KVM/config" "$TMP/b/$rel/config"
	while read -r src dest; do
		[[ ! -e $KVM/$dest ]] || die "$KVM/$dest already exists"
		install -D -m 0644 -- "$project/$src" "$TMP/b/$rel/$dest"
	done < <(file_pairs)
	(cd -- "$TMP" && diff -Naur a b) >"$TMP/patch" || rc=$?
	((rc == 1)) || die "diff failed ($rc)"
	if [[ -z $1 ]]; then
		cat -- "$TMP/patch"
	else
		cp -- "$TMP/patch" "$1"
		say "wrote $1 ($LAYOUT layout): apply with 'git apply' or 'patch -p1' in the tree, revert with -R"
	fi
}

main() {
	local cmd=${1:-} force=0

	(($#)) || usage
	shift
	if [[ $cmd == uninstall && ${1:-} == -f ]]; then
		force=1
		shift
	fi
	case $cmd:$# in
	install:1 | uninstall:1 | patch:1 | patch:2) ;;
	*) usage ;;
	esac
	TMP=$(mktemp -d "${TMPDIR:-/tmp}/snp-rmp-intree.XXXXXX")
	trap 'rm -rf -- "$TMP"' EXIT
	detect_layout "$1"
	case $cmd in
	install) install_tree ;;
	uninstall) uninstall_tree "$force" ;;
	patch) write_patch "${2:-}" ;;
	esac
}

main "$@"
