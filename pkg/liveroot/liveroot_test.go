package liveroot

import (
	"os"
	"path/filepath"
	"testing"
)

func TestFindInit(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "usr/lib/systemd"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "sbin"), 0o755))
	must(os.WriteFile(filepath.Join(root, "usr/lib/systemd/systemd"), []byte("x"), 0o755))
	// An absolute link must resolve inside root, not in the initramfs.
	must(os.Symlink("/usr/lib/systemd/systemd", filepath.Join(root, "sbin/init")))
	must(os.Symlink("../nowhere", filepath.Join(root, "sbin/dangling")))
	must(os.WriteFile(filepath.Join(root, "sbin/noexec"), []byte("x"), 0o644))

	for _, tc := range []struct {
		cands []string
		want  string
	}{
		{[]string{"/sbin/init"}, "/sbin/init"},
		{[]string{"", "/sbin/dangling", "/sbin/noexec", "/sbin/init"}, "/sbin/init"},
		{[]string{"/bin/none"}, ""},
	} {
		got, err := FindInit(root, tc.cands...)
		if got != tc.want || (tc.want == "") != (err != nil) {
			t.Errorf("FindInit(%v) = %q, %v; want %q", tc.cands, got, err, tc.want)
		}
	}
}
