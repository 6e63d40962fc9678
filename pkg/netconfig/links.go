package netconfig

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/streamroot/streamroot/pkg/bootcfg"
	"github.com/streamroot/streamroot/pkg/hint"
	"github.com/streamroot/streamroot/pkg/netup"
)

// teamModes maps teamd's runners onto the bonding mode that does the same
// on the wire: this initramfs has no teamd, so a team is built as a bond.
var teamModes = map[string]string{
	"activebackup": "active-backup",
	"roundrobin":   "balance-rr",
	"loadbalance":  "balance-xor",
	"broadcast":    "broadcast",
	"lacp":         "802.3ad",
}

// dracutPorts are the ports of a bond= that names none (dracut.cmdline(7)).
var dracutPorts = []string{"eth0", "eth1"}

// virtualLinks maps vlan=, bond=, team= and bridge= onto the links netup
// builds; the first it cannot honour is an error naming it.
func virtualLinks(links []bootcfg.Link) ([]netup.Virtual, []string, error) {
	var out []netup.Virtual
	var notes []string
	for _, l := range links {
		v := netup.Virtual{Arg: l.Arg, Name: l.Name, Parents: l.Parents, MTU: l.MTU}
		if slices.ContainsFunc(out, func(o netup.Virtual) bool { return o.Name == l.Name }) {
			return nil, nil, hint.New(fmt.Errorf("%s: a second link named %s", l.Arg, l.Name), "give each vlan=, bond= and bridge= its own name")
		}
		switch l.Kind {
		case bootcfg.LinkVLAN:
			id, ok := vlanID(l.Name, l.Parents[0])
			if !ok {
				return nil, nil, hint.New(fmt.Errorf("%s: the VLAN id is not in the name %s", l.Arg, l.Name),
					"name the VLAN as dracut does: vlan<id> (vlan100, vlan0100) or <parent>.<id> (eth0.100), the id from 1 to 4094")
			}
			v.Kind, v.VLANID = netup.KindVLAN, id
		case bootcfg.LinkBond, bootcfg.LinkTeam:
			opts := l.Options
			if l.Kind == bootcfg.LinkTeam {
				runner := cmpOr(l.Options, "roundrobin") // teamd's default runner
				mode, ok := teamModes[runner]
				if !ok {
					return nil, nil, hint.New(fmt.Errorf("%s: team runner %q has no bonding equivalent", l.Arg, runner),
						"this initramfs builds a team as a bond: use a runner of activebackup, roundrobin, loadbalance, broadcast, lacp, or bond= directly")
				}
				opts = "mode=" + mode
				notes = append(notes, fmt.Sprintf("%s: built as a bond %s with mode=%s (this initramfs has no teamd); the real OS gets a bond", l.Arg, l.Name, mode))
			}
			bo, err := netup.ParseBondOptions(opts)
			if err != nil {
				return nil, nil, hint.New(fmt.Errorf("%s: %w", l.Arg, err),
					"write the options as dracut does, comma separated: bond=bond0:eth0,eth1:mode=active-backup,miimon=100")
			}
			v.Kind, v.Bond = netup.KindBond, bo
			if len(v.Parents) == 0 {
				v.Parents = slices.Clone(dracutPorts)
			}
		case bootcfg.LinkBridge:
			v.Kind = netup.KindBridge
		default:
			return nil, nil, hint.New(fmt.Errorf("%s: %s links are not supported", l.Arg, l.Kind),
				"boot over Ethernet: this initramfs builds VLANs, bonds and bridges, not InfiniBand partitions")
		}
		out = append(out, v)
	}
	return out, notes, nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// vlanID reads the VLAN id from a name in one of dracut's four forms:
// vlan0005, vlan5, eth0.0005, eth0.5.
func vlanID(name, parent string) (int, bool) {
	digits, ok := strings.CutPrefix(name, "vlan")
	if !ok {
		if digits, ok = strings.CutPrefix(name, parent+"."); !ok {
			i := strings.LastIndexByte(name, '.')
			if i < 0 {
				return 0, false
			}
			digits = name[i+1:]
		}
	}
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return 0, false
	}
	id, err := strconv.Atoi(digits)
	return id, err == nil && id >= 1 && id <= 4094
}

// Modules are the kernel modules the virtual links of the kernel line
// need, for the init's module stage to load before the network stage.
func Modules(cfg *bootcfg.Config) []string {
	var mods []string
	for _, l := range cfg.Net.Links {
		m := map[bootcfg.LinkKind]string{bootcfg.LinkVLAN: "8021q", bootcfg.LinkBond: "bonding", bootcfg.LinkTeam: "bonding", bootcfg.LinkBridge: "bridge"}[l.Kind]
		if m != "" && !slices.Contains(mods, m) {
			mods = append(mods, m)
		}
	}
	return mods
}
