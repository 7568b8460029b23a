#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Print the path of a kernel source tree whose tools/testing/selftests/kvm
# framework the suite builds against.  On first use the tree is provisioned
# from Debian's linux-source-* packages into the project's cache; progress
# goes to stderr, the path alone to stdout.
#
#   lts       linux-source-6.12 from the machine's own apt sources
#   mainline  the newest linux-source-* of Debian unstable, fetched with a
#             private apt state whose archive URI is taken from the
#             machine's own apt configuration
#   virtme-ng Debian unstable's virtme-ng (Architecture all), fetched the
#             same way and unpacked; prints the folder holding its
#             usr/bin/vng.  Its dependencies come from the machine's own
#             release (make deps).
#
# SNP_RMP_CACHE overrides the cache folder (default: <project>/.cache).

set -eu
set -o pipefail

LTS_PACKAGE=linux-source-6.12

say() {
	echo "ksrc: $*" >&2
}

die() {
	say "$@"
	exit 1
}

usage() {
	echo "usage: $0 [lts|mainline|virtme-ng]" >&2
	exit 2
}

project=$(cd "$(dirname "$0")/.." && pwd)
cache=${SNP_RMP_CACHE:-$project/.cache}

need_apt() {
	{ command -v apt-get && command -v dpkg-deb; } >/dev/null 2>&1 ||
		die "no apt-get/dpkg-deb here: not a Debian machine; set KSRC=/path/to/linux (6.12 or newer)"
	command -v xz >/dev/null 2>&1 || die "xz is missing: apt-get install xz-utils (or run 'make deps')"
}

# cached DIR: print DIR if it was provisioned completely, else fail.
cached() {
	[ -f "$1/.snp-rmp-complete" ] && echo "$1"
}

# unpack DEB: extract the source tarball inside a Debian linux-source package
# into $cache/src/<name>, atomically, and print that path.
unpack() {
	local deb=$1 name tmp

	name=$(dpkg-deb -f "$deb" Package)
	cached "$cache/src/$name" && return
	say "unpacking $(basename "$deb") into $cache/src/$name"
	mkdir -p "$cache/src"
	tmp=$(mktemp -d "$cache/src/.unpack.XXXXXX")
	# The package holds /usr/src/<name>.tar.xz; the tarball holds <name>/.
	dpkg-deb --fsys-tarfile "$deb" | tar -xO "./usr/src/$name.tar.xz" |
		xz -dc -T0 | tar -x -C "$tmp" ||
		{ rm -rf "$tmp"; die "could not unpack $deb"; }
	[ -d "$tmp/$name/tools/testing/selftests/kvm" ] ||
		{ rm -rf "$tmp"; die "$deb holds no tools/testing/selftests/kvm"; }
	touch "$tmp/$name/.snp-rmp-complete"
	rm -rf "${cache:?}/src/$name"
	mv "$tmp/$name" "$cache/src/$name"
	rmdir "$tmp"
	echo "$cache/src/$name"
}

# fetch PKG [APT_OPTIONS...]: download a package into the cache, print its path.
fetch() {
	local pkg=$1 deb

	shift
	mkdir -p "$cache/debs"
	deb=$(find "$cache/debs" -maxdepth 1 -name "${pkg}_*.deb" | sort -V | tail -n 1)
	if [ -z "$deb" ]; then
		say "downloading $pkg"
		(cd "$cache/debs" && apt-get -q "$@" download "$pkg" >&2) ||
			die "apt-get download $pkg failed (run 'apt-get update' first, or set KSRC=)"
		deb=$(find "$cache/debs" -maxdepth 1 -name "${pkg}_*.deb" | sort -V | tail -n 1)
	fi
	echo "$deb"
}

lts() {
	local deb

	cached "$cache/src/$LTS_PACKAGE" && return
	need_apt
	if ! apt-cache show "$LTS_PACKAGE" >/dev/null 2>&1; then
		say "$LTS_PACKAGE is not in the apt lists; running apt-get update"
		apt-get -q update >&2 || die "apt-get update failed"
	fi
	# Assigned first: a failure inside "$(...)" as an argument would not stop us.
	deb=$(fetch "$LTS_PACKAGE")
	unpack "$deb"
}

# UNSTABLE: apt options for a private state that reads Debian unstable from
# the main archive as this machine's apt configuration names it: the
# repository of a release without a suffix such as -security or -updates.
unstable_apt() {
	local state=$cache/apt-unstable uri signed=""
	local keyring=/usr/share/keyrings/debian-archive-keyring.gpg

	need_apt
	# shellcheck disable=SC2016 # apt's format fields, not shell expansions
	uri=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null |
		awk '$2 !~ /-/ { print $1; exit }')
	[ -n "$uri" ] || die "no Debian archive URI in this machine's apt configuration; set KSRC="
	[ ! -f "$keyring" ] || signed="[signed-by=$keyring] "
	mkdir -p "$state/lists/partial" "$state/cache/archives/partial"
	echo "deb $signed$uri unstable main" >"$state/sources.list"
	UNSTABLE=(-o "Dir::Etc::SourceList=$state/sources.list"
		  -o "Dir::Etc::SourceParts=$state/no-parts"
		  -o "Dir::State::Lists=$state/lists"
		  -o "Dir::Cache=$state/cache")
	say "reading Debian unstable's package list"
	apt-get -q "${UNSTABLE[@]}" update >&2 || die "apt-get update of unstable failed"
}

mainline() {
	local link=$cache/src/mainline pkg deb src

	if [ -f "$link/.snp-rmp-complete" ]; then
		readlink -f "$link"
		return
	fi
	unstable_apt
	pkg=$(apt-cache "${UNSTABLE[@]}" pkgnames linux-source- |
		grep -E '^linux-source-[0-9]+\.[0-9]+$' | sort -V | tail -n 1)
	[ -n "$pkg" ] || die "Debian unstable lists no linux-source-X.Y package"
	deb=$(fetch "$pkg" "${UNSTABLE[@]}")
	src=$(unpack "$deb")
	ln -sfn "${src##*/}" "$link"
	readlink -f "$link"
}

virtme_ng() {
	local dir=$cache/virtme-ng deb tmp

	cached "$dir" && return
	unstable_apt
	deb=$(fetch virtme-ng "${UNSTABLE[@]}")
	say "unpacking $(basename "$deb") into $dir"
	tmp=$(mktemp -d "$cache/.vng.XXXXXX")
	dpkg-deb -x "$deb" "$tmp" || { rm -rf "$tmp"; die "could not unpack $deb"; }
	[ -f "$tmp/usr/bin/vng" ] || { rm -rf "$tmp"; die "$deb holds no usr/bin/vng"; }
	touch "$tmp/.snp-rmp-complete"
	rm -rf "$dir"
	mv "$tmp" "$dir"
	echo "$dir"
}

[ $# -le 1 ] || usage
case "${1:-lts}" in
lts) lts ;;
mainline) mainline ;;
virtme-ng) virtme_ng ;;
*) usage ;;
esac
