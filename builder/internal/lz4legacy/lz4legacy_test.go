package lz4legacy

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/pierrec/lz4/v4"
)

// kernelUnlz4 decodes in as lib/decompress_unlz4.c does for an initramfs
// (whole input in memory, no fill function): the magic, then chunks until
// the input ends or a zero size word; a repeated magic is skipped; each
// chunk decodes (LZ4_decompress_safe) into at most 8 MiB. It returns the
// data and how many input bytes the frame took.
func kernelUnlz4(in []byte) ([]byte, int, error) {
	if len(in) < 4 || binary.LittleEndian.Uint32(in) != Magic {
		return nil, 0, fmt.Errorf("invalid header")
	}
	pos := 4
	var out []byte
	chunk := make([]byte, BlockSize)
	for len(in)-pos >= 4 {
		size := int(binary.LittleEndian.Uint32(in[pos:]))
		if size == Magic {
			pos += 4
			continue
		}
		if size == 0 {
			break
		}
		pos += 4
		if size > len(in)-pos {
			return nil, pos, fmt.Errorf("chunk of %#x bytes at %d runs past the input (%d left)", size, pos-4, len(in)-pos)
		}
		n, err := lz4.UncompressBlock(in[pos:pos+size], chunk)
		if err != nil {
			return nil, pos, fmt.Errorf("decoding failed at %d: %w", pos, err)
		}
		out = append(out, chunk[:n]...)
		pos += size
	}
	return out, pos, nil
}

func compress(t *testing.T, data []byte, writes int) []byte {
	t.Helper()
	var b bytes.Buffer
	w := NewWriter(&b, lz4.Level9)
	step := max(1, len(data)/max(1, writes))
	for p := data; len(p) > 0; {
		m := min(step, len(p))
		if n, err := w.Write(p[:m]); err != nil || n != m {
			t.Fatalf("Write: %d, %v", n, err)
		}
		p = p[m:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	text := bytes.Repeat([]byte("070701 streamroot cpio newc header and module bytes\n"), (BlockSize/52)+1000)
	for _, tc := range []struct {
		name   string
		data   []byte
		chunks int
		// pierrec's Reader takes no chunk longer than 8 MiB, which the
		// kernel (and the format) allow up to CompressBlockBound.
		bigChunk bool
	}{
		{"empty", nil, 0, false},
		{"short", []byte("streamroot"), 1, false},
		{"one full block", text[:BlockSize], 1, false},
		{"text over a block", text, 2, false},
		// Random bytes do not compress: the case pierrec's legacy Writer
		// writes with a stored-block flag the kernel does not know.
		{"random over a block", random(BlockSize + 4097), 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frame := compress(t, tc.data, 7)
			got, used, err := kernelUnlz4(frame)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.data) {
				t.Fatalf("decoded %d bytes, want %d (equal prefix: %v)", len(got), len(tc.data), bytes.HasPrefix(tc.data, got))
			}
			if used != len(frame) {
				t.Errorf("the frame took %d of %d bytes", used, len(frame))
			}
			chunks := 0
			for pos := 4; pos < len(frame); chunks++ {
				size := binary.LittleEndian.Uint32(frame[pos:])
				if size&(1<<31) != 0 || int(size) > lz4.CompressBlockBound(BlockSize) {
					t.Errorf("chunk %d size word %#x is no legacy block length", chunks, size)
				}
				pos += 4 + int(size)
			}
			if chunks != tc.chunks {
				t.Errorf("%d chunks, want %d", chunks, tc.chunks)
			}
			// Another reader of the legacy format agrees.
			if !tc.bigChunk {
				r, err := io.ReadAll(lz4.NewReader(bytes.NewReader(frame)))
				if err != nil || !bytes.Equal(r, tc.data) {
					t.Errorf("pierrec/lz4 reader: %d bytes, %v", len(r), err)
				}
			}
			// How the input was split does not change the output.
			if again := compress(t, tc.data, 1); !bytes.Equal(again, frame) {
				t.Error("one write and seven writes give different frames")
			}
		})
	}
}

// The kernel finds the end of the frame at the zero padding before a
// following archive: what follows the frame is not decoded.
func TestFrameEndsAtPadding(t *testing.T) {
	frame := compress(t, []byte("first archive"), 1)
	in := append(append(frame, 0, 0, 0, 0), []byte("070701second")...)
	got, used, err := kernelUnlz4(in)
	if err != nil || string(got) != "first archive" || used != len(frame) {
		t.Errorf("decoded %q, used %d of frame %d, %v", got, used, len(frame), err)
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, io.ErrShortWrite
	}
	f.n--
	return len(p), nil
}

// A failed write of the underlying writer is returned, then sticks.
func TestWriteError(t *testing.T) {
	w := NewWriter(&failWriter{n: 1}, lz4.Level9) // the magic passes, the first chunk fails
	if _, err := w.Write(make([]byte, BlockSize)); err == nil {
		t.Fatal("a full block written onto a failing writer gave no error")
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("Write after a failure gave no error")
	}
	if err := w.Close(); err == nil {
		t.Error("Close after a failure gave no error")
	}
}
