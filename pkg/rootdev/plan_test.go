package rootdev

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/internal/syncbuf"
	"github.com/streamroot/streamroot/pkg/bootcfg"
	"github.com/streamroot/streamroot/pkg/chunkcache"
	"github.com/streamroot/streamroot/pkg/nbd"
)

func TestPlanFetch(t *testing.T) {
	const (
		def    = bootcfg.FetchDefault
		stream = bootcfg.FetchStream
		ram    = bootcfg.FetchRAM
		lazy   = bootcfg.FetchLazy
	)
	short := &ramShortage{Size: 1 << 30, Avail: 512 << 20}
	for _, tc := range []struct {
		name          string
		req           bootcfg.FetchMode
		sha, manifest bool
		short         *ramShortage
		mode          bootcfg.FetchMode
		whole         bool
		note          []string // substrings of Note; nil: no note
		err, hint     []string // substrings of the error and its hint; nil: no error
	}{
		{name: "default", req: def, mode: stream},
		{name: "default manifest", req: def, manifest: true, mode: stream},
		{name: "default both", req: def, sha: true, manifest: true, mode: stream, whole: true},
		{name: "default sha256 only boots as ram", req: def, sha: true, mode: ram, whole: true,
			note: []string{"streamroot.sha256= can only be checked on the whole image: fetching it into RAM first", "streamroot.manifest="}},
		{name: "ram", req: ram, mode: ram},
		{name: "ram sha256", req: ram, sha: true, mode: ram, whole: true},
		{name: "ram both", req: ram, sha: true, manifest: true, mode: ram, whole: true},
		{name: "stream manifest", req: stream, manifest: true, mode: stream},
		{name: "stream both", req: stream, sha: true, manifest: true, mode: stream, whole: true},
		{name: "stream sha256 only refused", req: stream, sha: true,
			err:  []string{"streamroot.fetch=stream", "streamroot.sha256=", "streamroot.manifest="},
			hint: []string{"streamroot manifest IMAGE", "streamroot.manifest=sha256:"}},
		{name: "lazy sha256 only refused", req: lazy, sha: true,
			err:  []string{"streamroot.fetch=lazy", "streamroot.sha256=", "streamroot.manifest="},
			hint: []string{"streamroot manifest IMAGE", "streamroot.manifest=sha256:"}},
		{name: "lazy", req: lazy, mode: lazy},
		{name: "lazy manifest", req: lazy, manifest: true, mode: lazy},
		{name: "lazy both says the hash is not checked", req: lazy, sha: true, manifest: true, mode: lazy,
			note: []string{"streamroot.sha256= is not checked in lazy mode", "every chunk is verified"}},

		// The image's size is known and it does not fit.
		{name: "too big ram", req: ram, short: short, mode: lazy, note: []string{"1024.0 MiB", "512.0 MiB available", "falling back to streamroot.fetch=lazy"}},
		{name: "too big stream", req: stream, short: short, mode: lazy, note: []string{"falling back to streamroot.fetch=lazy"}},
		{name: "too big ram sha256 only refused", req: ram, sha: true, short: short,
			err:  []string{"1024.0 MiB", "512.0 MiB available", "does not fit in RAM", "streamroot.sha256=", "unverified"},
			hint: []string{"streamroot manifest IMAGE", "streamroot.manifest=sha256:"}},
		{name: "too big default sha256 only refused", req: def, sha: true, short: short,
			err: []string{"does not fit in RAM"}, hint: []string{"streamroot.manifest=sha256:"}},
		{name: "too big ram both", req: ram, sha: true, manifest: true, short: short, mode: lazy,
			note: []string{"falling back to streamroot.fetch=lazy", "streamroot.sha256= is not checked in lazy mode"}},
		{name: "too big stream both", req: stream, sha: true, manifest: true, short: short, mode: lazy,
			note: []string{"falling back to streamroot.fetch=lazy", "streamroot.sha256= is not checked in lazy mode"}},
		{name: "too big lazy stays lazy", req: lazy, manifest: true, short: short, mode: lazy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := planFetch(tc.req, tc.sha, tc.manifest, tc.short)
			if tc.err != nil {
				if err == nil {
					t.Fatalf("planFetch = %+v, want an error", p)
				}
				var h interface{ Hint() string }
				if !errors.As(err, &h) {
					t.Fatalf("error %q has no hint", err)
				}
				for _, s := range tc.err {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not say %q", err, s)
					}
				}
				for _, s := range tc.hint {
					if !strings.Contains(h.Hint(), s) {
						t.Errorf("hint %q does not say %q", h.Hint(), s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Mode != tc.mode || p.WholeHash != tc.whole {
				t.Errorf("planFetch = mode %s, whole-image hash %v; want %s, %v", p.Mode, p.WholeHash, tc.mode, tc.whole)
			}
			if tc.note == nil && p.Note != "" {
				t.Errorf("unexpected note %q", p.Note)
			}
			for _, s := range tc.note {
				if !strings.Contains(p.Note, s) {
					t.Errorf("note %q does not say %q", p.Note, s)
				}
			}
		})
	}
}

// Whatever the combination, a whole-image hash is either checked or
// replaced by a manifest that verifies every chunk, and never checked only
// after a streaming mode served unverified bytes.
func TestPlanFetchNeverUnverified(t *testing.T) {
	for _, req := range []bootcfg.FetchMode{bootcfg.FetchDefault, bootcfg.FetchStream, bootcfg.FetchRAM, bootcfg.FetchLazy} {
		for _, sha := range []bool{false, true} {
			for _, man := range []bool{false, true} {
				for _, short := range []*ramShortage{nil, {Size: 4 << 30, Avail: 1 << 30}} {
					p, err := planFetch(req, sha, man, short)
					if err != nil {
						if !sha || man {
							t.Errorf("%s sha256=%v manifest=%v short=%v: refused without cause: %v", req, sha, man, short != nil, err)
						}
						continue
					}
					if sha && !man && p.Mode != bootcfg.FetchRAM {
						t.Errorf("%s sha256 only, short=%v: mode %s serves bytes before the whole image is checked", req, short != nil, p.Mode)
					}
					if sha && !p.WholeHash && (p.Mode != bootcfg.FetchLazy || !man) {
						t.Errorf("%s sha256=%v manifest=%v short=%v: the hash is dropped in mode %s", req, sha, man, short != nil, p.Mode)
					}
					if short != nil && p.Mode != bootcfg.FetchLazy {
						t.Errorf("%s short: mode %s holds an image that does not fit", req, p.Mode)
					}
				}
			}
		}
	}
}

func TestCheckPins(t *testing.T) {
	a, b := sha256.Sum256([]byte("a")), sha256.Sum256([]byte("b"))
	if err := checkPins(nil, a); err != nil {
		t.Errorf("no streamroot.sha256=: %v", err)
	}
	if err := checkPins(a[:], a); err != nil {
		t.Errorf("agreeing pins: %v", err)
	}
	err := checkPins(b[:], a)
	if err == nil {
		t.Fatal("pins of different images accepted")
	}
	for _, s := range []string{"streamroot.sha256=" + hex.EncodeToString(b[:]), "streamroot.manifest=", hex.EncodeToString(a[:])} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	var h interface{ Hint() string }
	if !errors.As(err, &h) || !strings.Contains(h.Hint(), "streamroot manifest IMAGE") {
		t.Errorf("error %q has no useful hint", err)
	}
}

// memSource is an image in memory.
type memSource []byte

func (m memSource) Size() int64 { return int64(len(m)) }
func (m memSource) ReadAt(_ context.Context, p []byte, off int64) error {
	if off < 0 || off > int64(len(m)) || int64(len(p)) > int64(len(m))-off {
		return io.ErrUnexpectedEOF
	}
	copy(p, m[off:])
	return nil
}

// kernel is the kernel's end of an nbd socket: it sends reads and returns
// the errno and data of each reply.
type kernel struct {
	conn   net.Conn
	handle uint64
}

func (k *kernel) read(t *testing.T, off int64, n uint32) (uint32, []byte) {
	t.Helper()
	k.handle++
	_ = k.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := k.conn.Write(nbd.Request{Type: nbd.CmdRead, Handle: k.handle, Offset: uint64(off), Length: n}.Marshal()); err != nil {
		t.Fatal(err)
	}
	var hdr [16]byte
	if _, err := io.ReadFull(k.conn, hdr[:]); err != nil {
		t.Fatal(err)
	}
	if h := binary.BigEndian.Uint64(hdr[8:]); h != k.handle {
		t.Fatalf("reply for handle %d, want %d", h, k.handle)
	}
	errno := binary.BigEndian.Uint32(hdr[4:])
	if errno != 0 {
		return errno, nil
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(k.conn, data); err != nil {
		t.Fatal(err)
	}
	return 0, data
}

// The stream daemon's fill checks the whole image; a mismatch revokes the
// device: every later kernel read fails with EIO, the cause is recorded
// (blockd.fault) and logged as an error. A matching image keeps serving.
func TestBackgroundFillRevokesOnHashMismatch(t *testing.T) {
	img := make(memSource, 3<<20+12345)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range img {
		img[i] = byte(rng.Uint32())
	}
	good := sha256.Sum256(img)
	other := sha256.Sum256([]byte("another image"))
	for _, tc := range []struct {
		name    string
		sha256  string
		revoked bool
	}{
		{"match", hex.EncodeToString(good[:]), false},
		{"mismatch", hex.EncodeToString(other[:]), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs syncbuf.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			cache, err := chunkcache.New(img, chunkcache.Options{Log: log})
			if err != nil {
				t.Fatal(err)
			}
			rev := &revocable{Backend: cache}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			kconn, dconn := net.Pipe()
			defer kconn.Close()
			served := make(chan error, 1)
			go func() { served <- nbd.Serve(ctx, dconn, rev, 4, log) }()
			k := &kernel{conn: kconn}

			// The boot reads the start before the fill.
			if errno, data := k.read(t, 0, 4096); errno != 0 || !bytes.Equal(data, img[:4096]) {
				t.Fatalf("read before the fill: errno %d", errno)
			}
			want, _ := hex.DecodeString(tc.sha256)
			var faults []error
			backgroundFill(ctx, cache, rev, want, nil, func(err error) { faults = append(faults, err) }, log)

			for _, off := range []int64{0, 1 << 20, 3 << 20} {
				errno, data := k.read(t, off, 8192)
				switch {
				case tc.revoked && errno != 5:
					t.Errorf("read at %d after the hash failed: errno %d, want EIO (5)", off, errno)
				case !tc.revoked && (errno != 0 || !bytes.Equal(data, img[off:off+8192])):
					t.Errorf("read at %d of a verified image: errno %d", off, errno)
				}
			}
			out := logs.String()
			if !tc.revoked {
				if len(faults) != 0 || !strings.Contains(out, "whole-image sha256 verified") || !strings.Contains(out, "fill complete") || !strings.Contains(out, "parallel=4") {
					t.Errorf("a matching image: faults %v, log:\n%s", faults, out)
				}
				return
			}
			if len(faults) != 1 || !strings.Contains(faults[0].Error(), "does not match streamroot.sha256=") ||
				!strings.Contains(faults[0].Error(), "streamroot.sha256 wants "+tc.sha256) {
				t.Errorf("recorded faults %v: want one naming the whole-image hash", faults)
			}
			if !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "background fill failed: the whole image does not match streamroot.sha256=") {
				t.Errorf("no error line for the revoked image:\n%s", out)
			}
			if strings.Contains(out, "fill complete") {
				t.Errorf("a fill whose image failed its hash was called complete:\n%s", out)
			}
			kconn.Close()
			<-served
		})
	}
}

// A read in flight when the image is revoked does not return its bytes.
func TestRevocableRace(t *testing.T) {
	img := make(memSource, 1<<20)
	rev := &revocable{Backend: blockingBackend{memSource: img, entered: make(chan struct{}), release: make(chan struct{})}}
	bb := rev.Backend.(blockingBackend)
	done := make(chan error, 1)
	p := make([]byte, 4096)
	for i := range p {
		p[i] = 0xAA
	}
	go func() { done <- rev.ReadAt(context.Background(), p, 0) }()
	<-bb.entered
	rev.revoke(errors.New("whole image bad"))
	close(bb.release)
	if err := <-done; err == nil || !strings.Contains(err.Error(), "whole image bad") {
		t.Fatalf("read racing the revocation: %v", err)
	}
	if err := rev.ReadAt(context.Background(), p, 0); err == nil {
		t.Fatal("read after the revocation succeeded")
	}
}

type blockingBackend struct {
	memSource
	entered, release chan struct{}
}

func (b blockingBackend) ReadAt(ctx context.Context, p []byte, off int64) error {
	close(b.entered)
	<-b.release
	return b.memSource.ReadAt(ctx, p, off)
}
