// Package manifest is streamroot's chunk manifest: the size of a boot image,
// a chunk size and the SHA-256 of every chunk, so a node can verify each
// chunk it fetches before the kernel sees it (design §5), in every fetch
// mode, lazy streaming included.
//
// # Format, version 1
//
// A manifest is a small text file, written next to the image as
// IMAGE.manifest by `streamroot manifest IMAGE`:
//
//	streamroot-manifest 1
//	size 1073741824
//	chunk 4194304
//	sha256 <64 hex digits: SHA-256 of the whole image>
//	<64 hex digits: SHA-256 of chunk 0>
//	<64 hex digits: SHA-256 of chunk 1>
//	...
//
// The rules, all enforced by [Parse]:
//
//   - Lines end with LF (no CR) and the file ends with one; no empty lines,
//     no leading or trailing spaces, exactly one space between a keyword and
//     its value.
//   - Line 1 is "streamroot-manifest 1". Another version number is refused
//     by name, so a future format is never misread.
//   - "size": the image size in bytes, decimal, positive, no sign, no
//     leading zeros.
//   - "chunk": the chunk size in bytes, decimal, a power of two from 64 KiB
//     (65536) to 64 MiB (67108864).
//   - "sha256": lowercase hex of the SHA-256 of the whole image.
//   - Then exactly ceil(size/chunk) lines, one per chunk in order, each the
//     lowercase hex SHA-256 of that chunk. Chunk i covers bytes
//     [i*chunk, min((i+1)*chunk, size)): only the last one may be short.
//
// # Format, version 2: a boot-trace prefetch list
//
// A manifest that carries a prefetch list (`streamroot trace`) has
// "streamroot-manifest 2" on line 1 and one more line after "sha256":
//
//	prefetch 0,5,6,7,120
//
// the chunk indexes a boot read, in the order it first read them, which the
// block daemon fetches first (stream and lazy modes: chunkcache.Prefetch,
// behind the kernel's own reads, each chunk verified). Indexes are canonical decimals separated by
// single commas, each below the chunk count, none twice, 1 to MaxPrefetch
// of them. The list lives inside the manifest so the signature and the
// digest pin cover it: a server cannot make a node fetch other chunks
// first. A manifest without a list is always written as version 1, byte
// for byte what it was before version 2 existed, so existing pins stay
// valid; version 2 with an empty list does not exist.
//
// Because every field has exactly one spelling, a parsed manifest marshals
// back to the same bytes, and the digest of the file ([Digest], what the
// kernel argument streamroot.manifest=sha256:<hex> pins) identifies its
// content uniquely.
package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"sync"
)

// Version is the newest format version Parse accepts; Marshal writes
// version 1 unless the manifest has a prefetch list.
const Version = 2

// Header is the first line of a version-1 manifest, without its LF.
const Header = "streamroot-manifest 1"

// HeaderV2 is the first line of a manifest with a prefetch list.
const HeaderV2 = "streamroot-manifest 2"

// MaxPrefetch bounds the prefetch list: a boot that reads more chunks than
// this gains little from ordering the rest, and the bound keeps a hostile
// list from costing memory.
const MaxPrefetch = 65536

// Chunk size bounds and the default chunk size.
const (
	MinChunk     = 64 << 10
	MaxChunk     = 64 << 20
	DefaultChunk = 4 << 20
)

// Manifest describes an image as fixed-size chunks and their SHA-256.
type Manifest struct {
	Size   int64      // image size in bytes
	Chunk  int64      // chunk size in bytes (the last chunk may be shorter)
	SHA256 [32]byte   // SHA-256 of the whole image
	Chunks [][32]byte // SHA-256 of each chunk, in order
	// Prefetch is the boot-trace list (version 2): chunk indexes to fetch
	// first, in order; nil for a version-1 manifest.
	Prefetch []int
}

// ChunkError reports a chunk whose content does not match the manifest.
// Callers can errors.As it to get the index and byte offset.
type ChunkError struct {
	Index  int    // chunk index
	Offset int64  // byte offset of the chunk in the image
	Len    int64  // expected length of the chunk
	Reason string // what is wrong
}

func (e *ChunkError) Error() string {
	return fmt.Sprintf("chunk %d (bytes %d-%d of the image): %s", e.Index, e.Offset, e.Offset+e.Len-1, e.Reason)
}

// ParseError reports a malformed manifest; Line is 1-based.
type ParseError struct {
	Line int
	Msg  string
}

func (e *ParseError) Error() string { return fmt.Sprintf("manifest line %d: %s", e.Line, e.Msg) }

// ValidChunkSize reports whether n is an allowed chunk size: a power of two
// between MinChunk and MaxChunk.
func ValidChunkSize(n int64) bool {
	return n >= MinChunk && n <= MaxChunk && n&(n-1) == 0
}

// numChunks is ceil(size/chunk) without overflow.
func numChunks(size, chunk int64) int64 {
	n := size / chunk
	if size%chunk != 0 {
		n++
	}
	return n
}

// NumChunks is the number of chunks in the image.
func (m *Manifest) NumChunks() int { return len(m.Chunks) }

// ChunkRange returns the byte offset and length of chunk i. For an index
// outside the image it returns (0, 0).
func (m *Manifest) ChunkRange(i int) (off, n int64) {
	if i < 0 || i >= len(m.Chunks) || m.Chunk <= 0 {
		return 0, 0
	}
	off = int64(i) * m.Chunk
	n = min(m.Chunk, m.Size-off)
	if n < 0 {
		return 0, 0
	}
	return off, n
}

// ChunkAt returns the index of the chunk holding byte offset off, or -1 when
// off is outside the image.
func (m *Manifest) ChunkAt(off int64) int {
	if off < 0 || off >= m.Size || m.Chunk <= 0 {
		return -1
	}
	return int(off / m.Chunk)
}

// VerifyChunk checks that data is exactly chunk i. The error is a
// *ChunkError naming the index and byte offset.
func (m *Manifest) VerifyChunk(i int, data []byte) error {
	if i < 0 || i >= len(m.Chunks) {
		return &ChunkError{Index: i, Offset: int64(i) * m.Chunk, Reason: fmt.Sprintf("no such chunk: the manifest has %d", len(m.Chunks))}
	}
	off, n := m.ChunkRange(i)
	if int64(len(data)) != n {
		return &ChunkError{Index: i, Offset: off, Len: n, Reason: fmt.Sprintf("got %d bytes, want %d", len(data), n)}
	}
	if got := sha256.Sum256(data); got != m.Chunks[i] {
		return &ChunkError{Index: i, Offset: off, Len: n,
			Reason: fmt.Sprintf("SHA-256 mismatch: got %x, the manifest says %x", got, m.Chunks[i])}
	}
	return nil
}

// Verify reads the whole image from r and checks every chunk and the whole
// image hash; the first bad chunk is reported as a *ChunkError.
func (m *Manifest) Verify(r io.ReaderAt) error {
	got, err := Build(r, m.Size, m.Chunk)
	if err != nil {
		return err
	}
	for i := range m.Chunks {
		if got.Chunks[i] != m.Chunks[i] {
			off, n := m.ChunkRange(i)
			return &ChunkError{Index: i, Offset: off, Len: n,
				Reason: fmt.Sprintf("SHA-256 mismatch: got %x, the manifest says %x", got.Chunks[i], m.Chunks[i])}
		}
	}
	if got.SHA256 != m.SHA256 {
		return fmt.Errorf("whole-image SHA-256 mismatch: got %x, the manifest says %x", got.SHA256, m.SHA256)
	}
	return nil
}

// Build reads size bytes from r and hashes them in chunks of the given size.
// It reads sequentially from one goroutine, which also computes the
// whole-image hash, while GOMAXPROCS workers hash the chunks in parallel;
// at most GOMAXPROCS+1 chunks are in memory at once.
func Build(r io.ReaderAt, size int64, chunk int64) (*Manifest, error) {
	if size <= 0 {
		return nil, fmt.Errorf("image size %d: must be positive", size)
	}
	if !ValidChunkSize(chunk) {
		return nil, fmt.Errorf("chunk size %d: must be a power of two from %d to %d", chunk, MinChunk, MaxChunk)
	}
	n := numChunks(size, chunk)
	if n > int64(^uint(0)>>1) {
		return nil, fmt.Errorf("image size %d: too many chunks", size)
	}
	m := &Manifest{Size: size, Chunk: chunk, Chunks: make([][32]byte, n)}

	workers := max(1, runtime.GOMAXPROCS(0))
	type job struct {
		i   int
		buf []byte
	}
	// Buffers circulate between the reader (this goroutine), which also
	// feeds the whole-image hash, and the chunk hashers.
	free := make(chan []byte, workers+1)
	for range workers + 1 {
		free <- make([]byte, min(chunk, size))
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range jobs {
				m.Chunks[j.i] = sha256.Sum256(j.buf)
				free <- j.buf[:cap(j.buf)]
			}
		})
	}
	whole := sha256.New()
	var err error
	for i := range int(n) {
		off, l := int64(i)*chunk, min(chunk, size-int64(i)*chunk)
		buf := (<-free)[:l]
		got, rerr := r.ReadAt(buf, off)
		if int64(got) < l {
			if rerr == nil || errors.Is(rerr, io.EOF) {
				rerr = fmt.Errorf("image ends at byte %d, expected %d bytes", off+int64(got), size)
			}
			err = fmt.Errorf("read chunk %d at byte %d: %w", i, off, rerr)
			break
		}
		whole.Write(buf)
		jobs <- job{i, buf}
	}
	close(jobs)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	copy(m.SHA256[:], whole.Sum(nil))
	return m, nil
}

// Marshal returns the manifest in the text format: version 1, or version 2
// when it has a prefetch list.
func (m *Manifest) Marshal() []byte {
	var b bytes.Buffer
	b.Grow(128 + 65*len(m.Chunks))
	header := Header
	if len(m.Prefetch) > 0 {
		header = HeaderV2
	}
	fmt.Fprintf(&b, "%s\nsize %d\nchunk %d\nsha256 %x\n", header, m.Size, m.Chunk, m.SHA256)
	if len(m.Prefetch) > 0 {
		b.WriteString("prefetch ")
		for k, i := range m.Prefetch {
			if k > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(i))
		}
		b.WriteByte('\n')
	}
	var line [65]byte
	line[64] = '\n'
	for _, c := range m.Chunks {
		hex.Encode(line[:64], c[:])
		b.Write(line[:])
	}
	return b.Bytes()
}

// Digest is the SHA-256 of a manifest file's bytes: the value pinned by the
// kernel argument streamroot.manifest=sha256:<hex>.
func Digest(data []byte) [32]byte { return sha256.Sum256(data) }

// KernelArg returns "streamroot.manifest=sha256:<hex>" for a manifest
// file's bytes.
func KernelArg(data []byte) string {
	return fmt.Sprintf("streamroot.manifest=sha256:%x", Digest(data))
}

// ParsePinned checks data against the digest pinned on the kernel command
// line before parsing it, so a substituted manifest is refused unread.
func ParsePinned(data []byte, digest [32]byte) (*Manifest, error) {
	if got := Digest(data); got != digest {
		return nil, fmt.Errorf("manifest digest mismatch: got sha256:%x, streamroot.manifest= pins sha256:%x", got, digest)
	}
	return Parse(data)
}

// Parse reads a version-1 or version-2 manifest strictly: any deviation from the format
// is a *ParseError naming the line.
func Parse(data []byte) (*Manifest, error) {
	p := lineReader{data: data}
	perr := func(line int, format string, args ...any) error {
		return &ParseError{Line: line, Msg: fmt.Sprintf(format, args...)}
	}

	line, ok, err := p.next()
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, perr(1, "empty file, expected %q", Header)
	}
	v2 := string(line) == HeaderV2
	if string(line) != Header && !v2 {
		if v, found := bytes.CutPrefix(line, []byte("streamroot-manifest ")); found {
			return nil, perr(1, "unsupported manifest version %q (this streamroot reads version %d)", v, Version)
		}
		return nil, perr(1, "not a streamroot manifest: expected %q, got %q", Header, clip(line))
	}

	field := func(key string) ([]byte, int, error) {
		line, ok, err := p.next()
		if err != nil {
			return nil, p.n, err
		}
		if !ok {
			return nil, p.n + 1, perr(p.n+1, "missing %q line", key)
		}
		v, found := bytes.CutPrefix(line, []byte(key+" "))
		if !found {
			return nil, p.n, perr(p.n, "expected %q, got %q", key+" <value>", clip(line))
		}
		return v, p.n, nil
	}
	number := func(key string) (int64, int, error) {
		v, n, err := field(key)
		if err != nil {
			return 0, n, err
		}
		if len(v) == 0 || len(v) > 19 || (v[0] == '0' && len(v) > 1) {
			return 0, n, perr(n, "%s %q: not a canonical decimal number", key, clip(v))
		}
		x, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil || x <= 0 || v[0] == '+' {
			return 0, n, perr(n, "%s %q: not a positive decimal number", key, clip(v))
		}
		return x, n, nil
	}
	m := &Manifest{}
	if m.Size, _, err = number("size"); err != nil {
		return nil, err
	}
	var n int
	if m.Chunk, n, err = number("chunk"); err != nil {
		return nil, err
	}
	if !ValidChunkSize(m.Chunk) {
		return nil, perr(n, "chunk size %d: must be a power of two from %d to %d", m.Chunk, MinChunk, MaxChunk)
	}
	v, n, err := field("sha256")
	if err != nil {
		return nil, err
	}
	if m.SHA256, err = hash(v); err != nil {
		return nil, perr(n, "sha256: %v", err)
	}

	want := numChunks(m.Size, m.Chunk)
	if v2 {
		v, n, err := field("prefetch")
		if err != nil {
			return nil, err
		}
		if m.Prefetch, err = ParsePrefetch(v, want); err != nil {
			return nil, perr(n, "prefetch: %v", err)
		}
	}
	// Every chunk line is 65 bytes: check the length before allocating, so
	// a huge size on a short file costs nothing.
	if rest := int64(len(data) - p.off); rest != want*65 {
		// Find the line that is wrong to name it.
		for i := int64(0); ; i++ {
			line, ok, err := p.next()
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, perr(p.n+1, "the file ends after %d chunk lines; size %d in chunks of %d needs %d", i, m.Size, m.Chunk, want)
			}
			if i >= want {
				return nil, perr(p.n, "extra line after the %d chunk lines that size %d in chunks of %d needs", want, m.Size, m.Chunk)
			}
			if _, err := hash(line); err != nil {
				return nil, perr(p.n, "chunk %d: %v", i, err)
			}
		}
	}
	m.Chunks = make([][32]byte, want)
	for i := range m.Chunks {
		line, _, err := p.next()
		if err != nil {
			return nil, err
		}
		if m.Chunks[i], err = hash(line); err != nil {
			return nil, perr(p.n, "chunk %d: %v", i, err)
		}
	}
	return m, nil
}

// ParsePrefetch reads a prefetch list's value: canonical decimal chunk
// indexes separated by single commas, each below chunks, none twice, 1 to
// MaxPrefetch of them.
func ParsePrefetch(v []byte, chunks int64) ([]int, error) {
	if len(v) == 0 {
		return nil, errors.New("empty list (a manifest without one is version 1)")
	}
	if n := bytes.Count(v, []byte(",")) + 1; n > MaxPrefetch || int64(n) > chunks {
		return nil, fmt.Errorf("%d entries: at most %d, and no more than the %d chunks", n, MaxPrefetch, chunks)
	}
	var list []int
	seen := map[int]bool{}
	for f := range bytes.SplitSeq(v, []byte(",")) {
		if len(f) == 0 || len(f) > 19 || (f[0] == '0' && len(f) > 1) || f[0] < '0' || f[0] > '9' {
			return nil, fmt.Errorf("%q: not a canonical decimal chunk index", clip(f))
		}
		x, err := strconv.ParseInt(string(f), 10, 64)
		if err != nil || x < 0 {
			return nil, fmt.Errorf("%q: not a canonical decimal chunk index", clip(f))
		}
		if x >= chunks {
			return nil, fmt.Errorf("chunk %d: the image has %d chunks", x, chunks)
		}
		if seen[int(x)] {
			return nil, fmt.Errorf("chunk %d listed twice", x)
		}
		seen[int(x)] = true
		list = append(list, int(x))
	}
	return list, nil
}

// hash decodes 64 lowercase hex digits.
func hash(v []byte) ([32]byte, error) {
	var h [32]byte
	if len(v) != 64 {
		return h, fmt.Errorf("%q: want 64 lowercase hex digits, got %d characters", clip(v), len(v))
	}
	for _, c := range v {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return h, fmt.Errorf("%q: want 64 lowercase hex digits, found %q", clip(v), c)
		}
	}
	hex.Decode(h[:], v)
	return h, nil
}

// clip shortens a value quoted in an error message.
func clip(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}

// lineReader splits LF-terminated lines, refusing CR, a missing final LF,
// empty lines and lines with leading or trailing spaces.
type lineReader struct {
	data []byte
	off  int
	n    int // number of the line last returned
}

func (r *lineReader) next() ([]byte, bool, error) {
	if r.off >= len(r.data) {
		return nil, false, nil
	}
	r.n++
	rest := r.data[r.off:]
	i := bytes.IndexByte(rest, '\n')
	if i < 0 {
		return nil, false, &ParseError{Line: r.n, Msg: "no LF at the end of the line (the file must end with a newline)"}
	}
	line := rest[:i]
	r.off += i + 1
	switch {
	case len(line) == 0:
		return nil, false, &ParseError{Line: r.n, Msg: "empty line"}
	case bytes.IndexByte(line, '\r') >= 0:
		return nil, false, &ParseError{Line: r.n, Msg: "carriage return (CRLF line endings are not allowed)"}
	case line[0] == ' ' || line[0] == '\t' || line[len(line)-1] == ' ' || line[len(line)-1] == '\t':
		return nil, false, &ParseError{Line: r.n, Msg: "leading or trailing whitespace"}
	}
	return line, true, nil
}

// FormatVersion is the version Marshal writes for m: 2 with a prefetch
// list, else 1.
func (m *Manifest) FormatVersion() int {
	if len(m.Prefetch) > 0 {
		return 2
	}
	return 1
}
