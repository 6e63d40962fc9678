package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// helpFlags runs "<cmd> --help" and returns its usage text (before the
// flag list) and the names of the flags the command defines.
func helpFlags(t *testing.T, cmd string) (string, []string) {
	t.Helper()
	code, out, errs := runCmd(t, cmd, "--help")
	if code != 0 {
		t.Fatalf("%s --help: exit %d: %s", cmd, code, errs)
	}
	usage, list, ok := strings.Cut(out, "\nFlags (one or two dashes):\n")
	if !ok {
		t.Fatalf("%s --help has no flag list:\n%s", cmd, out)
	}
	var flags []string
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z][a-z0-9-]*)`).FindAllStringSubmatch(list, -1) {
		flags = append(flags, m[1])
	}
	return usage, flags
}

// docSection is the text of "## <name>" in docs/cli.md, up to the next
// section.
func docSection(t *testing.T, doc, name string) string {
	t.Helper()
	_, rest, ok := strings.Cut(doc, "\n## "+name+"\n")
	if !ok {
		t.Fatalf("docs/cli.md has no section %q", "## "+name)
	}
	if i := strings.Index(rest, "\n## "); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

var flagMention = regexp.MustCompile(`(?:^|[\s\[|(` + "`" + `])--?([a-z][a-z0-9-]*)`)

func mentioned(text string) []string {
	var names []string
	for _, m := range flagMention.FindAllStringSubmatch(text, -1) {
		names = append(names, m[1])
	}
	return names
}

// TestDocsMatchFlags keeps docs/cli.md in step with the flags each
// subcommand defines, as TestReference keeps the kernel-argument
// reference: every flag is in the command's usage line and in its
// section of the docs, the docs' synopsis is the usage line, and neither
// names a flag that does not exist.
func TestDocsMatchFlags(t *testing.T) {
	raw, err := os.ReadFile("../../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	for _, c := range commands() {
		if c.name == "version" {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			usage, flags := helpFlags(t, c.name)
			synopsis, _, _ := strings.Cut(usage, "\n\n")
			sec := docSection(t, doc, c.name)
			_, block, ok := strings.Cut(sec, "```\n")
			if !ok {
				t.Fatalf("## %s has no synopsis block", c.name)
			}
			block, _, _ = strings.Cut(block, "```")
			norm := func(s string) string { return strings.Join(strings.Fields(strings.ReplaceAll(s, "Usage:", "")), " ") }
			if norm(block) != norm(synopsis) {
				t.Errorf("docs/cli.md synopsis\n%s\ndiffers from the usage line\n%s", block, synopsis)
			}
			for _, f := range flags {
				if !slices.Contains(mentioned(synopsis), f) {
					t.Errorf("flag -%s is not in the usage line:\n%s", f, synopsis)
				}
				if !slices.Contains(mentioned(sec), f) {
					t.Errorf("flag -%s is not in docs/cli.md's ## %s", f, c.name)
				}
			}
			for _, f := range mentioned(synopsis) {
				if !slices.Contains(flags, f) {
					t.Errorf("the usage line names -%s, which %s does not define", f, c.name)
				}
			}
		})
	}
}

// TestReadmePXEEntry: the README's PXELinux entry is the one pxe prints,
// with the same names for the kernel and the initramfs.
func TestReadmePXEEntry(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, entry, ok := strings.Cut(string(raw), "```\nLABEL discovery_http\n")
	if !ok {
		t.Fatal("README.md has no LABEL discovery_http block")
	}
	entry, _, _ = strings.Cut(entry, "```")
	entry = "LABEL discovery_http\n" + entry
	code, out, errs := runCmd(t, "pxe", "--foreman", "--foreman-url", "https://FOREMAN_SERVER", "--server", "http://SOME_HTTP_SERVER", "--image", "squashfs.img")
	if code != 0 {
		t.Fatal(errs)
	}
	if out != entry {
		t.Errorf("README.md's entry\n%s\nis not what pxe --foreman prints\n%s", entry, out)
	}
}

// TestMakeManifestDigest: make initramfs takes the digest docs/cli.md
// shows, IMAGE_MANIFEST_DIGEST=sha256:..., and hands it to the builder
// (which checks its form), rather than ignoring it and building an
// initramfs with no pin.
func TestMakeManifestDigest(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	digest := "sha256:" + strings.Repeat("ab", 32)
	cmd := exec.Command("make", "-n", "--no-print-directory", "initramfs", "KVER=test", "IMAGE_MANIFEST_DIGEST="+digest)
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n initramfs: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "-manifest-digest '"+digest+"'") {
		t.Errorf("make initramfs does not pass IMAGE_MANIFEST_DIGEST to the builder:\n%s", out)
	}
	raw, err := os.ReadFile("../../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), "make initramfs IMAGE_MANIFEST_DIGEST=sha256:") {
		t.Error("docs/cli.md no longer shows IMAGE_MANIFEST_DIGEST: update this test with it")
	}
}

// TestReadmeFDIEntry: the Foreman template entry in the README and in
// docs/fdi.md loads the very files publish lays out and names in its own
// PXELinux entry, so the docs' promise (replace two files, keep the
// template) is what the command does.
func TestReadmeFDIEntry(t *testing.T) {
	dir, iso := publishISO(t)
	tftp := filepath.Join(dir, "tftp")
	code, out, errs := publishRun(t, dir, iso, "--tftp-root", tftp, "--http-root", filepath.Join(dir, "http"),
		"--server", "http://SOME_HTTP_SERVER", "--no-check")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	m := regexp.MustCompile(`(?m)^KERNEL (\S+)\nAPPEND initrd=(\S+) `).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("publish printed no PXELinux KERNEL/APPEND lines:\n%s", out)
	}
	for _, f := range m[1:] {
		if _, err := os.Stat(filepath.Join(tftp, f)); err != nil {
			t.Errorf("publish's entry names %s, which it did not lay out under the TFTP root: %v", f, err)
		}
	}
	entry := regexp.MustCompile(`(?m)^\s*LABEL discovery\n\s*MENU LABEL .*\n\s*KERNEL (\S+)\n\s*APPEND initrd=(\S+) (.*)\n\s*IPAPPEND 2$`)
	for _, doc := range []string{"../../README.md", "../../docs/fdi.md"} {
		raw, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		d := entry.FindStringSubmatch(string(raw))
		if d == nil {
			t.Errorf("%s has no Foreman template entry (LABEL discovery)", doc)
			continue
		}
		if d[1] != m[1] || d[2] != m[2] {
			t.Errorf("%s's template loads %s and %s; publish lays out %s and %s", doc, d[1], d[2], m[1], m[2])
		}
		if !strings.Contains(" "+d[3]+" ", " root=live:/fdi.iso ") {
			t.Errorf("%s's template entry is not Foreman's root=live:/fdi.iso line: %s", doc, d[3])
		}
	}
}
