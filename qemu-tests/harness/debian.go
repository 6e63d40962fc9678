package harness

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The one-lease fixture roots (issue 3): real OS DHCP clients taking over
// the initramfs's lease. Each root runs the LEASE REPORT (leasereport.go).
const (
	// FixtureNetworkd: Debian 12 minbase + systemd, systemd-networkd enabled
	// with its own 20-wired.network (Name=en*, DHCP=yes, no client id:
	// networkd's default is a DUID, the two-lease case under dracut).
	FixtureNetworkd = "debian-networkd.squashfs"
	// FixtureNM: the same base + NetworkManager (networkd disabled), with
	// its own "primary" profile that sets no client id, as the Foreman
	// Discovery Image does.
	FixtureNM = "debian-nm.squashfs"
	// FixtureUdhcpc: the busybox root whose init runs udhcpc with the
	// client id from /run/initramfs/net.<iface>.env.
	FixtureUdhcpc = "busybox-udhcpc.squashfs"
)

// Debian fixture recipe. Changing any of these (or the scripts, the config
// files below, debootstrap's or mksquashfs' version) changes the cache key.
const (
	debianRecipeVersion = "streamroot-debian-fixtures-1"
	debianSuite         = "bookworm"
	// debootstrap's dependency resolver ignores virtual packages:
	// libpam-systemd provides the logind that polkitd (NetworkManager)
	// needs.
	debianBase     = "systemd,systemd-sysv,udev,iproute2,dbus,libpam-systemd"
	debianNMExtra  = "network-manager"
	debianBuildMax = 20 * time.Minute // one root: debootstrap + configure + mksquashfs
	// LeaseReportWait bounds how long the LEASE REPORT waits for the
	// root's DHCP client (guest seconds).
	LeaseReportWait = 120
)

// debianMasked are units that slow a TCG boot or write on the serial
// console (the report line must not be split), masked in the Debian roots.
var debianMasked = []string{
	"apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer",
	"e2scrub_all.timer", "e2scrub_reap.service", "fstrim.timer",
	"systemd-timesyncd.service", "systemd-firstboot.service",
	"serial-getty@ttyS0.service", "systemd-networkd-wait-online.service",
	"NetworkManager-wait-online.service", "ModemManager.service", "wpa_supplicant.service",
}

// networkdWired is the networkd root's own .network: every en* link, DHCP,
// no ClientIdentifier= (so networkd's default, a DUID-based id, applies).
const networkdWired = `# debian-networkd fixture: the image's own config, as a distribution ships it.
[Match]
Name=en*

[Network]
DHCP=yes
`

// nmPrimary is the NetworkManager root's own profile: any ethernet link,
// DHCP, no dhcp-client-id (the Foreman Discovery Image's "primary").
const nmPrimary = `# debian-nm fixture: the image's own profile, as the Foreman Discovery Image writes it.
[connection]
id=primary
uuid=7b3a1c2e-5f1d-4e8a-9c61-2d0f7a6b9e01
type=ethernet
autoconnect=true

[ethernet]

[ipv4]
method=auto

[ipv6]
method=auto
`

// leaseReportUnit runs the LEASE REPORT once the network service started.
func leaseReportUnit(osDHCP string) string {
	return fmt.Sprintf(`# streamroot qemu-tests: report the root's DHCP client's lease, then power off.
[Unit]
Description=streamroot qemu-tests lease report
After=systemd-networkd.service NetworkManager.service dbus.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/streamroot-lease-report %s %d
StandardOutput=journal
StandardError=journal

[Install]
WantedBy=multi-user.target
`, osDHCP, LeaseReportWait)
}

// LeaseFixture returns the cached image of one of FixtureNetworkd,
// FixtureNM, FixtureUdhcpc, building it (once per Env, under a lock shared
// with other test processes) if needed. A cold Debian build runs
// debootstrap against the Debian mirror (see DebianMirror); its .debs are
// cached in <cache>/debootstrap.
func (e *Env) LeaseFixture(t testing.TB, name string) string {
	t.Helper()
	st := e.leaseFixtureState(name)
	start := time.Now()
	select {
	case <-st.done:
	case <-time.After(3 * debianBuildMax):
		t.Fatalf("fixture %s: still building after %s", name, 3*debianBuildMax)
	}
	st.mu.Lock()
	for _, l := range st.logs {
		t.Log(l)
	}
	st.logs = nil
	st.mu.Unlock()
	if st.err != nil {
		t.Fatalf("fixture %s: %v", name, st.err)
	}
	if w := time.Since(start); w > time.Second {
		t.Logf("fixture %s: waited %s for its build", name, w.Round(time.Millisecond))
	}
	return st.path
}

// PrefetchLeaseFixtures starts building the named lease fixtures in the
// background (a cold Debian root takes minutes), so that tests booting
// other fixtures use the VM slots meanwhile. LeaseFixture waits for them
// and logs what the builds logged.
func (e *Env) PrefetchLeaseFixtures(names ...string) {
	for _, n := range names {
		e.leaseFixtureState(n)
	}
}

// leaseFixtureState returns the build of name, starting it if needed.
func (e *Env) leaseFixtureState(name string) *leaseFixState {
	e.leaseFixMu.Lock()
	defer e.leaseFixMu.Unlock()
	if e.leaseFix == nil {
		e.leaseFix = map[string]*leaseFixState{}
	}
	if st := e.leaseFix[name]; st != nil {
		return st
	}
	st := &leaseFixState{done: make(chan struct{})}
	e.leaseFix[name] = st
	go func() {
		defer close(st.done)
		start := time.Now()
		logf := func(format string, args ...any) {
			st.mu.Lock()
			st.logs = append(st.logs, fmt.Sprintf(format, args...))
			st.mu.Unlock()
		}
		st.path, st.err = BuildLeaseFixture(e.Cache, name, logf)
		if st.err == nil {
			logf("fixture %s ready %s after its build started (cache %s)", name, time.Since(start).Round(time.Millisecond), e.Cache)
		}
	}()
	return st
}

type leaseFixState struct {
	done chan struct{} // closed when path and err are set
	path string
	err  error

	mu   sync.Mutex
	logs []string // the build's log lines, not yet logged by a test
}

// BuildLeaseFixture returns the path of a one-lease fixture in the cache,
// building it if missing.
func BuildLeaseFixture(cache, name string, logf func(string, ...any)) (string, error) {
	dir := filepath.Join(cache, "fixtures")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	var f fixture
	switch name {
	case FixtureUdhcpc:
		base, err := baseRecipe()
		if err != nil {
			return "", err
		}
		f = fixture{
			name:   name,
			recipe: base + "\nsquashfs -comp xz of root udhcpc\nlease-report " + LeaseReportScript + "\ninit " + UdhcpcInit + "\nscript " + UdhcpcScript,
			build: func(work, out string) (map[string]string, error) {
				r := filepath.Join(work, "root")
				if err := makeUdhcpcRoot(r); err != nil {
					return nil, err
				}
				return nil, mksquashfs(r, out, "-comp", "xz")
			},
		}
	case FixtureNetworkd, FixtureNM:
		for _, tool := range []string{"debootstrap", "chroot", "mksquashfs"} {
			if _, err := exec.LookPath(tool); err != nil {
				return "", fmt.Errorf("missing host tool %s (make test-deps installs debootstrap)", tool)
			}
		}
		recipe, err := debianRecipe(name)
		if err != nil {
			return "", err
		}
		f = fixture{
			name: name, recipe: recipe,
			build: func(work, out string) (map[string]string, error) {
				return buildDebianRoot(cache, work, out, name, logf)
			},
			lock: ".lock-debian", lockWait: 2 * debianBuildMax,
		}
	default:
		return "", fmt.Errorf("unknown lease fixture %q", name)
	}
	p, _, err := f.ensure(dir, logf)
	return p, err
}

// makeUdhcpcRoot is the busybox root with UdhcpcInit as /sbin/init.
func makeUdhcpcRoot(dir string) error {
	if err := makeBusyboxRoot(dir, "udhcpc"); err != nil {
		return err
	}
	for _, f := range []struct {
		path, data string
	}{
		{"sbin/init", UdhcpcInit},
		{"usr/local/sbin/streamroot-lease-report", LeaseReportScript},
		{"usr/share/udhcpc/default.script", UdhcpcScript},
	} {
		p := filepath.Join(dir, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(f.data), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// debianPackages is the --include list of a Debian fixture.
func debianPackages(name string) string {
	if name == FixtureNM {
		return debianBase + "," + debianNMExtra
	}
	return debianBase
}

func debianRecipe(name string) (string, error) {
	sq, err := runCmd(time.Minute, "mksquashfs", "-version")
	if err != nil {
		return "", err
	}
	dbs, err := runCmd(time.Minute, "dpkg-query", "-W", "-f=${Version}", "debootstrap")
	if err != nil {
		return "", err
	}
	first := func(s string) string { l, _, _ := strings.Cut(strings.TrimSpace(s), "\n"); return l }
	return strings.Join([]string{
		debianRecipeVersion, name,
		"debootstrap " + dbs + " --variant=minbase " + debianSuite + " --include=" + debianPackages(name),
		"masked " + strings.Join(debianMasked, " "),
		"mksquashfs " + first(sq) + " -comp zstd",
		"networkd " + networkdWired, "nm " + nmPrimary, "unit " + leaseReportUnit("X"),
		"lease-report " + LeaseReportScript,
	}, "\n"), nil
}

// DebianMirror is the Debian archive debootstrap uses:
// $STREAMROOT_DEBIAN_MIRROR, else the first URI of the host's APT sources
// (/etc/apt/sources.list, sources.list.d/*.list and *.sources) that serves
// the bookworm suite. There is no built-in default: the host's own APT
// configuration knows which archive it may reach, a compiled-in name does not.
func DebianMirror() (string, error) {
	if m := os.Getenv("STREAMROOT_DEBIAN_MIRROR"); m != "" {
		return m, nil
	}
	files := []string{"/etc/apt/sources.list"}
	for _, g := range []string{"/etc/apt/sources.list.d/*.list", "/etc/apt/sources.list.d/*.sources"} {
		m, _ := filepath.Glob(g)
		files = append(files, m...)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if m := mirrorFrom(string(b), strings.HasSuffix(f, ".sources")); m != "" {
			return m, nil
		}
	}
	return "", fmt.Errorf("no Debian %s archive in this host's APT sources (%s): set STREAMROOT_DEBIAN_MIRROR=<archive URL>",
		debianSuite, strings.Join(files, ", "))
}

// mirrorFrom returns the first http(s) URI serving suite bookworm, from a
// one-line-style list or a deb822 .sources file.
func mirrorFrom(text string, deb822 bool) string {
	if !deb822 {
		sc := bufio.NewScanner(strings.NewReader(text))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 3 || f[0] != "deb" {
				continue
			}
			i := 1
			if strings.HasPrefix(f[i], "[") { // [ options ]
				for i < len(f) && !strings.HasSuffix(f[i], "]") {
					i++
				}
				i++
			}
			if i+1 < len(f) && f[i+1] == debianSuite && strings.HasPrefix(f[i], "http") {
				return strings.TrimSuffix(f[i], "/")
			}
		}
		return ""
	}
	for _, block := range strings.Split(text, "\n\n") {
		fields := map[string]string{}
		for _, line := range strings.Split(block, "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, " ") {
				fields[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
			}
		}
		if !strings.Contains(" "+fields["types"]+" ", " deb ") || strings.EqualFold(fields["enabled"], "no") {
			continue
		}
		suites := strings.Fields(fields["suites"])
		uris := strings.Fields(fields["uris"])
		for _, s := range suites {
			if s == debianSuite && len(uris) > 0 && strings.HasPrefix(uris[0], "http") {
				return strings.TrimSuffix(uris[0], "/")
			}
		}
	}
	return ""
}

// buildDebianRoot debootstraps and configures a Debian root in work and
// makes out, a zstd squashfs of it.
func buildDebianRoot(cache, work, out, name string, logf func(string, ...any)) (map[string]string, error) {
	root := filepath.Join(work, "root")
	// debootstrap unmounts what it mounted in the root, unless it was
	// killed (timeout): never let the caller's RemoveAll walk into /proc.
	defer unmountUnder(root)
	debs := filepath.Join(cache, "debootstrap", "debs") // debootstrap --cache-dir: shared .deb cache
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return nil, err
	}
	mirror, err := DebianMirror()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	args := []string{"--variant=minbase", "--components=main", "--cache-dir=" + debs,
		"--include=" + debianPackages(name), debianSuite, root, mirror}
	if out, err := runCmd(debianBuildMax, "debootstrap", args...); err != nil {
		log, _ := os.ReadFile(filepath.Join(root, "debootstrap", "debootstrap.log"))
		return nil, fmt.Errorf("%w\ndebootstrap.log (tail):\n%s\n%s", err, Tail(string(log), 30), Tail(out, 10))
	}
	logf("fixture %s: debootstrap %s from %s in %s", name, debianPackages(name), mirror, time.Since(start).Round(time.Second))

	id := strings.TrimSuffix(name, ".squashfs")
	sum := sha256.Sum256([]byte(name))
	osDHCP := "networkd"
	if name == FixtureNM {
		osDHCP = "NetworkManager"
	}
	files := []struct {
		path, data string
		mode       os.FileMode
	}{
		{"etc/fixture-id", id + "\n", 0o644},
		{"etc/hostname", id + "\n", 0o644},
		// Not empty: an empty machine-id is a first boot, where systemd
		// applies presets and may prompt on the console.
		{"etc/machine-id", hex.EncodeToString(sum[:16]) + "\n", 0o444},
		{"usr/local/sbin/streamroot-lease-report", LeaseReportScript, 0o755},
		{"etc/systemd/system/streamroot-lease-report.service", leaseReportUnit(osDHCP), 0o644},
	}
	if name == FixtureNM {
		files = append(files, struct {
			path, data string
			mode       os.FileMode
		}{"etc/NetworkManager/system-connections/primary.nmconnection", nmPrimary, 0o600})
	} else {
		files = append(files, struct {
			path, data string
			mode       os.FileMode
		}{"etc/systemd/network/20-wired.network", networkdWired, 0o644})
	}
	for _, f := range files {
		p := filepath.Join(root, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		os.Remove(p)
		if err := os.WriteFile(p, []byte(f.data), f.mode); err != nil {
			return nil, err
		}
	}
	chroot := func(args ...string) error {
		_, err := runCmd(2*time.Minute, "chroot", append([]string{root}, args...)...)
		return err
	}
	steps := [][]string{
		{"passwd", "-d", "root"}, // no password: a debugging login needs none
		{"systemctl", "enable", "streamroot-lease-report.service"},
		append([]string{"systemctl", "mask"}, debianMasked...),
	}
	if name == FixtureNM {
		steps = append(steps,
			[]string{"systemctl", "disable", "systemd-networkd.service", "systemd-networkd.socket"},
			[]string{"systemctl", "enable", "NetworkManager.service"})
	} else {
		steps = append(steps, []string{"systemctl", "enable", "systemd-networkd.service"})
	}
	for _, s := range steps {
		if err := chroot(s...); err != nil {
			return nil, err
		}
	}
	// What a boot does not need: package caches and lists, docs, locales.
	for _, g := range []string{"var/cache/apt/*", "var/lib/apt/lists/*", "usr/share/doc/*", "usr/share/man/*",
		"usr/share/info/*", "usr/share/locale/*", "var/log/*", "debootstrap", "var/cache/debconf/*-old"} {
		m, _ := filepath.Glob(filepath.Join(root, g))
		for _, p := range m {
			if err := os.RemoveAll(p); err != nil {
				return nil, err
			}
		}
	}
	for _, p := range []string{"var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/log/journal"} {
		os.MkdirAll(filepath.Join(root, p), 0o755)
	}
	sqStart := time.Now()
	if _, err := runCmd(debianBuildMax, "mksquashfs", root, out, "-noappend", "-no-progress", "-quiet", "-comp", "zstd"); err != nil {
		return nil, err
	}
	logf("fixture %s: mksquashfs -comp zstd in %s", name, time.Since(sqStart).Round(time.Second))
	if _, err := os.Stat(out); err != nil {
		return nil, errors.New("mksquashfs wrote nothing")
	}
	return map[string]string{"mirror": mirror, "packages": debianPackages(name), "os_dhcp": osDHCP}, nil
}

// unmountUnder lazily unmounts every mount at or below dir, deepest first.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		p := strings.ReplaceAll(f[4], "\\040", " ")
		if p == dir || strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	for _, p := range points {
		unix.Unmount(p, unix.MNT_DETACH)
	}
}
