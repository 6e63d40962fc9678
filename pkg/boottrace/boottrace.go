// Package boottrace is the block daemon's record of what a boot read: the
// chunks the kernel asked for on demand, each at its first touch, in order,
// with the time since the daemon started. `streamroot trace` turns one or
// more of these logs into a manifest's prefetch list.
//
// # Format
//
//	streamroot-blockd-trace 2 chunk <chunk size in bytes>
//	<chunk index> <milliseconds since the daemon started>
//	...
//
// Chunks are numbered in the daemon's cache chunk size, which the first
// line carries (a power of two from MinChunk to MaxChunk): without a
// manifest the daemon uses 1 MiB chunks, while a manifest's may differ, so
// [Convert] maps the indices through byte ranges. Format 1 had no chunk size
// and is refused: its indices cannot be placed. One line per chunk, LF-terminated, canonical decimals, no chunk twice,
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
	"sync/atomic"
	"time"
)

// Magic starts the first line of a trace file; Version follows it.
const (
	Magic   = "streamroot-blockd-trace"
	Version = 2
)

// MinChunk and MaxChunk bound the chunk size a trace may carry: those the
// block daemon's cache accepts.
const (
	MinChunk = 4096
	MaxChunk = 1 << 30
)

// Header is the first line of a trace of chunks of n bytes, without its LF.
func Header(n int64) string { return fmt.Sprintf("%s %d chunk %d", Magic, Version, n) }

// Trace is a parsed trace file.
type Trace struct {
	ChunkSize int64 // bytes per chunk the entries number
	Entries   []Entry
}

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
	start   time.Time
	stopped atomic.Bool // Stop: every read's Touch then returns at once
	mu      sync.Mutex
	seen    map[int]bool
	list    []Entry
}

// NewRecorder starts the clock the entries are timed from.
func NewRecorder(start time.Time) *Recorder {
	return &Recorder{start: start, seen: map[int]bool{}}
}

// Stop ends the recording: what was recorded stays, Touch records nothing
// more (it is on every kernel read's path).
func (r *Recorder) Stop() { r.stopped.Store(true) }

// Touch records chunk i unless it was seen before, the trace is full or
// the recording stopped.
func (r *Recorder) Touch(i int) {
	if r.stopped.Load() {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen[i] || len(r.list) >= MaxEntries {
		return
	}
	r.seen[i] = true
	r.list = append(r.list, Entry{Chunk: i, At: time.Since(r.start)})
}

// Marshal returns the trace so far in the file format, its chunks being
// chunkSize bytes each.
func (r *Recorder) Marshal(chunkSize int64) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b bytes.Buffer
	b.WriteString(Header(chunkSize) + "\n")
	var last int64
	for _, e := range r.list {
		ms := max(last, e.At.Milliseconds()) // the file's times never decrease
		last = ms
		fmt.Fprintf(&b, "%d %d\n", e.Chunk, ms)
	}
	return b.Bytes()
}

// Parse reads a trace file strictly.
func Parse(data []byte) (*Trace, error) {
	first, rest, ok := bytes.Cut(data, []byte("\n"))
	if !ok {
		return nil, errors.New("trace line 1: not a block daemon trace: no LF")
	}
	size, err := header(first)
	if err != nil {
		return nil, err
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
		if err != nil || i > 1<<32 { // with MaxChunk, every byte offset fits in int64
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
	return &Trace{ChunkSize: size, Entries: list}, nil
}

// header reads the first line and returns its chunk size.
func header(line []byte) (int64, error) {
	f := bytes.Split(line, []byte(" "))
	if len(f) < 2 || string(f[0]) != Magic {
		return 0, fmt.Errorf("trace line 1: not a block daemon trace: expected %q", Header(1<<20))
	}
	if string(f[1]) == "1" && len(f) == 2 {
		return 0, errors.New("trace line 1: trace format 1 has no chunk size, so its chunk numbers cannot be mapped onto the manifest's chunks: boot once more with this version's initramfs and copy the new trace")
	}
	if string(f[1]) != strconv.Itoa(Version) || len(f) != 4 || string(f[2]) != "chunk" {
		return 0, fmt.Errorf("trace line 1: unsupported trace format %.40q: expected %q", line, Header(1<<20))
	}
	n, err := decimal(f[3])
	if err != nil {
		return 0, fmt.Errorf("trace line 1: chunk size: %w", err)
	}
	if n < MinChunk || n > MaxChunk || n&(n-1) != 0 {
		return 0, fmt.Errorf("trace line 1: chunk size %d is not a power of two from %d to %d", n, MinChunk, MaxChunk)
	}
	return n, nil
}

// Convert renumbers a trace's entries in chunks of to bytes: each entry
// becomes the to-sized chunks its byte range overlaps, at the entry's
// time, in order, each chunk at its first appearance only, at most
// MaxEntries. Entries past an image of size bytes are dropped: they come
// from another image. Both chunk sizes are powers of two, so every range
// maps exactly; any other to is refused.
func Convert(t *Trace, to, size int64) ([]Entry, error) {
	if to <= 0 || to&(to-1) != 0 {
		return nil, fmt.Errorf("manifest chunk size %d is not a power of two: the trace's %d-byte chunks cannot be mapped onto it", to, t.ChunkSize)
	}
	seen := map[int]bool{}
	var out []Entry
	for _, e := range t.Entries {
		lo := int64(e.Chunk) * t.ChunkSize // no overflow: Parse bounds both
		if lo >= size {
			continue
		}
		hi := min(lo+t.ChunkSize, size) - 1
		for j := lo / to; j <= hi/to; j++ {
			if len(out) == MaxEntries {
				return out, nil
			}
			if !seen[int(j)] {
				seen[int(j)] = true
				out = append(out, Entry{Chunk: int(j), At: e.At})
			}
		}
	}
	return out, nil
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
