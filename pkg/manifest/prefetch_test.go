package manifest

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/streamroot/streamroot/internal/testimg"
)

// v2 is a four-chunk manifest with the given prefetch line value.
func v2(t *testing.T, list string) []byte {
	t.Helper()
	m, err := Build(bytes.NewReader(testimg.Random(3*MinChunk+7, 1)), 3*MinChunk+7, MinChunk)
	if err != nil {
		t.Fatal(err)
	}
	v1 := string(m.Marshal())
	_, rest, _ := strings.Cut(v1, "\nsize ")
	lines := strings.SplitN("size "+rest, "\n", 4)
	return []byte(HeaderV2 + "\n" + lines[0] + "\n" + lines[1] + "\n" + lines[2] + "\nprefetch " + list + "\n" + lines[3])
}

func TestPrefetchRoundTrip(t *testing.T) {
	data := v2(t, "3,0,2")
	m, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.Prefetch, []int{3, 0, 2}) {
		t.Fatalf("prefetch %v", m.Prefetch)
	}
	if !bytes.Equal(m.Marshal(), data) {
		t.Fatalf("v2 does not marshal back byte for byte")
	}
	// Without the list the same manifest is version 1 again.
	m.Prefetch = nil
	out := m.Marshal()
	if !bytes.HasPrefix(out, []byte(Header+"\n")) || bytes.Contains(out, []byte("prefetch")) {
		t.Fatalf("no list, yet not version 1:\n%s", out[:120])
	}
}

func TestPrefetchRefusals(t *testing.T) {
	for _, tc := range []struct{ list, want string }{
		{"", "missing"}, // the line "prefetch " has trailing space
		{"1,1", "listed twice"},
		{"4", "the image has 4 chunks"},
		{"01", "canonical"},
		{"1,,2", "canonical"},
		{"-1", "canonical"},
		{"+1", "canonical"},
		{"1,2,3,0,1", "entries"},
		{"1, 2", "canonical"},
	} {
		_, err := Parse(v2(t, tc.list))
		if err == nil {
			t.Errorf("prefetch %q: parsed", tc.list)
			continue
		}
		if tc.want != "missing" && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("prefetch %q: %v, want %q", tc.list, err, tc.want)
		}
	}
	// Version 2 without its prefetch line, and version 1 with one.
	v1 := strings.Replace(string(v2(t, "1")), HeaderV2, Header, 1)
	if _, err := Parse([]byte(v1)); err == nil {
		t.Errorf("version 1 with a prefetch line parsed")
	}
	noLine := strings.Replace(string(v2(t, "1")), "prefetch 1\n", "", 1)
	if _, err := Parse([]byte(noLine)); err == nil || !strings.Contains(err.Error(), "prefetch") {
		t.Errorf("version 2 without a prefetch line: %v", err)
	}
	if _, err := Parse([]byte("streamroot-manifest 3\n")); err == nil || !strings.Contains(err.Error(), "unsupported") {
		t.Errorf("version 3: %v", err)
	}
}
