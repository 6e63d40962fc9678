package rpm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/streamroot/streamroot/pkg/rpm/rpmtest"
)

func testFiles() []rpmtest.File {
	return []rpmtest.File{
		{Name: "./lib/modules/5.14.0-1.el9.x86_64", Dir: true},
		{Name: "./lib/modules/5.14.0-1.el9.x86_64/vmlinuz", Data: []byte("bzImage!")},
		{Name: "./lib/modules/5.14.0-1.el9.x86_64/kernel/a.ko.xz", Data: []byte("odd")},
	}
}

func walkAll(r io.Reader) (string, error) {
	var sb strings.Builder
	err := Walk(r, func(f File, body io.Reader) error {
		b, err := io.ReadAll(body)
		fmt.Fprintf(&sb, "%s %o %d %q\n", f.Name, f.Mode, f.Size, b)
		return err
	})
	return sb.String(), err
}

func TestWalk(t *testing.T) {
	want := `./lib/modules/5.14.0-1.el9.x86_64 40755 0 ""
./lib/modules/5.14.0-1.el9.x86_64/vmlinuz 100644 8 "bzImage!"
./lib/modules/5.14.0-1.el9.x86_64/kernel/a.ko.xz 100644 3 "odd"
`
	for _, suffix := range []string{"", ".xz", ".zst", ".gz"} {
		t.Run("payload"+suffix, func(t *testing.T) {
			b, err := rpmtest.Build(suffix, testFiles())
			if err != nil {
				t.Fatal(err)
			}
			got, err := walkAll(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("entries:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestWalkErrors(t *testing.T) {
	good, err := rpmtest.Build(".xz", testFiles())
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := rpmtest.Build("", testFiles())
	stop := errors.New("stop")
	badMagic := bytes.Clone(plain)
	badMagic[bytes.Index(badMagic, []byte("070701"))+5] = '7'
	for name, tc := range map[string]struct {
		in   []byte
		fn   func(File, io.Reader) error
		want error
	}{
		"empty":          {nil, nil, ErrNotRPM},
		"a deb":          {[]byte("!<arch>\n" + strings.Repeat(" ", 100)), nil, ErrNotRPM},
		"no header":      {good[:96+8], nil, ErrNotRPM},
		"truncated":      {good[:len(good)-30], nil, nil},
		"cpio magic":     {badMagic, nil, nil},
		"callback error": {good, func(File, io.Reader) error { return stop }, stop},
		"no payload":     {good[:bytes.Index(good, []byte("\xfd7zXZ"))], nil, nil},
	} {
		t.Run(name, func(t *testing.T) {
			fn := tc.fn
			if fn == nil {
				fn = func(_ File, b io.Reader) error { _, err := io.Copy(io.Discard, b); return err }
			}
			err := Walk(bytes.NewReader(tc.in), fn)
			if err == nil {
				t.Fatal("Walk succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
		})
	}
}

// FuzzWalk: a package from anywhere gives entries or an error.
func FuzzWalk(f *testing.F) {
	for _, s := range []string{"", ".gz"} {
		b, err := rpmtest.Build(s, testFiles())
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = Walk(bytes.NewReader(b), func(_ File, body io.Reader) error {
			_, err := io.Copy(io.Discard, io.LimitReader(body, 1<<20))
			return err
		})
	})
}
