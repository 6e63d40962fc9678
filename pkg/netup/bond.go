package netup

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
)

// BondOptions are a bond's settings, keyed by the kernel's option names
// (those of /sys/class/net/<bond>/bonding/ and NetworkManager's [bond]
// section), each value in the kernel's own spelling: mode=1 reads as
// mode=active-backup.
type BondOptions map[string]string

// bondOption normalises one option's value; ok false: not a valid value.
type bondOption func(v string) (norm string, ok bool)

func enumOption(names []string) bondOption {
	return func(v string) (string, bool) {
		if n, err := strconv.Atoi(v); err == nil && allDigits(v) && n >= 0 && n < len(names) {
			return names[n], true
		}
		return v, slices.Contains(names, v)
	}
}

func uintOption(v string) (string, bool) {
	n, err := strconv.ParseUint(v, 10, 31)
	return strconv.FormatUint(n, 10), err == nil && allDigits(v)
}

func boolOption(v string) (string, bool) { return v, v == "0" || v == "1" }

func allDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// bondOptionTable lists the options dracut's bond= passes to the kernel
// that this initramfs sets with netlink; the enums in the kernel's order,
// so a number means what it means to the bonding driver.
var bondOptionTable = map[string]bondOption{
	"mode":              enumOption([]string{"balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad", "balance-tlb", "balance-alb"}),
	"miimon":            uintOption,
	"updelay":           uintOption,
	"downdelay":         uintOption,
	"arp_interval":      uintOption,
	"min_links":         uintOption,
	"lacp_rate":         enumOption([]string{"slow", "fast"}),
	"xmit_hash_policy":  enumOption([]string{"layer2", "layer3+4", "layer2+3", "encap2+3", "encap3+4", "vlan+srcmac"}),
	"fail_over_mac":     enumOption([]string{"none", "active", "follow"}),
	"primary_reselect":  enumOption([]string{"always", "better", "failure"}),
	"ad_select":         enumOption([]string{"stable", "bandwidth", "count"}),
	"arp_validate":      enumOption([]string{"none", "active", "backup", "all"}),
	"use_carrier":       boolOption,
	"all_slaves_active": boolOption,
	"primary": func(v string) (string, bool) {
		return v, v != "" && len(v) < 16 && !strings.ContainsAny(v, "/: \t\n")
	},
	"arp_ip_target": func(v string) (string, bool) {
		var ips []string
		for _, s := range strings.Split(v, ";") {
			ip := net.ParseIP(s)
			if ip == nil || ip.To4() == nil {
				return v, false
			}
			ips = append(ips, ip.String())
		}
		return strings.Join(ips, ";"), true
	},
}

// ParseBondOptions reads dracut's bond options, "mode=802.3ad,miimon=100"
// (several arp_ip_target addresses separated by ';'). An option the table
// does not know, or a value the kernel would refuse, is an error naming it.
func ParseBondOptions(s string) (BondOptions, error) {
	o := BondOptions{}
	for _, kv := range strings.Split(s, ",") {
		if s == "" {
			break
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("bond option %q is not <name>=<value>", kv)
		}
		norm := bondOptionTable[k]
		if norm == nil {
			return nil, fmt.Errorf("unknown bond option %q (known: %s)", k, strings.Join(knownBondOptions(), ", "))
		}
		nv, ok := norm(v)
		if !ok {
			return nil, fmt.Errorf("bond option %s=%q is not a value the bonding driver takes", k, v)
		}
		o[k] = nv
	}
	if o["mode"] == "" {
		o["mode"] = "balance-rr" // dracut's default and the kernel's
	}
	if o["miimon"] == "" && o["arp_interval"] == "" {
		// Without link monitoring the bond never notices a port going
		// away, so active-backup never fails over (NetworkManager sets
		// the same default).
		o["miimon"] = "100"
	}
	return o, nil
}

func knownBondOptions() []string {
	var k []string
	for n := range bondOptionTable {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}

// String renders the options as dracut writes them, sorted by name.
func (o BondOptions) String() string {
	var s []string
	for _, k := range o.Keys() {
		s = append(s, k+"="+o[k])
	}
	return strings.Join(s, ",")
}

// Keys are the option names, sorted.
func (o BondOptions) Keys() []string {
	var k []string
	for n := range o {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}

// netlinkBond is the bond to create; primary is resolved to its index by
// the caller (it names a port, which may have been renamed).
func (o BondOptions) netlinkBond(name string, mtu int) *netlink.Bond {
	b := netlink.NewLinkBond(netlink.LinkAttrs{Name: name, MTU: mtu})
	num := func(k string) int {
		if v, ok := o[k]; ok {
			n, _ := strconv.Atoi(v)
			return n
		}
		return -1
	}
	b.Mode = netlink.StringToBondMode(o["mode"])
	b.Miimon, b.UpDelay, b.DownDelay = num("miimon"), num("updelay"), num("downdelay")
	b.ArpInterval, b.MinLinks = num("arp_interval"), num("min_links")
	b.UseCarrier, b.AllSlavesActive = num("use_carrier"), num("all_slaves_active")
	if v, ok := o["lacp_rate"]; ok {
		b.LacpRate = netlink.StringToBondLacpRate(v)
	}
	if v, ok := o["xmit_hash_policy"]; ok {
		b.XmitHashPolicy = netlink.StringToBondXmitHashPolicy(v)
	}
	if v, ok := o["fail_over_mac"]; ok {
		b.FailOverMac = netlink.StringToBondFailOverMacMap[v]
	}
	if v, ok := o["primary_reselect"]; ok {
		b.PrimaryReselect = netlink.StringToBondPrimaryReselectMap[v]
	}
	if v, ok := o["ad_select"]; ok {
		b.AdSelect = netlink.StringToBondAdSelectMap[v]
	}
	if v, ok := o["arp_validate"]; ok {
		b.ArpValidate = netlink.StringToBondArpValidateMap[v]
	}
	if v, ok := o["arp_ip_target"]; ok {
		for _, s := range strings.Split(v, ";") {
			b.ArpIpTargets = append(b.ArpIpTargets, net.ParseIP(s).To4())
		}
	}
	return b
}
