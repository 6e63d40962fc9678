package bench

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/bench/udpdelay"
	"github.com/streamroot/streamroot/qemu-tests/harness"
	"github.com/u-root/u-root/pkg/cpio"
)

// The chains section (issue 17, deliverable 2): power-on to the real init
// through the chains real nodes use, QEMU started with no kernel (-boot n):
//
//	pxelinux-tftp  iPXE ROM → DHCP + TFTP (dnsmasq) → pxelinux.0 → kernel +
//	               initramfs over TFTP → the root over HTTP
//	ipxe-http      iPXE ROM → DHCP (option 175 → a script URL) → kernel +
//	               initramfs over HTTP → the root over HTTP
//	uefi-http      OVMF's UEFI HTTP Boot (vendor class HTTPClient → a URL)
//	               → one signed UKI (kernel, initramfs, command line) over
//	               HTTP → the root over HTTP
//
// for both initramfs images with the small image, at each added RTT, and
// through PXELinux also for the stock Foreman Discovery Image's way
// (dracut-fdi): dracut's initramfs with the root image packed into the
// initrd, so the whole image crosses TFTP and the initramfs takes no
// lease (rd.neednet=0, as Foreman's FDI PXE template boots it). TFTP's
// RTT comes from bench/udpdelay on chainRelayIP (the guest's next-server),
// HTTP's from bench/delayproxy, as in the boot section. Knobs:
//
//	STREAMROOT_BENCH_CHAIN_RTTS  added round-trip times in ms (default 0,20,50)
//	STREAMROOT_BENCH_CHAIN_RUNS  boots per row (default 1)
//
// STREAMROOT_BENCH_FILTER matches "<chain>/<initramfs>/rttNms".
const (
	chainPXELinux = "pxelinux-tftp"
	chainIPXE     = "ipxe-http"
	chainUEFIHTTP = "uefi-http"
	// dracutFDI is dracut's initramfs with the image inside the initrd:
	// how Foreman's stock FDI PXE files boot (livecd-iso-to-pxeboot).
	dracutFDI = "dracut-fdi"
	// fdiImageName is the image's path in that initrd; dracut's
	// dmsquash-live takes root=live:/<file>.img from the initramfs itself.
	fdiImageName = "squashfs.img"
	// chainRelayIP is the UDP delay relay's address, the guests'
	// next-server when TFTP has an added RTT: br1's, which the guests reach
	// through their router (the namespace). Not a second address on br0:
	// dnsmasq (--interface=br0) binds TFTP on every address br0 gains, even
	// after its start, and would hold port 69 there.
	chainRelayIP  = "10.78.0.1"
	chainKernel   = "vmlinuz"
	chainInitrd   = "initrd.img"
	chainBootFile = "pxelinux.0"
	chainUKI      = "boot.efi"
)

// chainResult is one boot through a chain.
type chainResult struct {
	Chain     string
	Initramfs string
	RTT       time.Duration
	// Wall is host seconds from QEMU's start (after its VM slot) to the
	// real init's report line: power-on to real init. KernelWall is the
	// same to the kernel's first line (firmware, DHCP and the transfers).
	Wall, KernelWall float64
	// Uptime is the guest's /proc/uptime at the report: kernel start to
	// real init, as in the boot section.
	Uptime float64
	// TFTPBytes sums the sizes of the files dnsmasq logged as sent whole;
	// TFTPRelayed is what the relay forwarded to the guest (headers and
	// retransmissions included; 0 without a relay).
	TFTPBytes, TFTPRelayed int64
	// HTTPBytes is every body byte nginx sent during the boot; ImageBytes
	// the image's share of it.
	HTTPBytes, ImageBytes int64
	Err                   string `json:",omitempty"`
	When                  time.Time
}

func (r chainResult) name() string {
	return fmt.Sprintf("%s/%s/rtt%dms", r.Chain, r.Initramfs, r.RTT.Milliseconds())
}

// TestChains boots every chain × initramfs × RTT row and writes the table.
func TestChains(t *testing.T) {
	section(t, "chains")
	requireBoot(t)
	if err := harness.CheckPXEHost(); err != nil {
		t.Fatal(err)
	}
	rtts := envRTTs("STREAMROOT_BENCH_CHAIN_RTTS", []time.Duration{0, 20 * time.Millisecond, 50 * time.Millisecond})
	runs := envRuns("STREAMROOT_BENCH_CHAIN_RUNS", 1)
	img := images(t)["plain"]
	var all []chainResult
	for _, row := range chainRows(rtts) {
		if cfg.filter != nil && !cfg.filter.MatchString(row.name()) {
			continue
		}
		for i := range runs {
			res := row
			t.Run(fmt.Sprintf("%s/%d", row.name(), i+1), func(t *testing.T) {
				res = chainBoot(t, row, img)
			})
			if res.When.IsZero() {
				res.Err, res.When = "setup failed (see -test.v output)", time.Now()
			}
			record("chains", res)
			if res.Err != "" {
				say("%-36s run %d: FAILED: %s", row.name(), i+1, res.Err)
			} else {
				say("%-36s run %d: real init %.1f s wall after power-on (kernel at %.1f s), %.2f s guest; TFTP %s, HTTP %s",
					row.name(), i+1, res.Wall, res.KernelWall, res.Uptime, mib(res.TFTPBytes), mib(res.HTTPBytes))
			}
			all = append(all, res)
		}
	}
	writeSection("chains", chainTable(img, all))
}

// chainRows lists the section's rows in the order they boot: per RTT,
// every chain with streamroot and dracut, and PXELinux also with the stock
// FDI's image-in-the-initrd (the only chain Foreman ships it for).
func chainRows(rtts []time.Duration) []chainResult {
	var rows []chainResult
	for _, rtt := range rtts {
		for _, chain := range []string{chainPXELinux, chainIPXE, chainUEFIHTTP} {
			kinds := []string{ours, dracut}
			if chain == chainPXELinux {
				kinds = append(kinds, dracutFDI)
			}
			for _, which := range kinds {
				rows = append(rows, chainResult{Chain: chain, Initramfs: which, RTT: rtt})
			}
		}
	}
	return rows
}

// chainBoot boots row once in a fresh namespace: nginx with the image (and,
// for iPXE, the boot files), dnsmasq, the delays, then QEMU from the NIC's
// ROM. Like bootOnce it never fails t for a boot that does not reach the
// root: the result carries the error.
func chainBoot(t *testing.T, row chainResult, img image) chainResult {
	res := row
	res.When = time.Now()
	src := initramfsPath(row.Initramfs)
	if row.Initramfs == dracutFDI {
		src = filepath.Join(cfg.out, "dracut-fdi.img")
		if err := fdiInitrd(cfg.dracut, img.path, src); err != nil {
			t.Fatalf("dracut initrd with the image inside: %v", err)
		}
	}
	initrd, err := worldReadable(src, cfg.out)
	if err != nil {
		t.Fatal(err)
	}
	ns := env.NewNetns(t)
	web := harness.StartNginx(t, ns, harness.NginxOptions{})
	if err := web.AddFile(img.path, img.name); err != nil {
		t.Fatal(err)
	}
	base := "http://" + harness.ServerIP
	if row.RTT > 0 {
		startProxy(t, ns, row.RTT)
		base += ":8080"
	}
	spec := bootSpec{Initramfs: row.Initramfs, Image: "plain", Mode: "stream", RTT: row.RTT}
	if row.Initramfs == dracut {
		spec.Mode = "download"
	}
	args := harness.GuestConsoleArgs + cmdline(spec, base+"/"+img.name)
	if row.Initramfs == dracutFDI {
		args = harness.GuestConsoleArgs + fdiCmdline
	}

	var tftp string
	var dhcp *harness.Dnsmasq
	var relay *udpdelay.Relay
	switch row.Chain {
	case chainPXELinux:
		tftp = filepath.Join(env.ArtifactDir(t), "tftp")
		entry := "LABEL bench\nKERNEL " + chainKernel + "\nAPPEND initrd=" + chainInitrd + " " + args + "\n"
		if err := harness.PXELinuxRoot(tftp, env.Kernel, initrd, chainKernel, chainInitrd, entry); err != nil {
			t.Fatal(err)
		}
		boot := chainBootFile
		if row.RTT > 0 {
			// --dhcp-boot=<file>,<server name>,<server address>: the
			// address is the guest's next-server (siaddr), the relay.
			boot += ",," + chainRelayIP
		}
		dhcp = harness.StartDnsmasq(t, ns, harness.TFTPDnsmasqOptions(tftp, boot))
		if row.RTT > 0 {
			relay = startUDPDelay(t, ns, row.RTT)
		}
	case chainIPXE:
		script := filepath.Join(env.ArtifactDir(t), "boot.ipxe")
		body := fmt.Sprintf("#!ipxe\nkernel %s/%s initrd=%s %s\ninitrd %s/%s\nboot\n", base, chainKernel, chainInitrd, args, base, chainInitrd)
		if err := os.WriteFile(script, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, f := range [][2]string{{script, "boot.ipxe"}, {env.Kernel, chainKernel}, {initrd, chainInitrd}} {
			if err := web.AddFile(f[0], f[1]); err != nil {
				t.Fatal(err)
			}
		}
		dhcp = harness.StartDnsmasq(t, ns, harness.IPXEDnsmasqOptions(base+"/boot.ipxe"))
	case chainUEFIHTTP:
		// Signed with the snakeoil key like the qemu-tests' UKI; the
		// firmware runs with Secure Boot off (OVMF without SMM), so the
		// chain is the same for dracut, whose image is not a UKI's usual
		// payload but boots from one all the same.
		uki := harness.SignedUKI(t, env.ArtifactDir(t), env.Kernel, initrd, args)
		if err := web.AddFile(uki, chainUKI); err != nil {
			t.Fatal(err)
		}
		dhcp = harness.StartDnsmasq(t, ns, harness.HTTPBootDnsmasqOptions(base+"/"+chainUKI))
	default:
		t.Fatalf("unknown chain %q", row.Chain)
	}

	timeout := chainTimeout(row, env.Kernel, initrd)
	opts := harness.PXEBootOptions{Netns: ns, MemoryMiB: img.memMiB, Timeout: timeout}
	var vm *harness.VM
	if row.Chain == chainUEFIHTTP {
		vm = env.BootUEFI(t, opts, harness.UEFI{HTTPOnly: true})
	} else {
		vm = env.BootPXE(t, opts)
	}
	if _, err := vm.WaitFor(kernelLine, timeout); err != nil {
		res.Err = "no kernel: " + firstLine(err.Error())
	} else {
		res.KernelWall = time.Since(vm.Started).Seconds()
		r, err := waitReport(vm, timeout)
		res.Wall = time.Since(vm.Started).Seconds()
		if err != nil {
			res.Err = firstLine(err.Error())
		} else {
			res.Uptime = r.Uptime
		}
	}
	if err := vm.WaitExit(90 * time.Second); err != nil {
		vm.Kill()
	}
	if tftp != "" {
		for _, f := range dhcp.TFTPSent(tftp) {
			if st, err := os.Stat(filepath.Join(tftp, f)); err == nil {
				res.TFTPBytes += st.Size()
			}
		}
	}
	if relay != nil {
		res.TFTPRelayed = relay.Down.Load()
	}
	for _, e := range web.AccessLog() {
		res.HTTPBytes += e.BodyBytes
		if e.Path == "/"+img.name {
			res.ImageBytes += e.BodyBytes
		}
	}
	if res.Err != "" {
		res.Err += " (console: " + vm.ConsolePath + ")"
		t.Logf("console tail:\n%s", harness.Tail(vm.Console(), 40))
	}
	return res
}

// worldReadable returns path, or a copy of it in dir readable by all when it
// is not (rewritten on each call, so it follows the source): dnsmasq's TFTP refuses files that are not world-readable ("cannot
// access ...: Permission denied"), and dracut writes its image 0600.
func worldReadable(path, dir string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if st.Mode().Perm()&0o004 != 0 {
		return path, nil
	}
	cp := filepath.Join(dir, "readable-"+filepath.Base(path))
	return cp, harness.CopyFile(path, cp)
}

var kernelLine = regexp.MustCompile(`Linux version \d`)

// fdiCmdline is the kernel line of the dracut-fdi rows, after the console
// arguments: Foreman's PXE template for the FDI (root=live:/fdi.iso there,
// the ISO inside initrd0.img; here the squashfs, which dracut mounts the
// same way without the ISO layer), with no network in the initramfs.
const fdiCmdline = "root=live:/" + fdiImageName + " rd.live.image rd.live.overlay.overlayfs" +
	" rd.luks=0 rd.md=0 rd.dm=0 rd.lvm=0 rd.bootif=0 rd.neednet=0 " + bootIF

// fdiInitrd writes to out dracut's initramfs followed by an uncompressed
// newc cpio holding the image as /squashfs.img, the way the stock FDI's
// initrd carries its ISO: the kernel unpacks concatenated archives one
// after the other. The cpio starts on a 4-byte boundary (zeros between
// archives are skipped; a header elsewhere is not found). Rewritten each
// call, so it follows its inputs.
func fdiInitrd(dracutImg, image, out string) error {
	initrd, err := os.ReadFile(dracutImg)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(image)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	b.Write(initrd)
	b.Write(make([]byte, (4-len(initrd)%4)%4))
	if err := oneFileCpio(&b, fdiImageName, data, 0o644); err != nil {
		return err
	}
	return os.WriteFile(out, b.Bytes(), 0o644)
}

// chainTimeout bounds one chain boot: the PXE default plus, over TFTP with
// an added RTT, one round trip per 1408-byte block of kernel and initramfs
// (the block size PXELinux asks for; 8 MiB took 22 ms a block at 20 ms),
// doubled for a loaded host.
func chainTimeout(row chainResult, files ...string) time.Duration {
	timeout := harness.DefaultPXEBootTimeout
	if row.Chain == chainUEFIHTTP {
		timeout = max(timeout, harness.DefaultUEFIBootTimeout)
	}
	if row.Chain != chainPXELinux || row.RTT == 0 {
		return timeout + 60*time.Second
	}
	var size int64
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			size += st.Size()
		}
	}
	return timeout + 2*time.Duration(size/1408)*row.RTT
}

// startUDPDelay relays TFTP from chainRelayIP:69 to dnsmasq's on
// harness.ServerIP with rtt added.
func startUDPDelay(t *testing.T, ns *harness.Netns, rtt time.Duration) *udpdelay.Relay {
	t.Helper()
	if !strings.HasPrefix(harness.Bridge1IP, chainRelayIP+"/") {
		t.Fatalf("udp delay: %s is not br1's address (%s)", chainRelayIP, harness.Bridge1IP)
	}
	ln, err := ns.ListenPacket("udp", chainRelayIP+":69")
	if err != nil {
		t.Fatalf("udp delay: %v", err)
	}
	r := &udpdelay.Relay{
		Target: &net.UDPAddr{IP: net.ParseIP(harness.ServerIP), Port: 69},
		RTT:    rtt, Listen: ns.ListenPacket, DownAddr: chainRelayIP + ":0", UpAddr: harness.ServerIP + ":0",
	}
	r.Start(ln)
	t.Cleanup(func() { r.Close() })
	return r
}

// chainTable renders the chains section: power-on to real init in host
// seconds (with its ratios to dracut's and to the stock FDI's through the
// same chain at the same RTT), the guest's uptime, and the bytes over TFTP
// and HTTP.
func chainTable(img image, results []chainResult) string {
	type key struct {
		chain, initramfs string
		rtt              time.Duration
	}
	walls := map[key][]float64{}
	var order []key
	for _, r := range results {
		k := key{r.Chain, r.Initramfs, r.RTT}
		if _, ok := walls[k]; !ok {
			order = append(order, k)
			walls[k] = nil
		}
		if r.Err == "" {
			walls[k] = append(walls[k], r.Wall)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "### Power-on to real init through the boot chains (%s, QEMU -boot n)\n\n", img.name)
	b.WriteString("Wall: host seconds from QEMU's start to the real init's report line; guest: its /proc/uptime then (kernel start to real init).\n\n")
	b.WriteString("dracut-fdi: dracut's initramfs with the image inside the initrd, as Foreman's stock FDI PXE files.\n\n")
	b.WriteString("| chain | initramfs | added RTT | power-on → real init (wall s, median) | runs (wall s) | kernel at (wall s) | real init (guest s) | × dracut | × stock FDI | TFTP bytes | HTTP bytes (image) |\n")
	b.WriteString("|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|\n")
	for _, k := range order {
		var runs []string
		var rs []chainResult
		for _, r := range results {
			if (key{r.Chain, r.Initramfs, r.RTT}) != k {
				continue
			}
			if r.Err != "" {
				runs = append(runs, "fail")
				continue
			}
			runs = append(runs, fmt.Sprintf("%.1f", r.Wall))
			rs = append(rs, r)
		}
		wall, ok := median(walls[k])
		wallS, ratio, ratioFDI, kern, up, tftpS, httpS := "fail", "–", "–", "–", "–", "–", "–"
		if ok {
			wallS = fmt.Sprintf("%.1f", wall)
			if d, ok := median(walls[key{k.chain, dracut, k.rtt}]); ok && d > 0 {
				ratio = fmt.Sprintf("%.2f", wall/d)
			}
			if d, ok := median(walls[key{k.chain, dracutFDI, k.rtt}]); ok && d > 0 {
				ratioFDI = fmt.Sprintf("%.2f", wall/d)
			}
			r := rs[len(rs)/2]
			kern, up = fmt.Sprintf("%.1f", r.KernelWall), fmt.Sprintf("%.2f", r.Uptime)
			tftpS = strconv.FormatInt(r.TFTPBytes, 10)
			httpS = fmt.Sprintf("%d (%d)", r.HTTPBytes, r.ImageBytes)
		}
		fmt.Fprintf(&b, "| %s | %s | %d ms | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			k.chain, k.initramfs, k.rtt.Milliseconds(), wallS, strings.Join(runs, " "), kern, up, ratio, ratioFDI, tftpS, httpS)
	}
	for _, r := range results {
		if r.Err != "" {
			fmt.Fprintf(&b, "\n- %s: %s", r.name(), r.Err)
		}
	}
	b.WriteString("\n")
	return b.String()
}

// TestChainPieces checks the section's parts that need no guest: the RTT
// list, the table's ratio and failure rows, and the readable copy.
func TestChainPieces(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []time.Duration
	}{
		{"0,20,50", []time.Duration{0, 20 * time.Millisecond, 50 * time.Millisecond}},
		{" 5 ,x,-1,", []time.Duration{5 * time.Millisecond}},
	} {
		t.Setenv("STREAMROOT_BENCH_TEST_RTTS", c.in)
		if got := envRTTs("STREAMROOT_BENCH_TEST_RTTS", nil); !slices.Equal(got, c.want) {
			t.Errorf("envRTTs(%q) = %v, want %v", c.in, got, c.want)
		}
	}

	table := chainTable(image{name: "plain.squashfs"}, []chainResult{
		{Chain: chainPXELinux, Initramfs: ours, RTT: 20 * time.Millisecond, Wall: 10, KernelWall: 4, Uptime: 6, TFTPBytes: 100, HTTPBytes: 50, ImageBytes: 40},
		{Chain: chainPXELinux, Initramfs: dracut, RTT: 20 * time.Millisecond, Wall: 40, KernelWall: 10, Uptime: 30, TFTPBytes: 300, HTTPBytes: 70, ImageBytes: 70},
		{Chain: chainPXELinux, Initramfs: dracutFDI, RTT: 20 * time.Millisecond, Wall: 50, KernelWall: 20, Uptime: 30, TFTPBytes: 400},
		{Chain: chainIPXE, Initramfs: ours, Err: "no kernel"},
	})
	for _, want := range []string{
		"| pxelinux-tftp | streamroot | 20 ms | 10.0 | 10.0 | 4.0 | 6.00 | 0.25 | 0.20 | 100 | 50 (40) |\n",
		"| pxelinux-tftp | dracut | 20 ms | 40.0 | 40.0 | 10.0 | 30.00 | 1.00 | 0.80 | 300 | 70 (70) |\n",
		"| pxelinux-tftp | dracut-fdi | 20 ms | 50.0 | 50.0 | 20.0 | 30.00 | 1.25 | 1.00 | 400 | 0 (0) |\n",
		"| ipxe-http | streamroot | 0 ms | fail | fail | – | – | – | – | – | – |\n",
		"- ipxe-http/streamroot/rtt0ms: no kernel",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}

	rows := chainRows([]time.Duration{0, 20 * time.Millisecond})
	var names []string
	for _, r := range rows {
		names = append(names, r.name())
	}
	wantRows := []string{
		"pxelinux-tftp/streamroot/rtt0ms", "pxelinux-tftp/dracut/rtt0ms", "pxelinux-tftp/dracut-fdi/rtt0ms",
		"ipxe-http/streamroot/rtt0ms", "ipxe-http/dracut/rtt0ms", "uefi-http/streamroot/rtt0ms", "uefi-http/dracut/rtt0ms",
	}
	if !slices.Equal(names[:len(wantRows)], wantRows) || len(names) != 2*len(wantRows) {
		t.Errorf("chainRows = %v, want %v for each RTT", names, wantRows)
	}

	dir := t.TempDir()
	// fdiInitrd: dracut's bytes unchanged, then at the next 4-byte boundary
	// a newc archive whose one file is the image.
	for _, n := range []int{8, 9, 10, 11} {
		dimg, image, out := filepath.Join(dir, "dracut.img"), filepath.Join(dir, "plain.squashfs"), filepath.Join(dir, "fdi.img")
		head := bytes.Repeat([]byte{0x1f}, n)
		if err := os.WriteFile(dimg, head, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(image, []byte("hsqs-image"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := fdiInitrd(dimg, image, out); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		at := (n + 3) / 4 * 4
		if !bytes.Equal(b[:n], head) || !bytes.Equal(b[n:at], make([]byte, at-n)) || !bytes.HasPrefix(b[at:], []byte("070701")) {
			t.Fatalf("len %d: %q", n, b[:min(len(b), at+6)])
		}
		recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(b[at:])))
		if err != nil || len(recs) != 1 || recs[0].Name != fdiImageName {
			t.Fatalf("len %d: records %v, %v", n, recs, err)
		}
		if got, _ := io.ReadAll(io.NewSectionReader(recs[0], 0, int64(recs[0].FileSize))); string(got) != "hsqs-image" {
			t.Errorf("len %d: image in the initrd is %q", n, got)
		}
	}

	src := filepath.Join(dir, "initrd")
	if err := os.WriteFile(src, []byte("cpio"), 0o600); err != nil {
		t.Fatal(err)
	}
	cp, err := worldReadable(src, filepath.Join(dir, "out"))
	if err == nil {
		t.Errorf("copied into a missing directory: %s", cp)
	}
	cp, err = worldReadable(src, dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(cp)
	if err != nil || cp == src || st.Mode().Perm() != 0o644 {
		t.Fatalf("copy %s of a 0600 file: %v %v", cp, st, err)
	}
	if b, _ := os.ReadFile(cp); string(b) != "cpio" {
		t.Errorf("copy holds %q", b)
	}
	if got, err := worldReadable(cp, dir); err != nil || got != cp {
		t.Errorf("a readable file was copied: %s %v", got, err)
	}
}
