package boottrace

import (
	"slices"
	"testing"
	"time"
)

func TestRecorderRoundTrip(t *testing.T) {
	r := NewRecorder(time.Now())
	for _, i := range []int{5, 0, 5, 7, 0, 1} {
		r.Touch(i)
	}
	got, err := Parse(r.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	var idx []int
	for _, e := range got {
		idx = append(idx, e.Chunk)
	}
	if !slices.Equal(idx, []int{5, 0, 7, 1}) {
		t.Fatalf("first touches %v", idx)
	}
}

func TestParseRefuses(t *testing.T) {
	for _, in := range []string{
		"", "hello\n", Header, Header + "\n1 2", Header + "\n1\n", Header + "\n01 2\n",
		Header + "\n1 5\n2 4\n", Header + "\n1 1\n1 2\n", Header + "\n-1 1\n", Header + "\n1  1\n",
	} {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("%q parsed", in)
		}
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
	f.Add([]byte(Header + "\n0 0\n5 3\n"))
	f.Add([]byte(Header + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		list, err := Parse(data)
		if err != nil {
			return
		}
		r := NewRecorder(time.Time{})
		r.list = list
		for _, e := range list {
			r.seen[e.Chunk] = true
		}
		again, err := Parse(r.Marshal())
		if err != nil || !slices.Equal(again, list) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
