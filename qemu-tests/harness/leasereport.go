package harness

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// LeaseReportScript is /usr/local/sbin/streamroot-lease-report in the
// one-lease fixture roots (debian-networkd, debian-nm, busybox-udhcpc). It
// runs in the booted root (a systemd oneshot service on the Debian roots,
// exec'd by /sbin/init on the busybox root), finds the boot link by the MAC
// in /run/initramfs/net.*.env, waits (bounded) until the root's own DHCP
// client holds the leases the initramfs held on it (DHCPv4, DHCPv6 or
// both), writes one
//
//	STREAMROOT-REPORT {json}
//
// line to the console (the REPORT INIT's fields plus the os_* ones, see
// LeaseReport) and powers the guest off. POSIX sh: it runs under dash and
// busybox ash. It must never run on the host: it powers off.
const LeaseReportScript = `#!/bin/sh
# streamroot qemu-tests LEASE REPORT (written by qemu-tests/harness).
# usage: streamroot-lease-report networkd|NetworkManager|udhcpc [max-wait-seconds]
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
os_dhcp=${1:?usage: streamroot-lease-report networkd|NetworkManager|udhcpc [max-wait-seconds]}
max_wait=${2:-120}
# lease.wait=<s> on the kernel command line shortens the wait (make bench:
# a root whose client never binds need not cost two minutes).
w=$(sed -n 's/.*lease\.wait=\([0-9][0-9]*\).*/\1/p' /proc/cmdline)
if [ -n "$w" ]; then max_wait=$w; fi
con=/dev/console
[ -c "$con" ] || con=/dev/stdout
say() { echo "lease-report: $*" > "$con"; }
b64() { base64 -w0; }
now() { cut -d. -f1 /proc/uptime; }
started=$(cut -d' ' -f1 /proc/uptime)
say "started as pid $$ (init: $(cat /proc/1/comm)); waiting at most ${max_wait}s for $os_dhcp"

# The initramfs's lease: IFACE MAC ADDRESS ... CLIENT_ID_HEX.
envfile=
for f in /run/initramfs/net.*.env; do
	if [ -f "$f" ]; then envfile=$f; break; fi
done
MAC= ADDRESS= CLIENT_ID_HEX= METHOD= IPV6_SERVER_DUID= IPV6_ADDRESS= IPV6_VALID_SECONDS= ACQUIRED_EPOCH=
if [ -n "$envfile" ]; then . "$envfile"; fi
# Another initramfs (dracut, for make bench) writes no env file: the boot
# NIC's MAC is then PXELinux's BOOTIF=01-aa-bb-... on the command line.
if [ -z "$MAC" ]; then
	MAC=$(sed -n 's/.*BOOTIF=01-\([0-9a-fA-F-]*\).*/\1/p' /proc/cmdline | tr 'A-F-' 'a-f:')
fi
# The root's name of the boot link, found by MAC; a bond's or bridge's
# ports carry its MAC too, so a link with a master is not it.
link=
if [ -n "$MAC" ]; then
	for d in /sys/class/net/*; do
		if [ "$(cat "$d/address" 2>/dev/null)" = "$MAC" ] && [ ! -e "$d/master" ]; then link=${d##*/}; fi
	done
fi
ifindex=
if [ -n "$link" ]; then ifindex=$(cat "/sys/class/net/$link/ifindex"); fi
say "boot link: mac ${MAC:-?} is ${link:-not found} (ifindex ${ifindex:-?}); the initramfs leased ${ADDRESS:-nothing}"

# Which leases to wait for: the initramfs's (METHOD=dhcp for DHCPv4, a
# DHCPv6 server's DUID for DHCPv6); without an env file, ip= on the
# command line (dhcp6 in it: DHCPv6; dhcp not followed by 6: DHCPv4).
want4=false want6=false
if [ -n "$envfile" ]; then
	if [ "$METHOD" = dhcp ]; then want4=true; fi
	if [ -n "$IPV6_SERVER_DUID" ]; then want6=true; fi
else
	for a in $(cat /proc/cmdline); do
		case $a in ip=*dhcp6*) want6=true ;; esac
		case $a in ip=*dhcp | ip=*dhcp,* | ip=*dhcp:*) want4=true ;; esac
	done
	if ! $want6; then want4=true; fi
fi
say "waiting for DHCPv4: $want4, DHCPv6: $want6"

bound4() {
	case $os_dhcp in
	networkd) [ -s "/run/systemd/netif/leases/$ifindex" ] ;;
	NetworkManager) nmcli -t -f DHCP4 device show "$link" 2>/dev/null | grep -q 'ip_address' ;;
	*) return 1 ;;
	esac
}
# renewed6: the initramfs's DHCPv6 address lives longer than the
# initramfs's lease left it (IPV6_VALID_SECONDS from ACQUIRED_EPOCH on,
# plus 15 s for the initramfs's own exchange): a later REPLY, the root's
# client's, refreshed its lifetime. networkd 252 keeps no DHCPv6 lease file
# and neither its status nor (below debug) its journal tells an address it
# renewed from one it found.
renewed6() {
	[ -n "$IPV6_ADDRESS" ] && [ -n "$IPV6_VALID_SECONDS" ] && [ -n "$ACQUIRED_EPOCH" ] || return 1
	lft=$(ip -6 -o addr show dev "$link" | awk -v a="$IPV6_ADDRESS/" 'index($4, a) == 1 {
		for (i = 5; i < NF; i++) if ($i == "valid_lft") { sub("sec", "", $(i + 1)); print $(i + 1); exit } }')
	case $lft in '' | *[!0-9]*) return 1 ;; esac
	[ "$lft" -gt $((IPV6_VALID_SECONDS - ($(date +%s) - ACQUIRED_EPOCH) + 15)) ]
}
bound6() {
	case $os_dhcp in
	networkd) renewed6 ;;
	NetworkManager) nmcli -t -f DHCP6 device show "$link" 2>/dev/null | grep -q '^DHCP6.OPTION' ;;
	*) return 1 ;;
	esac
}
bound() {
	[ -n "$link" ] || return 1
	if $want4 && ! bound4; then return 1; fi
	if $want6 && ! bound6; then return 1; fi
	return 0
}

start=$(now)
os_bound=false
if [ "$os_dhcp" = udhcpc ]; then
	if [ -n "$link" ] && [ -n "$CLIENT_ID_HEX" ]; then
		# -C: no default client id; -x 0x3d: the initramfs's, raw;
		# -r: ask for the address the initramfs holds.
		set -- -i "$link" -C -x "0x3d:$CLIENT_ID_HEX" -s /usr/share/udhcpc/default.script -n -q -t 5 -T 3
		if [ -n "$ADDRESS" ]; then set -- "$@" -r "$ADDRESS"; fi
		echo "udhcpc $*" > /run/udhcpc.out
		if udhcpc "$@" >> /run/udhcpc.out 2>&1; then os_bound=true; fi
	fi
else
	while :; do
		if bound; then os_bound=true; break; fi
		if [ $(($(now) - start)) -ge "$max_wait" ]; then break; fi
		sleep 1
	done
fi
waited=$(($(now) - start))
say "$os_dhcp bound: $os_bound after ${waited}s"

case $os_dhcp in
networkd)
	os_state=$({
		networkctl --no-pager status "$link"
		echo "--- /run/systemd/netif/leases/$ifindex"
		cat "/run/systemd/netif/leases/$ifindex"
		echo "--- networkctl list"
		networkctl --no-pager list
	} 2>&1) ;;
NetworkManager)
	os_state=$({
		nmcli device show "$link"
		echo "--- nmcli connection show"
		nmcli -f NAME,UUID,TYPE,DEVICE,ACTIVE,FILENAME connection show
		echo "--- NetworkManager --print-config"
		NetworkManager --print-config
	} 2>&1) ;;
*)
	os_state=$({
		cat /run/udhcpc.out
		echo "--- default.script events"
		cat /run/udhcpc.events
	} 2>&1) ;;
esac
os_log=
if command -v journalctl > /dev/null; then
	os_log=$(journalctl -b --no-pager -o short-monotonic -u systemd-networkd -u NetworkManager 2>&1 | tail -n 80)
fi
handover=$({
	for d in /run/systemd/network /run/NetworkManager/conf.d /run/NetworkManager/system-connections \
		/etc/systemd/network /etc/NetworkManager/system-connections; do
		echo "== ls -la $d"
		ls -la "$d"
	done
	for f in /run/systemd/network/* /run/NetworkManager/conf.d/* /run/NetworkManager/system-connections/*; do
		if [ -f "$f" ]; then
			echo "== $f"
			cat "$f"
		fi
	done
} 2>&1)

premounted=""
for m in /proc /sys /dev /run; do
	if awk -v m="$m" '$2 == m { found = 1 } END { exit !found }' /proc/mounts; then
		premounted="$premounted $m"
	fi
done
` + reportRoot + `
line=$(printf '{"pid":%d,"init":"%s","fixture":"%s","writable":%s,"root_fstype":"%s","premounted":"%s","uptime":"%s","mounts_b64":"%s","cmdline_b64":"%s","addrs_b64":"%s","links_b64":"%s","run_initramfs_b64":"%s","os_dhcp":"%s","os_bound":%s,"os_link":"%s","os_wait":%d,"env_b64":"%s","handover_b64":"%s","os_state_b64":"%s","os_log_b64":"%s","started":"%s","trace_b64":"%s"}' \
	"$$" "$(cat /proc/1/comm)" "$fixture" "$writable" "$root_fstype" "$premounted" "$uptime" \
` + reportTexts + `	"$os_dhcp" "$os_bound" "$link" "$waited" \
	"$(cat "$envfile" 2>&1 | b64)" \
	"$(printf '%s\n' "$handover" | b64)" \
	"$(printf '%s\n' "$os_state" | b64)" \
	"$(printf '%s\n' "$os_log" | b64)" \
	"$started" \
	"$(head -c 262144 /run/initramfs/blockd.trace 2>/dev/null | b64)")

systemd=false
if [ "$(cat /proc/1/comm)" = systemd ]; then
	systemd=true
	kill -55 1 2> /dev/null # SIGRTMIN+21: systemd stops printing status lines on the console
	sleep 1
fi
# Keep kernel messages from splitting the report line on the serial console.
dmesg -n 1 2> /dev/null
echo "STREAMROOT-REPORT $line" > "$con"
sync
if $systemd; then
	# fixture.shutdown=graceful: a full systemd shutdown (stopping units,
	# killing processes, unmounting), to show the block daemon survives it.
	if grep -q 'fixture.shutdown=graceful' /proc/cmdline; then
		kill -54 1 2> /dev/null # SIGRTMIN+20: status lines back on, to see the shutdown
		systemctl poweroff
		sleep 120
	fi
	systemctl poweroff --force
	sleep 20
fi
poweroff -f
sleep 5
echo o > /proc/sysrq-trigger
sleep 30
`

// UdhcpcInit is /sbin/init of the busybox-udhcpc root: mount /proc if the
// initramfs did not move it over, then become the LEASE REPORT (which runs
// udhcpc with the initramfs's client id from net.<iface>.env).
const UdhcpcInit = `#!/bin/sh
# streamroot qemu-tests udhcpc INIT (written by qemu-tests/harness).
PATH=/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
echo "udhcpc-init: started as pid $$"
[ -r /proc/mounts ] || mount -t proc proc /proc
exec /usr/local/sbin/streamroot-lease-report udhcpc
`

// UdhcpcScript is the busybox-udhcpc root's udhcpc event script
// (/usr/share/udhcpc/default.script). deconfig keeps the address: the root
// may depend on the network, and the initramfs's address is the lease
// udhcpc renews. bound/renew put the leased address and default route on
// the link. Every event is appended to /run/udhcpc.events.
const UdhcpcScript = `#!/bin/sh
# streamroot qemu-tests udhcpc event script (written by qemu-tests/harness).
echo "$1 interface=$interface ip=$ip mask=$mask router=$router serverid=$serverid lease=$lease dns=$dns" >> /run/udhcpc.events
case $1 in
bound | renew)
	ip addr replace "$ip/$mask" dev "$interface"
	for r in $router; do
		ip route replace default via "$r" dev "$interface"
		break
	done
	;;
esac
exit 0
`

// LeaseReport is a Report from the LEASE REPORT script: what the root's own
// DHCP client did with the initramfs's lease.
type LeaseReport struct {
	*Report
	Init     string // comm of PID 1: systemd, or the busybox init script
	OSDHCP   string // networkd, NetworkManager or udhcpc
	OSBound  bool   // the root's own client holds a lease on the boot link
	OSLink   string // the root's name of the boot link ("" if no link has the MAC)
	OSWait   int    // seconds the script waited for the client
	Env      string // /run/initramfs/net.<iface>.env
	Handover string // ls -la and contents of the handover directories
	OSState  string // networkctl status / nmcli device show / udhcpc output
	OSLog    string // journal of systemd-networkd and NetworkManager (tail)
	// Started is the guest's uptime when the report began: the root's own
	// boot reached the report's unit (before it waits for the client).
	Started float64
	// Trace is /run/initramfs/blockd.trace as the report found it (the
	// first 256 KiB; empty after another initramfs or a RAM boot that
	// kept none).
	Trace string
}

// ParseLeaseReport decodes a LEASE REPORT line's JSON.
func ParseLeaseReport(js string) (*LeaseReport, error) {
	r, err := ParseReport(js)
	if err != nil {
		return nil, err
	}
	var raw struct {
		Init     string `json:"init"`
		OSDHCP   string `json:"os_dhcp"`
		OSBound  *bool  `json:"os_bound"`
		OSLink   string `json:"os_link"`
		OSWait   int    `json:"os_wait"`
		Env      string `json:"env_b64"`
		Handover string `json:"handover_b64"`
		OSState  string `json:"os_state_b64"`
		OSLog    string `json:"os_log_b64"`
		Started  string `json:"started"`
		Trace    string `json:"trace_b64"`
	}
	if err := json.Unmarshal([]byte(js), &raw); err != nil {
		return nil, fmt.Errorf("lease report: %w", err)
	}
	if raw.OSDHCP == "" || raw.OSBound == nil {
		return nil, fmt.Errorf("lease report: no os_dhcp/os_bound: not a LEASE REPORT line: %.200q", js)
	}
	lr := &LeaseReport{Report: r, Init: raw.Init, OSDHCP: raw.OSDHCP, OSBound: *raw.OSBound, OSLink: raw.OSLink, OSWait: raw.OSWait}
	err = decodeBase64("lease report", []base64Field{
		{"env_b64", raw.Env, &lr.Env},
		{"handover_b64", raw.Handover, &lr.Handover},
		{"os_state_b64", raw.OSState, &lr.OSState},
		{"os_log_b64", raw.OSLog, &lr.OSLog},
		{"trace_b64", raw.Trace, &lr.Trace},
	})
	if err != nil {
		return nil, err
	}
	if raw.Started != "" {
		if lr.Started, err = strconv.ParseFloat(raw.Started, 64); err != nil {
			return nil, fmt.Errorf("lease report: started %q: %w", raw.Started, err)
		}
	}
	return lr, nil
}

// EnvVar returns a variable of the reported net.<iface>.env (values are
// single-quoted there).
func (lr *LeaseReport) EnvVar(name string) string {
	for _, line := range strings.Split(lr.Env, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || k != name {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
			v = strings.ReplaceAll(v[1:len(v)-1], `'\''`, "'")
		}
		return v
	}
	return ""
}
