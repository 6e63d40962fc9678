package netup

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// PredictableName is the name systemd-udevd's net_id builtin gives the link
// under the default policy (NamePolicy=kernel database onboard slot path):
// eno<index> for onboard NICs, ens<slot> for a NIC in a hotplug slot,
// enp<bus>s<slot> by PCI path. The real OS's udev cannot rename a link that
// is already up, so the initramfs must use the name the root's network
// config expects. Only PCI devices (directly or under virtio) are named;
// others keep their kernel name ("" is returned).
//
// This mirrors udev-builtin-net_id.c rather than calling udevadm because
// the initramfs has no udev, and no Go library implements net_id.
func PredictableName(sysfs, iface string) string {
	netdev := filepath.Join(sysfs, "class/net", iface)
	dev, err := filepath.EvalSymlinks(filepath.Join(netdev, "device"))
	if err != nil {
		return ""
	}
	// virtio_net's device is the virtio bus device; the PCI function is its parent.
	if sub, _ := filepath.EvalSymlinks(filepath.Join(dev, "subsystem")); filepath.Base(sub) == "virtio" {
		dev = filepath.Dir(dev)
	}
	if sub, _ := filepath.EvalSymlinks(filepath.Join(dev, "subsystem")); filepath.Base(sub) != "pci" {
		return ""
	}
	var domain, bus, slot, fn uint64
	if _, err := fmt.Sscanf(filepath.Base(dev), "%x:%x:%x.%x", &domain, &bus, &slot, &fn); err != nil {
		return ""
	}
	suffix := ""
	if multifunction(dev) || fn > 0 {
		suffix = fmt.Sprintf("f%d", fn)
	}
	if port := readUint(filepath.Join(netdev, "dev_port")); port > 0 {
		suffix += fmt.Sprintf("d%d", port)
	}

	// onboard: firmware index (ACPI _DSM, then SMBIOS type 41)
	for _, attr := range []string{"acpi_index", "index"} {
		if idx := readUint(filepath.Join(dev, attr)); idx > 0 && idx <= 16383 {
			onboard := fmt.Sprintf("eno%d", idx)
			if port := readUint(filepath.Join(netdev, "dev_port")); port > 0 {
				onboard += fmt.Sprintf("d%d", port)
			}
			return onboard
		}
	}
	dom := ""
	if domain > 0 {
		dom = fmt.Sprintf("P%d", domain)
	}
	// slot: a hotplug slot whose address is this device's domain:bus:slot
	want := fmt.Sprintf("%04x:%02x:%02x", domain, bus, slot)
	if slots, err := os.ReadDir(filepath.Join(sysfs, "bus/pci/slots")); err == nil {
		for _, s := range slots {
			addr, err := os.ReadFile(filepath.Join(sysfs, "bus/pci/slots", s.Name(), "address"))
			if err == nil && strings.TrimSpace(string(addr)) == want {
				if n, err := strconv.ParseUint(s.Name(), 10, 32); err == nil && n > 0 {
					return fmt.Sprintf("en%ss%d%s", dom, n, suffix)
				}
			}
		}
	}
	return fmt.Sprintf("en%sp%ds%d%s", dom, bus, slot, suffix)
}

func readUint(p string) uint64 {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	s := strings.TrimSpace(string(b))
	base := 10
	if t, ok := strings.CutPrefix(s, "0x"); ok {
		s, base = t, 16
	}
	n, _ := strconv.ParseUint(s, base, 64)
	return n
}

// multifunction reads the PCI header type's multi-function bit.
func multifunction(dev string) bool {
	f, err := os.Open(filepath.Join(dev, "config"))
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, 0x0e); err != nil {
		return false
	}
	return b[0]&0x80 != 0
}
