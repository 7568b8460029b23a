#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Build a lab kernel and print the path of its bzImage.
#
#   lab/kernel.sh [-p PATCH] KSRC OUT [FRAGMENT...]
#
# KSRC is never written.  OUT/src is a copy-on-write view of it (hard
# links; patch(1) replaces the files it changes) and OUT/obj its O= build
# folder, both kept, so a second build is incremental.  -p PATCH applies
# one patch (a mutant) to the view, after taking back the one applied
# before; without -p the view is put back to KSRC's content.
#
# The configuration is tinyconfig + kvm_guest.config + the suite's own
# `config` fragment + lab/lab.config + any FRAGMENT given (fault injection,
# say); it is redone only when a fragment changed.  ccache is used where
# it is installed, with the project as its base folder, so that another
# clone of the project hits the same cache entries.
#
# Exits 1 with a message if the patch does not apply, an option of the
# fragments did not make it into the configuration, or the build fails
# (its output: OUT/build.log).

set -eu
set -o pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

abspath() {
	echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
}

patch_file=""
while getopts ':p:' opt; do
	case $opt in
	p) [ -r "$OPTARG" ] || die "no patch $OPTARG"
	   patch_file=$(abspath "$OPTARG") ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 2 ] || usage
ksrc=$(cd "$1" && pwd -P) || die "no kernel tree at $1"
mkdir -p "$2"
out=$(cd "$2" && pwd)
shift 2
[ -f "$ksrc/kernel/configs/kvm_guest.config" ] ||
	die "$ksrc is not a kernel tree (no kernel/configs/kvm_guest.config)"
fragments=("$project/kvm/config" "$project/lab/lab.config")
for f in "$@"; do
	[ -r "$f" ] || die "no config fragment $f"
	fragments+=("$(abspath "$f")")
done
src=$out/src
obj=$out/obj

# The view: hard links to KSRC's files, made once.
if [ ! -f "$src/.lab-view" ] || [ "$(cat "$src/.lab-view")" != "$ksrc" ]; then
	say "linking a copy-on-write view of $ksrc into $src"
	rm -rf "$src" "$obj"
	cp -al "$ksrc" "$src.tmp" 2>/dev/null || {
		rm -rf "$src.tmp"
		say "no hard links across file systems: copying instead"
		cp -a "$ksrc" "$src.tmp"
	}
	echo "$ksrc" >"$src.tmp/.lab-view"
	mv "$src.tmp" "$src"
fi

# Take back the patch applied last, then apply the wanted one.
applied=$out/applied.patch
if [ -f "$applied" ] && ! cmp -s "$applied" "$patch_file"; then
	say "reverting $(head -n 1 "$applied.name")"
	patch -s -R -p1 -d "$src" --no-backup-if-mismatch <"$applied" ||
		die "could not revert $(cat "$applied.name"); remove $out to start over"
	rm -f "$applied" "$applied.name"
fi
if [ -n "$patch_file" ] && [ ! -f "$applied" ]; then
	patch -s -p1 -d "$src" --no-backup-if-mismatch --dry-run <"$patch_file" >/dev/null 2>&1 ||
		die "$patch_file does not apply to $ksrc"
	patch -s -p1 -d "$src" --no-backup-if-mismatch <"$patch_file"
	cp "$patch_file" "$applied"
	echo "$patch_file" >"$applied.name"
	say "applied $patch_file"
fi

jobs=$(($(nproc) + 1))
cc=gcc
if command -v ccache >/dev/null; then
	cc="ccache gcc"
	export CCACHE_BASEDIR=$project
fi
kmake=(make -C "$src" O="$obj" CC="$cc" HOSTCC="$cc" -j"$jobs")

# The fragments' checksum names the configuration they made.
want=$(cat "${fragments[@]}" | sha256sum | cut -c1-16)
if [ "$(cat "$obj/.lab-config" 2>/dev/null)" != "$want" ]; then
	say "configuring $obj from ${fragments[*]##*/}"
	mkdir -p "$obj"
	{
		"${kmake[@]}" tinyconfig
		"${kmake[@]}" kvm_guest.config
		(cd "$obj" && "$src/scripts/kconfig/merge_config.sh" -m -O "$obj" "$obj/.config" \
			"${fragments[@]}")
		"${kmake[@]}" olddefconfig
	} >"$out/config.log" 2>&1 || die "configuration failed, see $out/config.log"
	missing=$(grep -h '^CONFIG_[A-Z0-9_]*=[ym]' "${fragments[@]}" | sort -u |
		while read -r opt; do
			grep -qx "$opt" "$obj/.config" || echo "$opt"
		done)
	[ -z "$missing" ] ||
		die "the tree's Kconfig refused: $(echo "$missing" | tr '\n' ' ')(see $out/config.log)"
	echo "$want" >"$obj/.lab-config"
fi

start=$SECONDS
say "building $(awk '$2 == "=" && $1 ~ /^(VERSION|PATCHLEVEL|SUBLEVEL)$/ { v = v sep $3; sep = "." }
	END { print v }' "$src/Makefile") in $obj"
"${kmake[@]}" bzImage >"$out/build.log" 2>&1 ||
	die "build failed, last lines of $out/build.log:$(tail -n 15 "$out/build.log" | sed 's/^/\n  /')"
say "built in $((SECONDS - start)) s"
echo "$obj/arch/x86/boot/bzImage"
