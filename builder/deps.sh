#!/usr/bin/env bash
# Installs the Debian packages the build and the QEMU tests use, when missing.
# usage: deps.sh [build|test|uki]
set -euo pipefail
build=(busybox-static ca-certificates kmod)
test=(cpio qemu-system-x86 squashfs-tools e2fsprogs dnsmasq-base nginx-light iproute2 busybox-static debootstrap kea-dhcp4-server nbd-server xorriso ipxe-qemu pxelinux syslinux-common ovmf shim-signed grub-efi-amd64-signed grub-efi-amd64-bin ipxe zstd kea-dhcp6-server radvd sbsigntool systemd-boot-efi openssl swtpm minisign)
uki=(systemd-boot-efi sbsigntool)
want=("${build[@]}")
[[ ${1:-build} == test ]] && want+=("${test[@]}")
[[ ${1:-build} == uki ]] && want=("${uki[@]}")
missing=()
for p in "${want[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0
if [[ $(id -u) != 0 ]]; then
	echo "deps: missing Debian packages: ${missing[*]} (run as root or: sudo apt-get install ${missing[*]})" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
