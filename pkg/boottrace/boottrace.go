// Package boottrace is the block daemon's record of what a boot read: the
// chunks the kernel asked for on demand, each at its first touch, in order,
// with the time since the daemon started. `streamroot trace` turns one or
// more of these logs into a manifest's prefetch list.
//
// # Format
//
//	streamroot-blockd-trace 1
//	<chunk index> <milliseconds since the daemon started>
//	...
//
// One line per chunk, LF-terminated, canonical decimals, no chunk twice,
// times never decreasing, at most MaxEntries lines. The file lives on a
// booted system that can alter it, so [Parse] is strict and fuzzed.
package boottrace

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Header is the first line of a trace file, without its LF.
const Header = "streamroot-blockd-trace 1"

// MaxEntries bounds a trace: the recorder stops adding after it, and Parse
// refuses longer files. It matches the manifest's prefetch bound.
const MaxEntries = 65536

// Entry is one chunk's first demand read.
type Entry struct {
	Chunk int
	At    time.Duration // since the daemon started
}

// Recorder keeps the first touch of each chunk, in order, up to MaxEntries.
// It is safe for concurrent use.
type Recorder struct {
	start time.Time
	mu    sync.Mutex
	seen  map[int]bool
	list  []Entry
}

// NewRecorder starts the clock the entries are timed from.
func NewRecorder(start time.Time) *Recorder {
	return &Recorder{start: start, seen: map[int]bool{}}
}

// Touch records chunk i unless it was seen before or the trace is full.
func (r *Recorder) Touch(i int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen[i] || len(r.list) >= MaxEntries {
		return
	}
	r.seen[i] = true
	r.list = append(r.list, Entry{Chunk: i, At: time.Since(r.start)})
}

// Marshal returns the trace so far in the file format.
func (r *Recorder) Marshal() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b bytes.Buffer
	b.WriteString(Header + "\n")
	var last int64
	for _, e := range r.list {
		ms := max(last, e.At.Milliseconds()) // the file's times never decrease
		last = ms
		fmt.Fprintf(&b, "%d %d\n", e.Chunk, ms)
	}
	return b.Bytes()
}

// Parse reads a trace file strictly.
func Parse(data []byte) ([]Entry, error) {
	first, rest, ok := bytes.Cut(data, []byte("\n"))
	if !ok || string(first) != Header {
		return nil, fmt.Errorf("trace line 1: not a block daemon trace: expected %q", Header)
	}
	var list []Entry
	seen := map[int]bool{}
	var last int64
	for n := 2; len(rest) > 0; n++ {
		line, tail, ok := bytes.Cut(rest, []byte("\n"))
		if !ok {
			return nil, fmt.Errorf("trace line %d: no LF at the end of the line", n)
		}
		rest = tail
		if len(list) >= MaxEntries {
			return nil, fmt.Errorf("trace line %d: more than %d entries", n, MaxEntries)
		}
		a, b, ok := bytes.Cut(line, []byte(" "))
		if !ok {
			return nil, fmt.Errorf("trace line %d: want \"<chunk> <ms>\"", n)
		}
		i, err := decimal(a)
		if err != nil || i > 1<<40 {
			return nil, fmt.Errorf("trace line %d: chunk: %v", n, errOr(err))
		}
		ms, err := decimal(b)
		if err != nil || ms > 1<<40 {
			return nil, fmt.Errorf("trace line %d: time: %v", n, errOr(err))
		}
		if ms < last {
			return nil, fmt.Errorf("trace line %d: time %d ms is before the line above's %d ms", n, ms, last)
		}
		if seen[int(i)] {
			return nil, fmt.Errorf("trace line %d: chunk %d listed twice", n, i)
		}
		seen[int(i)], last = true, ms
		list = append(list, Entry{Chunk: int(i), At: time.Duration(ms) * time.Millisecond})
	}
	return list, nil
}

func errOr(err error) error {
	if err == nil {
		return errors.New("index out of range")
	}
	return err
}

// decimal reads a canonical non-negative decimal.
func decimal(v []byte) (int64, error) {
	if len(v) == 0 || len(v) > 18 || (v[0] == '0' && len(v) > 1) {
		return 0, fmt.Errorf("%.40q: not a canonical decimal number", v)
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%.40q: not a canonical decimal number", v)
		}
	}
	return strconv.ParseInt(string(v), 10, 64)
}

// Merge turns several boots' traces into one prefetch order: each chunk at
// its earliest time in any trace (the first trace wins ties), chunks at or
// above chunks dropped, at most MaxEntries.
func Merge(traces [][]Entry, chunks int) []int {
	at := map[int]time.Duration{}
	var order []int
	for _, tr := range traces {
		for _, e := range tr {
			if e.Chunk >= chunks {
				continue
			}
			if t, ok := at[e.Chunk]; !ok {
				order = append(order, e.Chunk)
				at[e.Chunk] = e.At
			} else if e.At < t {
				at[e.Chunk] = e.At
			}
		}
	}
	// Stable by time: equal times keep first-seen order.
	slices.SortStableFunc(order, func(a, b int) int { return int(at[a] - at[b]) })
	return order[:min(len(order), MaxEntries)]
}
