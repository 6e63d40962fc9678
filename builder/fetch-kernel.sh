#!/usr/bin/env bash
# Fetches Debian's current linux-image-amd64 kernel without installing it:
# apt-get download + dpkg -x, then depmod so the builder has modules.dep,
# modules.alias and modules.softdep (the .deb ships none: dpkg's postinst
# makes them on a real install).
#
# usage: fetch-kernel.sh OUTDIR [PACKAGE]
#   OUTDIR/vmlinuz, OUTDIR/lib/modules/<kver>/, OUTDIR/kver
# The .deb is cached in $STREAMROOT_CACHE/debs (default /var/cache/streamroot).
set -euo pipefail
out=${1:?usage: fetch-kernel.sh OUTDIR [PACKAGE]}
meta=${2:-linux-image-amd64}
cache=${STREAMROOT_CACHE:-/var/cache/streamroot}/debs
mkdir -p "$cache"

pkg=$meta
# linux-image-amd64 is a metapackage: follow it to the versioned image package.
if [[ $meta == linux-image-amd64 ]]; then
	pkg=$(apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
	if [[ -z $pkg ]]; then
		apt-get update -qq
		pkg=$(apt-cache depends "$meta" | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
	fi
fi
[[ -n $pkg ]] || { echo "fetch-kernel: cannot resolve $meta to a kernel package" >&2; exit 1; }
ver=$(apt-cache policy "$pkg" | awk '/Candidate:/ {print $2}')
deb=$(ls "$cache/${pkg}_${ver//:/%3a}_"*.deb 2>/dev/null | head -n1 || true)
if [[ -z $deb ]]; then
	echo "fetch-kernel: downloading $pkg $ver"
	# apt drops privileges to _apt for downloads: give it a directory it may write.
	tmp=$(mktemp -d) && chmod 0777 "$tmp"
	(cd "$tmp" && apt-get download -q "$pkg=$ver")
	mv "$tmp"/*.deb "$cache"/ && rmdir "$tmp"
	deb=$(ls "$cache/${pkg}_${ver//:/%3a}_"*.deb | head -n1)
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
dpkg -x "$deb" "$stage"
kver=$(ls "$stage/lib/modules" | head -n1)
[[ -f $stage/boot/vmlinuz-$kver ]] || { echo "fetch-kernel: no vmlinuz-$kver in $deb" >&2; exit 1; }
depmod -b "$stage" "$kver"

rm -rf "$out"
mkdir -p "$out/lib/modules"
cp "$stage/boot/vmlinuz-$kver" "$out/vmlinuz"
cp "$stage/boot/config-$kver" "$out/config"
mv "$stage/lib/modules/$kver" "$out/lib/modules/$kver"
echo "$kver" > "$out/kver"
echo "fetch-kernel: $pkg ($kver) in $out"
