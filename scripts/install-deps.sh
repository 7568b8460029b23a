#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Install the Debian packages that building and testing the suite need:
# the compiler and make, libnuma, what provisioning a kernel tree uses
# (apt, dpkg-deb, xz), perl for generating its uapi headers, python3 for
# the kernel's KTAP parser and the gate, shellcheck for our shell, rsync
# for kselftest_install.sh in the in-tree test.  The lab (make vmtest)
# adds what building a kernel needs (flex, bison, bc, libelf-dev, ccache),
# QEMU, and the dependencies of Debian's virtme-ng, which scripts/ksrc.sh
# fetches from unstable.  Only missing packages are installed; nothing is
# done when all are present.

set -eu

PACKAGES=(gcc make libc6-dev libnuma-dev xz-utils python3 perl shellcheck procps util-linux rsync
	  flex bison bc libelf-dev ccache qemu-system-x86
	  busybox-static file iproute2 kbd kmod util-linux-extra python3-argcomplete python3-requests)

missing=()
for pkg in "${PACKAGES[@]}"; do
	dpkg-query -W -f '${Status}\n' "$pkg" 2>/dev/null | grep -q '^install ok installed$' ||
		missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all present (${PACKAGES[*]})"
	exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
	echo "deps: not a Debian machine; install the equivalents of: ${missing[*]}" >&2
	exit 1
fi
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing ${missing[*]}; run as root: apt-get install ${missing[*]}" >&2
	exit 1
fi

echo "deps: installing ${missing[*]}"
apt-get -q update
DEBIAN_FRONTEND=noninteractive apt-get -q install -y --no-install-recommends "${missing[@]}"
