package builder

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/builder/buildertest"
	"github.com/streamroot/streamroot/internal/wanterr"
	"github.com/u-root/u-root/pkg/cpio"
)

func TestArchiveContents(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(t, dir)
	opts.ManifestDigest = strings.Repeat("ab", 32)
	opts.ImageURL = "http://10.0.0.1/fdi.iso"
	var logs bytes.Buffer
	res, err := Build(opts, testLogger(&logs))
	if err != nil {
		t.Fatal(err)
	}
	a := readArchive(t, opts.Out, "none")
	if res.Size != int64(len(a.raw)) || res.Uncompressed != res.Size {
		t.Errorf("result sizes %d/%d, file %d", res.Size, res.Uncompressed, len(a.raw))
	}

	// Order: sorted, every parent before its children, inodes unique.
	if !slices.IsSortedFunc(a.order, func(x, y string) int {
		if pathLess(x, y) {
			return -1
		}
		return 1
	}) {
		t.Errorf("records not in path order: %v", a.order)
	}
	seenIno := make(map[uint64]string)
	for i, n := range a.order {
		r := a.recs[n]
		if d := filepath.Dir(n); d != "." {
			if j := slices.Index(a.order, d); j < 0 || j > i {
				t.Errorf("%s comes before its parent %s", n, d)
			}
		}
		if r.MTime != 0 || r.UID != 0 || r.GID != 0 {
			t.Errorf("%s: mtime %d uid %d gid %d, want 0", n, r.MTime, r.UID, r.GID)
		}
		if r.Ino == 0 || seenIno[r.Ino] != "" {
			t.Errorf("%s: inode %d zero or shared with %s", n, r.Ino, seenIno[r.Ino])
		}
		seenIno[r.Ino] = n
		if r.Mode&cpio.S_IFMT != cpio.S_IFDIR && r.NLink != 1 {
			t.Errorf("%s: nlink %d", n, r.NLink)
		}
	}
	if !bytes.Contains(a.raw[len(a.raw)-512:], []byte(cpio.Trailer)) {
		t.Error("no trailer at the end of the archive")
	}

	for _, d := range baseDirs {
		d = strings.TrimPrefix(d, "/")
		if r, ok := a.recs[d]; !ok || r.Mode != cpio.S_IFDIR|0o755 {
			t.Errorf("%s: mode %#o present %v, want dir 0755", d, r.Mode, ok)
		}
	}
	if n := a.recs["lib"].NLink; n != 3 { // lib/modules is its only subdirectory
		t.Errorf("lib nlink = %d, want 3", n)
	}

	for _, tc := range []struct {
		name         string
		mode         uint64
		rmaj, rmin   uint64
		content      []byte
		checkContent bool
	}{
		{name: "dev/console", mode: cpio.S_IFCHR | 0o600, rmaj: 5, rmin: 1},
		{name: "dev/null", mode: cpio.S_IFCHR | 0o666, rmaj: 1, rmin: 3},
		{name: "init", mode: cpio.S_IFREG | 0o755, content: buildertest.ELF("", "init"), checkContent: true},
		{name: "bin/busybox", mode: cpio.S_IFREG | 0o755, content: buildertest.ELF("", "busybox"), checkContent: true},
		{name: "bin/sh", mode: cpio.S_IFLNK | 0o777, content: []byte("busybox"), checkContent: true},
		{name: "sbin/modprobe", mode: cpio.S_IFLNK | 0o777, content: []byte("../bin/busybox"), checkContent: true},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: cpio.S_IFREG | 0o644},
		{name: "etc/streamroot/manifest.sha256", mode: cpio.S_IFREG | 0o644, content: []byte(opts.ManifestDigest + "\n"), checkContent: true},
		{name: "etc/streamroot/image-url", mode: cpio.S_IFREG | 0o644, content: []byte("http://10.0.0.1/fdi.iso\n"), checkContent: true},
		{name: "lib/modules/" + testKver + "/kernel/fs/squashfs/squashfs.ko", mode: cpio.S_IFREG | 0o644,
			content: signedModuleBody("squashfs"), checkContent: true}, // .ko.xz decompressed, signature byte for byte

		{name: "lib/modules/" + testKver + "/kernel/drivers/net/virtio_net.ko", mode: cpio.S_IFREG | 0o644,
			content: signedModuleBody("virtio_net"), checkContent: true},
	} {
		r, ok := a.recs[tc.name]
		if !ok {
			t.Errorf("%s missing", tc.name)
			continue
		}
		if r.Mode != tc.mode || r.Rmajor != tc.rmaj || r.Rminor != tc.rmin {
			t.Errorf("%s: mode %#o dev %d:%d, want %#o %d:%d", tc.name, r.Mode, r.Rmajor, r.Rminor, tc.mode, tc.rmaj, tc.rmin)
		}
		if got := a.content(t, tc.name); tc.checkContent && !bytes.Equal(got, tc.content) {
			t.Errorf("%s: content %q, want %q", tc.name, got, tc.content)
		}
	}
	for _, applet := range []string{"sh", "ls", "cat", "ip", "dmesg", "mount", "umount", "ps", "mkdir", "rm", "cp", "mv", "ln",
		"echo", "grep", "sed", "vi", "less", "free", "df", "ping", "wget", "sha256sum", "switch_root", "reboot",
		"poweroff", "halt", "sync", "sleep"} {
		if r, ok := a.recs["bin/"+applet]; !ok || r.Mode != cpio.S_IFLNK|0o777 || string(a.content(t, "bin/"+applet)) != "busybox" {
			t.Errorf("bin/%s is not a link to busybox", applet)
		}
	}

	cert, _ := os.ReadFile(opts.CA)
	if got := a.content(t, "etc/ssl/certs/ca-certificates.crt"); !bytes.Equal(got, cert) {
		t.Errorf("CA bundle differs from %s", opts.CA)
	}

	checkModuleIndex(t, a, testKver)
	dep := string(a.content(t, "lib/modules/"+testKver+"/modules.dep"))
	if !strings.Contains(dep, "kernel/fs/squashfs/squashfs.ko:\n") || !strings.Contains(dep, "e1000.ko") {
		t.Errorf("modules.dep:\n%s", dep)
	}
	if _, ok := a.recs["lib/modules/"+testKver+"/kernel/crypto/crc32c_generic.ko"]; !ok {
		t.Error("ext4's softdep crypto-crc32c did not bring crc32c_generic")
	}
	if !strings.Contains(string(a.content(t, "lib/modules/"+testKver+"/modules.builtin")), "af_packet.ko") {
		t.Error("modules.builtin not copied")
	}

	var info buildInfo
	if err := json.Unmarshal(a.content(t, "etc/streamroot/build.json"), &info); err != nil {
		t.Fatal(err)
	}
	want := buildInfo{
		KVer:          testKver,
		Compress:      "none",
		NICDrivers:    []string{"virtio_net", "e1000"},
		Modules:       []string{"crc32c_generic", "e1000", "ext4", "jbd2", "squashfs", "virtio", "virtio_net", "virtio_pci"},
		SignedModules: 2,
		Builtin:       []string{"af_packet", "loop"},
		Shell:         true,
	}
	if !reflect.DeepEqual(info, want) {
		t.Errorf("build.json = %+v\nwant %+v", info, want)
	}
	if res.Modules != len(want.Modules) || res.SignedModules != 2 {
		t.Errorf("result modules = %d, signed %d; want %d, 2 signed", res.Modules, res.SignedModules, len(want.Modules))
	}
	if s := res.Summary(); !strings.Contains(s, " 8 modules (2 signed), ") {
		t.Errorf("the summary does not say how many modules are signed: %q", s)
	}
	if !strings.Contains(logs.String(), "nosuchnic") {
		t.Errorf("no warning about the missing NIC driver in:\n%s", logs.String())
	}
}

func TestReproducible(t *testing.T) {
	for _, kind := range compressions {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			opts := testOptions(t, dir)
			opts.Compress = kind
			var outs [][]byte
			for i := range 2 {
				opts.Out = filepath.Join(dir, "out", kind+string(rune('a'+i)))
				// Host metadata of the inputs must not leak into the
				// image: give the second build different file times.
				mt := time.Unix(int64(1e9+i*12345), 0)
				for _, p := range []string{opts.Init, opts.Shell, opts.CA, filepath.Join(opts.ModDir, "modules.dep")} {
					if err := os.Chtimes(p, mt, mt); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := Build(opts, testLogger(new(bytes.Buffer))); err != nil {
					t.Fatal(err)
				}
				b, err := os.ReadFile(opts.Out)
				if err != nil {
					t.Fatal(err)
				}
				outs = append(outs, b)
			}
			if !bytes.Equal(outs[0], outs[1]) {
				t.Fatalf("two builds differ (%d vs %d bytes)", len(outs[0]), len(outs[1]))
			}
			a := readArchive(t, opts.Out, kind)
			if _, ok := a.recs["init"]; !ok {
				t.Error("no init after decompression")
			}
		})
	}
}

func TestCompressionHeaders(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(t, dir)
	for _, tc := range []struct {
		kind  string
		check func(b []byte) string
	}{
		{"xz", func(b []byte) string {
			// Stream header: magic, then flags 0x00 <check>; the kernel
			// accepts check 0x00 (none) and 0x01 (CRC32) only.
			if !bytes.HasPrefix(b, []byte{0xfd, '7', 'z', 'X', 'Z', 0}) || b[6] != 0 || b[7] != 0x01 {
				return "xz stream flags are not CRC32"
			}
			// The footer repeats the flags.
			if f := b[len(b)-12:]; f[8] != 0 || f[9] != 0x01 || string(f[10:]) != "YZ" {
				return "xz stream footer flags are not CRC32"
			}
			return ""
		}},
		{"gzip", func(b []byte) string {
			// ID1 ID2 CM FLG MTIME(4): no FNAME flag, zero mtime.
			if b[0] != 0x1f || b[1] != 0x8b || b[3]&0x08 != 0 || !bytes.Equal(b[4:8], []byte{0, 0, 0, 0}) {
				return "gzip header carries a name or an mtime"
			}
			return ""
		}},
		{"zstd", func(b []byte) string {
			if !bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
				return "no zstd magic"
			}
			return ""
		}},
		{"zstd:fastest", func(b []byte) string {
			// Frame header descriptor: bit 2 is the content checksum the
			// kernel verifies, at every level.
			if !bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}) || b[4]&0x04 == 0 {
				return "no zstd magic or no content checksum"
			}
			return ""
		}},
		{"lz4", func(b []byte) string {
			// The legacy magic 0x184C2102, the only lz4 frame the
			// kernel's unlz4 accepts, then a first chunk length.
			if !bytes.HasPrefix(b, []byte{0x02, 0x21, 0x4c, 0x18}) || len(b) < 8 {
				return "no lz4 legacy magic"
			}
			return ""
		}},
	} {
		opts.Compress = tc.kind
		opts.Out = filepath.Join(dir, "out", tc.kind)
		if _, err := Build(opts, testLogger(new(bytes.Buffer))); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(opts.Out)
		if err != nil {
			t.Fatal(err)
		}
		if msg := tc.check(b); msg != "" {
			t.Errorf("%s: %s (header % x)", tc.kind, msg, b[:16])
		}
	}
}

func TestSourceDateEpoch(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(t, dir)
	opts.MTime = 1700000000
	if _, err := Build(opts, testLogger(new(bytes.Buffer))); err != nil {
		t.Fatal(err)
	}
	a := readArchive(t, opts.Out, "none")
	for _, n := range a.order {
		if a.recs[n].MTime != opts.MTime {
			t.Errorf("%s: mtime %d", n, a.recs[n].MTime)
		}
	}
}

func TestBuildErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mod     func(t *testing.T, o *Options)
		wantErr string // "" means the build must succeed
	}{
		{name: "missing NIC skipped", mod: func(t *testing.T, o *Options) { o.NIC = []string{"nosuch", "virtio-net"} }},
		{name: "builtin NIC is found", mod: func(t *testing.T, o *Options) { o.NIC = []string{"af_packet"} }},
		{name: "no NIC at all", mod: func(t *testing.T, o *Options) { o.NIC = []string{"nosuch1", "nosuch2"} }, wantErr: "none of"},
		{name: "no NIC requested", mod: func(t *testing.T, o *Options) { o.NIC = nil }},
		{name: "unknown module", mod: func(t *testing.T, o *Options) { o.Modules = []string{"squashfs", "nosuchfs"} }, wantErr: `"nosuchfs" is neither`},
		{name: "module by alias", mod: func(t *testing.T, o *Options) { o.Modules = []string{"crypto-crc32c", "block-major-7-0"} }},
		{name: "no modules at all", mod: func(t *testing.T, o *Options) { o.NoModules, o.ModDir, o.KVer = true, "", "" }},
		{name: "dynamic init", mod: func(t *testing.T, o *Options) {
			o.Init = buildertest.WriteFile(t, o.Init+"-dyn", buildertest.ELF("/lib64/ld-linux-x86-64.so.2", "x"))
		}, wantErr: "dynamically linked (interpreter /lib64/ld-linux-x86-64.so.2)"},
		{name: "dynamic busybox", mod: func(t *testing.T, o *Options) {
			o.Shell = buildertest.WriteFile(t, o.Shell+"-dyn", buildertest.ELF("/lib/ld-musl-x86_64.so.1", "x"))
		}, wantErr: "busybox-dyn is dynamically linked (interpreter /lib/ld-musl-x86_64.so.1)"},
		{name: "script init", mod: func(t *testing.T, o *Options) {
			o.Init = buildertest.WriteFile(t, o.Init+"-sh", []byte("#!/bin/sh\nexec sh\n"))
		}, wantErr: "not an ELF"},
		{name: "no shell", mod: func(t *testing.T, o *Options) { o.Shell = "" }},
		{name: "missing CA bundle", mod: func(t *testing.T, o *Options) { o.CA = o.CA + "-missing" }, wantErr: "-ca none"},
		{name: "extra CA", mod: func(t *testing.T, o *Options) {
			c, _ := testCertPEM(t)
			o.ExtraCA = []string{buildertest.WriteFile(t, o.CA+"-extra", c)}
		}},
		{name: "extra CA only", mod: func(t *testing.T, o *Options) {
			c, _ := testCertPEM(t)
			o.CA, o.ExtraCA = "", []string{buildertest.WriteFile(t, o.CA+"-extra", c)}
		}},
		{name: "extra CA empty", mod: func(t *testing.T, o *Options) {
			o.ExtraCA = []string{buildertest.WriteFile(t, o.CA+"-empty", []byte("nothing here\n"))}
		}, wantErr: "no PEM certificate"},
		{name: "extra CA with a key", mod: func(t *testing.T, o *Options) {
			c, k := testCertPEM(t)
			o.ExtraCA = []string{buildertest.WriteFile(t, o.CA+"-key", append(c, k...))}
		}, wantErr: `"EC PRIVATE KEY", not CERTIFICATE`},
		{name: "extra CA corrupt", mod: func(t *testing.T, o *Options) {
			o.ExtraCA = []string{buildertest.WriteFile(t, o.CA+"-bad", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))}
		}, wantErr: "do not parse"},
		{name: "no modules.dep", mod: func(t *testing.T, o *Options) {
			if err := os.Remove(filepath.Join(o.ModDir, "modules.dep")); err != nil {
				t.Fatal(err)
			}
		}, wantErr: "depmod -b "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := testOptions(t, dir)
			tc.mod(t, &opts)
			_, err := Build(opts, testLogger(new(bytes.Buffer)))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error = %v, want %q", err, tc.wantErr)
			case tc.wantErr != "":
				if _, serr := os.Stat(opts.Out); serr == nil {
					t.Error("failed build left an output file")
				}
				if ents, _ := os.ReadDir(filepath.Dir(opts.Out)); len(ents) > 0 {
					t.Errorf("failed build left %d files in the output directory", len(ents))
				}
			}
		})
	}
}

func TestExtraCAAppended(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(t, dir)
	c, _ := testCertPEM(t)
	opts.ExtraCA = []string{buildertest.WriteFile(t, filepath.Join(dir, "extra.pem"), c)}
	if _, err := Build(opts, testLogger(new(bytes.Buffer))); err != nil {
		t.Fatal(err)
	}
	base, _ := os.ReadFile(opts.CA)
	got := readArchive(t, opts.Out, "none").content(t, "etc/ssl/certs/ca-certificates.crt")
	if !bytes.Equal(got, append(base, c...)) {
		t.Errorf("bundle is not base + extra")
	}
}

func TestParseFlags(t *testing.T) {
	env := func(m map[string]string) func(string) string {
		return func(k string) string { return m[k] }
	}
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, o Options)
	}{
		{name: "defaults from moddir", args: []string{"-init", "i", "-moddir", "/x/lib/modules/6.1.0-9-amd64/", "-o", "out"},
			check: func(t *testing.T, o Options) {
				if o.KVer != "6.1.0-9-amd64" || o.Compress != "zstd" || o.Shell != "/bin/busybox" || o.CA != CABundlePath || o.MTime != 0 {
					t.Errorf("%+v", o)
				}
				if len(o.NIC) != 16 || o.NIC[0] != "virtio_net" || !slices.Contains(o.Modules, "virtio_rng") {
					t.Errorf("nic %v modules %v", o.NIC, o.Modules)
				}
			}},
		{name: "kver only", args: []string{"-init", "i", "-kver", "6.2", "-o", "out"},
			check: func(t *testing.T, o Options) {
				if o.ModDir != "/lib/modules/6.2" {
					t.Errorf("moddir %q", o.ModDir)
				}
			}},
		{name: "no modules", args: []string{"-init", "i", "-modules", "none", "-shell", "none", "-ca", "none", "-o", "out"},
			check: func(t *testing.T, o Options) {
				if !o.NoModules || o.Shell != "" || o.CA != "" || o.NIC != nil {
					t.Errorf("%+v", o)
				}
			}},
		{name: "lists deduplicated", args: []string{"-init", "i", "-kver", "k", "-nic", "virtio-net, virtio_net,,e1000", "-modules", "", "-extra-ca", "a.pem,b.pem", "-o", "out"},
			check: func(t *testing.T, o Options) {
				if !reflect.DeepEqual(o.NIC, []string{"virtio-net", "e1000"}) || o.Modules != nil || len(o.ExtraCA) != 2 {
					t.Errorf("nic %q modules %q extra %q", o.NIC, o.Modules, o.ExtraCA)
				}
			}},
		{name: "nic none", args: []string{"-init", "i", "-kver", "k", "-nic", "none", "-o", "out"},
			check: func(t *testing.T, o Options) {
				if o.NIC != nil {
					t.Errorf("nic %v", o.NIC)
				}
			}},
		{name: "manifest digest", args: []string{"-init", "i", "-kver", "k", "-manifest-digest", "sha256:" + strings.Repeat("AB", 32), "-o", "out"},
			check: func(t *testing.T, o Options) {
				if o.ManifestDigest != strings.Repeat("ab", 32) {
					t.Errorf("digest %q", o.ManifestDigest)
				}
			}},
		{name: "source date epoch", args: []string{"-init", "i", "-kver", "k", "-o", "out"}, env: map[string]string{"SOURCE_DATE_EPOCH": "1700000000"},
			check: func(t *testing.T, o Options) {
				if o.MTime != 1700000000 {
					t.Errorf("mtime %d", o.MTime)
				}
			}},
		{name: "bad epoch", args: []string{"-init", "i", "-kver", "k", "-o", "out"}, env: map[string]string{"SOURCE_DATE_EPOCH": "yesterday"}, wantErr: "SOURCE_DATE_EPOCH"},
		{name: "no init", args: []string{"-kver", "k", "-o", "out"}, wantErr: "-init is required"},
		{name: "no output", args: []string{"-init", "i", "-kver", "k"}, wantErr: "-o is required"},
		{name: "no kernel", args: []string{"-init", "i", "-o", "out"}, wantErr: "-moddir or -kver"},
		{name: "bad compression", args: []string{"-init", "i", "-kver", "k", "-compress", "lzo", "-o", "out"}, wantErr: "unknown compression"},
		{name: "bad zstd level", args: []string{"-init", "i", "-kver", "k", "-compress", "zstd:19", "-o", "out"}, wantErr: "unknown compression"},
		{name: "zstd level", args: []string{"-init", "i", "-kver", "k", "-compress", "zstd:fastest", "-o", "out"},
			check: func(t *testing.T, o Options) {
				if o.Compress != "zstd:fastest" {
					t.Errorf("compress %q", o.Compress)
				}
			}},
		{name: "short digest", args: []string{"-init", "i", "-kver", "k", "-manifest-digest", "abcd", "-o", "out"}, wantErr: "64 hex digits"},
		{name: "stray argument", args: []string{"-init", "i", "-kver", "k", "-o", "out", "extra"}, wantErr: "unexpected arguments"},
		{name: "bad kver", args: []string{"-init", "i", "-kver", "../x", "-o", "out"}, wantErr: "not a kernel version"},
		{name: "image url", args: []string{"-init", "i", "-kver", "k", "-image-url", "https://boot.example/fdi.iso", "-o", "out"},
			check: func(t *testing.T, o Options) {
				if o.ImageURL != "https://boot.example/fdi.iso" {
					t.Errorf("image url %q", o.ImageURL)
				}
			}},
		{name: "image url scheme", args: []string{"-init", "i", "-kver", "k", "-image-url", "/fdi.iso", "-o", "out"}, wantErr: "http:// or https://"},
		{name: "image url space", args: []string{"-init", "i", "-kver", "k", "-image-url", "http://x/a b", "-o", "out"}, wantErr: "spaces"},
		{name: "image url host", args: []string{"-init", "i", "-kver", "k", "-image-url", "http:///x", "-o", "out"}, wantErr: "no host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, _, err := ParseFlags(tc.args, env(tc.env), new(bytes.Buffer))
			if wanterr.Check(t, err, tc.wantErr) {
				return
			}
			tc.check(t, o)
		})
	}
}

func TestImagePaths(t *testing.T) {
	im := newImage()
	if err := im.file("/a/b/c", 0o644, nil); err != nil {
		t.Fatal(err)
	}
	if err := im.file("a/b/c", 0o644, nil); err == nil {
		t.Error("same path added twice without error")
	}
	if err := im.file("/a/b/c/d", 0o644, nil); err == nil {
		t.Error("file under a file accepted")
	}
	for _, bad := range []string{"/", "", "..", "/../"} {
		if err := im.file(bad, 0o644, nil); err == nil {
			t.Errorf("path %q accepted", bad)
		}
	}
	if err := im.file("../../escape", 0o644, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := im.lookup("escape"); !ok {
		t.Error("../../escape not cleaned to escape")
	}
	got := []string{"a-b", "a/b", "a", "a.b/c", "a/b/c", "b"}
	slices.SortFunc(got, func(x, y string) int {
		if pathLess(x, y) {
			return -1
		}
		if pathLess(y, x) {
			return 1
		}
		return 0
	})
	if want := []string{"a", "a/b", "a/b/c", "a-b", "a.b/c", "b"}; !reflect.DeepEqual(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
}

// "zstd" is "zstd:best", byte for byte; the levels reach the encoder.
func TestZstdLevels(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(t, dir)
	opts.Compress = "none"
	opts.Out = filepath.Join(dir, "out", "none")
	if _, err := Build(opts, testLogger(new(bytes.Buffer))); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(opts.Out)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, kind := range []string{"zstd", "zstd:best", "zstd:fastest"} {
		var b bytes.Buffer
		zw, err := NewCompressor(kind, &b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := zw.Write(raw); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		out[kind] = b.Bytes()
	}
	if !bytes.Equal(out["zstd"], out["zstd:best"]) {
		t.Error("zstd and zstd:best differ")
	}
	if bytes.Equal(out["zstd:fastest"], out["zstd:best"]) {
		t.Errorf("zstd:fastest and zstd:best are the same %d bytes", len(out["zstd:best"]))
	}
}
