package netup

import (
	"os"
	"path/filepath"
	"testing"
)

// fakeSysfs builds the sysfs shape net_id reads: class/net/<if>/device
// pointing at a PCI function (optionally through a virtio device), PCI
// slots, firmware index attributes.
type fakeNIC struct {
	pci       string // 0000:00:03.0
	virtio    bool
	multi     bool
	acpiIndex string
	devPort   string
}

func fakeSysfs(t *testing.T, nic fakeNIC, slots map[string]string) string {
	t.Helper()
	root := t.TempDir()
	mk := func(p string) string {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write := func(p string, data []byte) {
		if err := os.WriteFile(filepath.Join(root, p), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mk("bus/pci")
	mk("bus/virtio")
	pciDev := mk("devices/pci0000:00/" + nic.pci)
	if err := os.Symlink(filepath.Join(root, "bus/pci"), filepath.Join(pciDev, "subsystem")); err != nil {
		t.Fatal(err)
	}
	cfg := make([]byte, 64)
	if nic.multi {
		cfg[0x0e] = 0x80
	}
	write("devices/pci0000:00/"+nic.pci+"/config", cfg)
	if nic.acpiIndex != "" {
		write("devices/pci0000:00/"+nic.pci+"/acpi_index", []byte(nic.acpiIndex+"\n"))
	}
	dev := pciDev
	if nic.virtio {
		dev = mk("devices/pci0000:00/" + nic.pci + "/virtio0")
		if err := os.Symlink(filepath.Join(root, "bus/virtio"), filepath.Join(dev, "subsystem")); err != nil {
			t.Fatal(err)
		}
	}
	nd := mk("class/net/eth0")
	if err := os.Symlink(dev, filepath.Join(nd, "device")); err != nil {
		t.Fatal(err)
	}
	if nic.devPort != "" {
		write("class/net/eth0/dev_port", []byte(nic.devPort+"\n"))
	}
	for name, addr := range slots {
		mk("bus/pci/slots/" + name)
		write("bus/pci/slots/"+name+"/address", []byte(addr+"\n"))
	}
	return root
}

func TestPredictableName(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nic   fakeNIC
		slots map[string]string
		want  string
	}{
		{"qemu virtio in hotplug slot", fakeNIC{pci: "0000:00:03.0", virtio: true}, map[string]string{"3": "0000:00:03", "4": "0000:00:04"}, "ens3"},
		{"path, no slots", fakeNIC{pci: "0000:00:03.0", virtio: true}, nil, "enp0s3"},
		{"path on a bus", fakeNIC{pci: "0000:3b:00.1", multi: true}, nil, "enp59s0f1"},
		{"multifunction slot", fakeNIC{pci: "0000:00:05.0", multi: true}, map[string]string{"5": "0000:00:05"}, "ens5f0"},
		{"onboard", fakeNIC{pci: "0000:00:19.0", acpiIndex: "1"}, map[string]string{"25": "0000:00:19"}, "eno1"},
		{"dev_port", fakeNIC{pci: "0000:02:00.0", devPort: "1"}, nil, "enp2s0d1"},
		{"domain", fakeNIC{pci: "0001:00:02.0"}, nil, "enP1p0s2"},
	} {
		if got := PredictableName(fakeSysfs(t, tc.nic, tc.slots), "eth0"); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := PredictableName(t.TempDir(), "eth0"); got != "" {
		t.Errorf("no device: got %q", got)
	}
}
