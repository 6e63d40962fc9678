package boottrace

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRecorderRoundTrip(t *testing.T) {
	r := NewRecorder(time.Now())
	for _, i := range []int{5, 0, 5, 7, 0, 1} {
		r.Touch(i)
	}
	got, err := Parse(r.Marshal(1 << 20))
	if err != nil {
		t.Fatal(err)
	}
	if got.ChunkSize != 1<<20 {
		t.Fatalf("chunk size %d", got.ChunkSize)
	}
	var idx []int
	for _, e := range got.Entries {
		idx = append(idx, e.Chunk)
	}
	if !slices.Equal(idx, []int{5, 0, 7, 1}) {
		t.Fatalf("first touches %v", idx)
	}
}

func TestParseRefuses(t *testing.T) {
	h := Header(1 << 20)
	for _, in := range []string{
		"", "hello\n", h, h + "\n1 2", h + "\n1\n", h + "\n01 2\n",
		h + "\n1 5\n2 4\n", h + "\n1 1\n1 2\n", h + "\n-1 1\n", h + "\n1  1\n",
		"streamroot-blockd-trace 1\n0 0\n", Header(3000) + "\n", Header(1<<31) + "\n", Header(2048) + "\n",
		"streamroot-blockd-trace 2 chunk 01048576\n", "streamroot-blockd-trace 2 chunk\n", "streamroot-blockd-trace 3 chunk 4096\n",
		h + "\n4294967297 0\n",
	} {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("%q parsed", in)
		}
	}
}

func TestParseFormat1Hint(t *testing.T) {
	_, err := Parse([]byte("streamroot-blockd-trace 1\n0 0\n"))
	if err == nil || !strings.Contains(err.Error(), "no chunk size") {
		t.Fatalf("format 1: %v", err)
	}
}

func TestConvert(t *testing.T) {
	ms := time.Millisecond
	tr := &Trace{ChunkSize: 1 << 20, Entries: []Entry{{9, 1 * ms}, {0, 2 * ms}, {8, 3 * ms}, {3, 4 * ms}, {40, 5 * ms}}}
	for _, c := range []struct {
		name string
		to   int64
		want []Entry
	}{
		{"same size", 1 << 20, tr.Entries[:4]},
		// 1 MiB chunks 9, 0, 8, 3 lie in 4 MiB chunks 2, 0, 2, 0: order
		// kept, repeats dropped, chunk 40 past the 10 MiB image dropped.
		{"larger manifest chunks", 4 << 20, []Entry{{2, 1 * ms}, {0, 2 * ms}}},
		// Chunk 9 is the image's last MiB; 512 KiB chunks split it in two.
		{"smaller manifest chunks", 512 << 10, []Entry{{18, 1 * ms}, {19, 1 * ms}, {0, 2 * ms}, {1, 2 * ms}, {16, 3 * ms}, {17, 3 * ms}, {6, 4 * ms}, {7, 4 * ms}}},
	} {
		got, err := Convert(tr, c.to, 10<<20)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%s: %v %v, want %v", c.name, got, err, c.want)
		}
	}
	// The image's tail chunk is short: a 1 MiB trace chunk covering it
	// maps only to the manifest chunks inside the image.
	if got, _ := Convert(&Trace{ChunkSize: 1 << 20, Entries: []Entry{{0, 0}}}, 256<<10, 300<<10); !slices.Equal(got, []Entry{{0, 0}, {1, 0}}) {
		t.Errorf("short image: %v", got)
	}
	if _, err := Convert(tr, 3<<20, 10<<20); err == nil {
		t.Error("a chunk size that is not a power of two was accepted")
	}
	// Splitting is bounded by MaxEntries.
	big := &Trace{ChunkSize: MaxChunk, Entries: []Entry{{0, 0}}}
	if got, _ := Convert(big, MinChunk, MaxChunk); len(got) != MaxEntries {
		t.Errorf("split into %d entries, want at most %d", len(got), MaxEntries)
	}
}

func TestMerge(t *testing.T) {
	a := []Entry{{3, 10 * time.Millisecond}, {1, 20 * time.Millisecond}, {9, 30 * time.Millisecond}}
	b := []Entry{{1, 5 * time.Millisecond}, {4, 25 * time.Millisecond}}
	if got := Merge([][]Entry{a, b}, 9); !slices.Equal(got, []int{1, 3, 4}) {
		t.Fatalf("merge %v, want [1 3 4] (chunk 9 is past the image)", got)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(Header(1<<20) + "\n0 0\n5 3\n"))
	f.Add([]byte(Header(4096) + "\n"))
	f.Add([]byte("streamroot-blockd-trace 1\n0 0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := Parse(data)
		if err != nil {
			return
		}
		r := NewRecorder(time.Time{})
		r.list = tr.Entries
		for _, e := range tr.Entries {
			r.seen[e.Chunk] = true
		}
		again, err := Parse(r.Marshal(tr.ChunkSize))
		if err != nil || again.ChunkSize != tr.ChunkSize || !slices.Equal(again.Entries, tr.Entries) {
			t.Fatalf("round trip: %v", err)
		}
		if _, err := Convert(tr, MinChunk, 1<<40); err != nil {
			t.Fatal(err)
		}
	})
}

// After Stop, Touch records nothing more and the recorded trace stays.
func TestRecorderStop(t *testing.T) {
	r := NewRecorder(time.Now())
	r.Touch(3)
	r.Stop()
	r.Touch(4)
	tr, err := Parse(r.Marshal(1 << 20))
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Entries) != 1 || tr.Entries[0].Chunk != 3 {
		t.Errorf("entries %+v, want chunk 3 only", tr.Entries)
	}
}
