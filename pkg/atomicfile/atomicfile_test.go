package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.img")
	dir := filepath.Dir(p)
	if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		fill    func(io.Writer) error
		wantErr bool
		want    string
	}{
		{"replaces", func(w io.Writer) error { _, err := io.WriteString(w, "new"); return err }, false, "new"},
		{"a failing fill keeps the old file", func(w io.Writer) error {
			io.WriteString(w, "partial")
			return errors.New("source went away")
		}, true, "new"},
	} {
		err := Write(p, 0o644, tc.fill)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: err = %v", tc.name, err)
		}
		b, rerr := os.ReadFile(p)
		if rerr != nil || string(b) != tc.want {
			t.Errorf("%s: content %q, %v; want %q", tc.name, b, rerr, tc.want)
		}
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("mode = %v, %v; want 0644", st.Mode(), err)
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 1 {
		t.Errorf("temporary files left behind: %v", left)
	}
	if err := Write(filepath.Join(dir, "no", "such", "dir"), 0o644, func(io.Writer) error { return nil }); err == nil {
		t.Error("Write into a missing directory succeeded")
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key")
	for _, tc := range []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{"creates", []byte("first\n"), 0o600},
		{"replaces, with the new mode", []byte("second, longer\n"), 0o644},
		{"empty", nil, 0o644},
	} {
		if err := WriteFile(p, tc.data, tc.perm); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		b, err := os.ReadFile(p)
		if err != nil || string(b) != string(tc.data) {
			t.Errorf("%s: content %q, %v; want %q", tc.name, b, err, tc.data)
		}
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != tc.perm {
			t.Errorf("%s: mode %v, want %v", tc.name, st.Mode().Perm(), tc.perm)
		}
	}
	if left, _ := os.ReadDir(dir); len(left) != 1 {
		t.Errorf("temporary files left behind: %v", left)
	}
	if err := WriteFile(filepath.Join(dir, "no", "such", "dir"), []byte("x"), 0o644); err == nil {
		t.Error("WriteFile into a missing directory succeeded")
	}
}
