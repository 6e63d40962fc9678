#!/usr/bin/env bash
# Installs the Debian packages `make demo` and `make qemu` need, when missing
# (builder/deps.sh installs the build's own: busybox-static ca-certificates
# kmod). Without root it names the missing packages and stops.
# usage: demo/deps.sh [GO]
set -euo pipefail
go=${1:-go}
want=(qemu-system-x86 squashfs-tools busybox-static)
missing=()
for p in "${want[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
	if [[ $(id -u) != 0 ]]; then
		echo "demo: missing Debian packages: ${missing[*]}" >&2
		echo "demo: install them (sudo apt-get install ${missing[*]}) or run make demo as root once; the demo itself needs no root" >&2
		exit 1
	fi
	echo "demo: installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ! command -v "$go" >/dev/null; then
	echo "demo: '$go' not found: streamroot needs Go 1.26 or later (https://go.dev/dl/; Debian 12's golang is too old); or make demo GO=/path/to/go" >&2
	exit 1
fi
