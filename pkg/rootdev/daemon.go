package rootdev

// The block daemon: /init re-executed as "@streamroot-blockd". It owns the
// nbd device the root is mounted from, so it must outlive the initramfs:
// systemd spares processes whose argv[0] starts with '@' at switch_root and
// shutdown (ROOT_STORAGE_DAEMONS), and everything it needs after the switch
// (CA pool, resolved addresses, its log file) is loaded before it.
//
// PID 1 and the daemon talk over three pipes: the Spec (JSON, fd 3), the
// answer (ready, JSON, fd 4) and the boot pipe (fd 5), whose close at exec
// starts the background fill.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/streamroot/streamroot/pkg/bootcfg"
	"github.com/streamroot/streamroot/pkg/bootlog"
	"github.com/streamroot/streamroot/pkg/boottrace"
	"github.com/streamroot/streamroot/pkg/chunkcache"
	"github.com/streamroot/streamroot/pkg/hint"
	"github.com/streamroot/streamroot/pkg/httpsrc"
	"github.com/streamroot/streamroot/pkg/manifest"
	"github.com/streamroot/streamroot/pkg/nbd"
)

// DaemonArgv0 is the daemon's argv[0]; init's main calls RunDaemon when
// its argv[0] starts with '@'.
const DaemonArgv0 = "@streamroot-blockd"

// Files in the run directory.
const (
	// faultFile holds the error that stopped the daemon fetching.
	faultFile = "blockd.fault"
	// readFaultFile holds the first read the daemon failed for the
	// kernel, as JSON {"error", "hint"}.
	readFaultFile = "blockd.readfault"
	// daemonLog is the daemon's log, kept up to date after the switch.
	daemonLog = "blockd.log"
	// traceFile is the boot trace: the chunks the kernel read, in order
	// of first read (pkg/boottrace; streamroot trace turns it into a
	// manifest's prefetch list).
	traceFile = "blockd.trace"
)

// permanentSourceError says whether asking the server again is pointless:
// the pinned image changed or is gone. Retrying would only fill the log,
// and a new file's bytes must never be mixed with the old one's.
func permanentSourceError(err error) bool {
	var se *httpsrc.StatusError
	return errors.Is(err, httpsrc.ErrChanged) ||
		errors.As(err, &se) && (se.Code == http.StatusNotFound || se.Code == http.StatusGone)
}

// noValidatorWarning says what a server without ETag and Last-Modified
// means for the boot, and what to do about it.
func noValidatorWarning(url string) string {
	return url + ": the server sends neither ETag nor Last-Modified: if the image is replaced on the server during the boot, " +
		"old and new bytes are mixed undetected (only a size change is seen); pin it with streamroot.manifest= " +
		"(streamroot manifest IMAGE) or serve it with nginx, Apache or `streamroot serve`"
}

// readFaults is the cache as the nbd server sees it, reporting failed
// reads: the kernel turns them into EIO, and the layers stage would
// otherwise report only "input/output error" for a corrupt chunk or a
// server that stopped answering.
type readFaults struct {
	*chunkcache.Cache
	rep *reporter
}

// ReadAt implements nbd.Backend. The fault is reported before the read
// returns, so it is on fd 4 before the kernel's mount can fail.
func (r *readFaults) ReadAt(ctx context.Context, p []byte, off int64) error {
	err := r.Cache.ReadAt(ctx, p, off)
	if err != nil {
		advice := "the block daemon could not fetch part of the image: see its lines above (blockd:) and the server's error log"
		switch {
		case errors.Is(err, chunkcache.ErrCorrupt):
			advice = "the image on the server is not the one the manifest pins (a damaged copy, or something on the path alters it): " +
				"copy the image again, or regenerate the manifest (streamroot manifest) and update streamroot.manifest=sha256:…"
		case errors.Is(err, context.DeadlineExceeded):
			advice = "the server stopped sending the image: check that it is up and reachable from the node's network; " +
				"streamroot.io.timeout=<s> sets how long a read may wait"
		}
		r.rep.fault(Fault{Kind: FaultRead, Error: err.Error(), Hint: advice})
	}
	return err
}

// ready is the daemon's answer on fd 4 (in a message), and the form of
// blockd.readfault.
type ready struct {
	Device string `json:"device,omitempty"`
	Size   int64  `json:"size,omitempty"`
	ETag   string `json:"etag,omitempty"`
	Error  string `json:"error,omitempty"`
	Hint   string `json:"hint,omitempty"`
}

// err is the answer's failure as an error (with its hint), or nil.
func (r ready) err() error {
	switch {
	case r.Error == "":
		return nil
	case r.Hint != "":
		return hint.New(errors.New(r.Error), r.Hint)
	}
	return errors.New(r.Error)
}

// startDaemon starts the daemon and waits until its device is up.
func startDaemon(s *Spec, o Options) (*Device, error) {
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	bootR, bootW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(o.Exe)
	cmd.Args = []string{DaemonArgv0}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{cfgR, readyW, bootR}
	cmd.Env = []string{"PATH=/bin:/sbin", "STREAMROOT_RUNDIR=" + o.RunDir}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start block daemon: %w", err)
	}
	cfgR.Close()
	readyW.Close()
	bootR.Close()
	if err := json.NewEncoder(cfgW).Encode(s); err != nil {
		return nil, err
	}
	cfgW.Close()
	o.Log.Info("block daemon started", "pid", cmd.Process.Pid, "mode", s.Mode)

	conn := newDaemonConn(readyR, bootW)
	r, err := conn.awaitReady(s.Retry + 2*time.Minute + map[bool]time.Duration{true: time.Hour}[s.Mode == bootcfg.FetchRAM])
	if err != nil {
		return nil, err
	}
	return &Device{Mode: s.Mode, Block: r.Device, Size: r.Size, ETag: r.ETag, spec: s, conn: conn, bootPipe: bootW}, nil
}

// RunDaemon is the daemon's main. It never returns while the device
// lives; it exits when the kernel closes the device or the daemon fails
// (after telling PID 1 why on fd 4).
func RunDaemon() {
	level := new(slog.LevelVar)
	h := bootlog.New(os.Stdout, level)
	log := slog.New(h).With(bootlog.StageKey, "blockd")
	rep := newReporter(os.NewFile(4, "ready"), log)
	fail := func(err error) {
		log.Error(err.Error())
		rep.answer(ready{Error: err.Error(), Hint: hint.Of(err)})
		os.Exit(1)
	}
	defer func() {
		if r := recover(); r != nil {
			fail(fmt.Errorf("block daemon: panic: %v", r))
		}
	}()
	runDir := os.Getenv("STREAMROOT_RUNDIR")
	if runDir == "" {
		runDir = DefaultRunDir
	}
	s, err := decodeSpec(os.NewFile(3, "config"))
	if err != nil {
		fail(fmt.Errorf("read config: %w", err))
	}
	if s.Debug {
		level.Set(slog.LevelDebug)
	}
	if f, err := bootlog.OpenFile(runFile(runDir, daemonLog)); err == nil {
		_ = h.AttachFile(f) // stays valid after /run moves into the new root
	}
	// The kernel must not pick the process that serves the root to free memory.
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte("-1000"), 0); err != nil {
		log.Warn("cannot protect the daemon from the OOM killer", "err", err)
	}
	if err := serve(context.Background(), s, runDir, rep, os.NewFile(5, "boot"), log); err != nil {
		fail(err)
	}
	os.Exit(0)
}

// decodeSpec reads the Spec PID 1 sent. PID 1 checked the manifest against
// its pin (NewSpec); here it is only decoded.
func decodeSpec(r io.Reader) (*Spec, error) {
	var s Spec
	if err := json.NewDecoder(r).Decode(&s); err != nil {
		return nil, err
	}
	if len(s.Manifest) > 0 {
		m, err := manifest.Parse(s.Manifest)
		if err != nil {
			return nil, err
		}
		s.manifest = m
	}
	return &s, nil
}

// source is an opened image: what the cache reads from, the HTTP source
// behind it (nil for NBD), and the server as errors name it.
type source struct {
	chunkcache.Source
	http   *httpsrc.Source
	etag   string
	server string
}

// openSource opens the Spec's source, pinning the HTTP server's address
// now (after switch_root there is no resolv.conf) or dialling the NBD
// server until rd.retry.
func openSource(ctx context.Context, s *Spec, log *slog.Logger) (*source, error) {
	switch {
	case s.URL != "":
		u, err := url.Parse(s.URL)
		if err != nil {
			return nil, err
		}
		opts, err := s.httpOptions(u.Scheme == "https", log)
		if err != nil {
			return nil, err
		}
		addr, pinned, err := pinAddr(ctx, u, s.Retry, log)
		if err != nil {
			return nil, err
		}
		opts.Pin = map[string]string{addr: pinned}
		hs, err := httpsrc.Open(ctx, s.URL, opts)
		if err != nil {
			return nil, err
		}
		return &source{Source: httpsrc.Device{Source: hs}, http: hs, etag: hs.ETag, server: u.Redacted()}, nil
	case s.NBDAddr != "":
		host, port, err := net.SplitHostPort(s.NBDAddr)
		if err != nil {
			return nil, err
		}
		ips, err := net.DefaultResolver.LookupHost(ctx, host)
		if err != nil {
			return nil, fmt.Errorf("resolve NBD server %s: %w", host, err)
		}
		r, err := redial(ctx, net.JoinHostPort(ips[0], port), s.NBDExport, s.Retry, log)
		if err != nil {
			return nil, err
		}
		return &source{Source: r, server: fmt.Sprintf("NBD server %s, export %q", s.NBDAddr, s.NBDExport)}, nil
	}
	return nil, errors.New("no source")
}

// redial connects to an NBD export, trying again every second for up to
// retry: a server that is not up yet may come. A refused export or an
// export size no image has fails at once: asking again will not help.
func redial(ctx context.Context, addr, export string, retry time.Duration, log *slog.Logger) (*nbd.Redialer, error) {
	ctx, cancel := context.WithTimeout(ctx, retry)
	defer cancel()
	for {
		r, err := nbd.NewRedialer(ctx, addr, export, func(msg string, args ...any) { log.Info(msg, args...) })
		if err == nil || ctx.Err() != nil || errors.Is(err, nbd.ErrRefused) || errors.Is(err, nbd.ErrExportSize) {
			return r, err
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// newCache opens the chunk cache for the source in the Spec's mode: the
// RAM check, manifest verification, the lazy bound, the fill's pacing, and
// where faults are reported (rep; nil: on the console only).
func newCache(s *Spec, src *source, rep *reporter, touch func(int), log *slog.Logger) (*chunkcache.Cache, *fillPacer, error) {
	// PID 1 planned the mode from the kernel line; the image's size is
	// known only now.
	if err := s.fit(src.Size(), math.MaxInt64, log); err != nil {
		return nil, nil, err
	}
	// In ram mode the whole-image hash is checked before the kernel sees a
	// byte; otherwise only a manifest or a validator keeps two versions apart.
	if src.http != nil && !src.http.HasValidator() && s.manifest == nil && (s.Mode != bootcfg.FetchRAM || len(s.SHA256) == 0) {
		log.Warn(noValidatorWarning(src.http.URL))
	}
	// The fill starts at Parallel fetches and adds more while they pay, up
	// to MaxParallel: the cap keeps one node's load on a server it shares
	// with a boot storm bounded.
	bo := chunkcache.Options{Bounded: s.Mode == bootcfg.FetchLazy, ReadTimeout: s.IOTimeout, Log: log, Permanent: permanentSourceError, Touch: touch,
		Parallel: chunkcache.DefaultParallel, MaxParallel: chunkcache.DefaultMaxParallel}
	var pacer *fillPacer
	if s.Mode == bootcfg.FetchStream {
		// The fill runs beside the booted system (ram mode's runs before
		// it, while PID 1 waits: at full speed).
		pacer = newFillPacer()
		bo.FillThread, bo.FillPace = fillThread, pacer.Pace
	}
	if s.Mode == bootcfg.FetchLazy {
		bo.CacheBytes = lazyCacheBytes(s.CacheMiB, memTotal())
		how := "default: RAM/16, at most 256 MiB; set with streamroot.cache=<MiB>"
		if s.CacheMiB > 0 {
			how = "streamroot.cache"
		}
		log.Info("lazy cache bound", "size", bootlog.MiB(bo.CacheBytes), "from", how)
	}
	// Before the switch PID 1 learns of the fault on fd 4, to say why the
	// root could not be read; the booted system finds it in blockd.fault.
	bo.OnPermanent = rep.permanent
	if m := s.manifest; m != nil {
		bo.Chunk = m.Chunk
		bo.Verify = func(i int, data []byte) error {
			if err := m.VerifyChunk(i, data); err != nil {
				log.Error("refusing a corrupt chunk: it never reaches the kernel", "err", err)
				return err
			}
			return nil
		}
		log.Info("every chunk is verified against the manifest", "chunks", m.NumChunks())
	}
	cache, err := chunkcache.New(src, bo)
	if err != nil {
		return nil, nil, hint.New(fmt.Errorf("%s: %w", src.server, err),
			"the server reports a size no image has: check the server (an NBD export's size, an HTTP Content-Range) and anything between it and this node")
	}
	return cache, pacer, nil
}

// serve opens the source, attaches the nbd device, answers PID 1 through
// rep, and serves the kernel until it closes the device; in stream mode
// the background fill starts when boot reaches EOF (PID 1 exec'd the real
// init, or gave up). Until then rep answers PID 1's syncs on boot.
func serve(ctx context.Context, s *Spec, runDir string, rep *reporter, boot io.Reader, log *slog.Logger) error {
	src, err := openSource(ctx, s, log)
	if err != nil {
		return err
	}
	// The handle follows /run/initramfs when /run moves into the real
	// root, so the fault files stay the booted system's record.
	if run, err := os.OpenRoot(runDir); err == nil {
		rep.run = run
	} else {
		log.Warn("faults will not be recorded for the booted system", "err", err)
	}
	// The trace is recorded only where it can be written, and only while
	// writeTrace writes it.
	var touch func(int)
	rec := boottrace.NewRecorder(time.Now())
	if rep.run != nil {
		touch = rec.Touch
	}
	cache, pacer, err := newCache(s, src, rep, touch, log)
	if err != nil {
		return err
	}
	if touch != nil {
		go writeTrace(ctx, rep.run, rec, cache.ChunkSize(), log)
	}
	if m := s.manifest; m != nil && len(m.Prefetch) > 0 && s.Mode != bootcfg.FetchRAM {
		go prefetch(ctx, cache, m.Prefetch, log) // ram mode's fill fetches everything first anyway
	}
	if s.Mode == bootcfg.FetchRAM {
		if err := fillAndCheck(ctx, cache, s.SHA256, nil, log); err != nil {
			var bad *hashMismatchError
			if errors.As(err, &bad) {
				err = hint.New(err, sha256Hint)
			}
			return err
		}
	}
	dev, err := nbd.Attach(nbd.AttachOptions{Size: cache.Size(), BlockSize: 512, ReadOnly: true, Timeout: s.IOTimeout + 30*time.Second})
	if err != nil {
		return err
	}
	// The kernel reads through rev: a whole image that fails its hash
	// after the fill is revoked, and no read is answered from it again.
	// readFaults records the first read that fails for the kernel, for the
	// layers stage's failure block.
	rev := &revocable{Backend: &readFaults{Cache: cache, rep: rep}}
	served := make(chan error, 1)
	go func() { served <- nbd.Serve(ctx, dev.Conn, rev, 32, log) }()
	if err := nbd.WaitReady(dev.Index, cache.Size(), 30*time.Second); err != nil {
		return err
	}
	log.Info("serving the image", "device", dev.Path, "size", bootlog.MiB(cache.ImageSize()), "mode", s.Mode)
	rep.answer(ready{Device: dev.Path, Size: cache.ImageSize(), ETag: src.etag})
	booted := make(chan struct{})
	go func() { rep.serveSyncs(boot); close(booted) }()

	if s.Mode == bootcfg.FetchStream {
		// Boot reads go first: the fill starts when the real init runs
		// (PID 1's end of the pipe closes on exec) or PID 1 gave up.
		<-booted
		go backgroundFill(ctx, cache, rev, s.SHA256, pacer, rep.permanent, log)
	}
	err = <-served
	log.Warn("the kernel closed the device", "err", err, "stats", fmt.Sprintf("%+v", cache.Stats()))
	return nil
}

// prefetch fetches the signed manifest's boot-trace chunks behind the
// kernel's reads and says on the console how far it got.
func prefetch(ctx context.Context, cache *chunkcache.Cache, list []int, log *slog.Logger) {
	defer survive("boot-trace prefetch", log)
	r := cache.Prefetch(ctx, list)
	log.Info("prefetched the boot trace's chunks", "chunks", r.Fetched, "planned", r.Planned, "listed", r.Listed, "failed", r.Failed, "took", r.Took.Round(time.Millisecond))
}

// writeTrace keeps blockd.trace up to date every two seconds for the
// first ten minutes, which a boot fits in; the recorder is bounded, so
// the file is too.
func writeTrace(ctx context.Context, run *os.Root, rec *boottrace.Recorder, chunkSize int64, log *slog.Logger) {
	defer survive("boot trace", log)
	defer rec.Stop()
	var last []byte
	for range 300 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
		if data := rec.Marshal(chunkSize); !bytes.Equal(data, last) {
			if err := run.WriteFile(traceFile, data, 0o644); err != nil {
				log.Warn("cannot record the boot trace", "file", run.Name()+"/"+traceFile, "err", err)
				return
			}
			last = data
		}
	}
}

// survive, deferred by the daemon's background goroutines, keeps a panic in
// one from taking the device down with it: the daemon serves the root, and
// what is local keeps being served.
func survive(what string, log *slog.Logger) {
	if r := recover(); r != nil {
		log.Error(fmt.Sprintf("%s failed: panic: %v; the root keeps reading from the server", what, r))
	}
}

// backgroundFill is stream mode's fill after the boot. A whole image that
// fails streamroot.sha256= is revoked: the pinned image is not the one
// being served, so nothing more of it may reach the kernel.
func backgroundFill(ctx context.Context, cache *chunkcache.Cache, rev *revocable, want []byte, pacer *fillPacer, recordFault func(error), log *slog.Logger) {
	defer survive("background fill", log)
	// The whole-image hash after the fill is CPU work for the background
	// too: on this goroutine's own thread, at the fill's priority.
	if pacer != nil {
		runtime.LockOSThread()
		lower, _ := fillThread()
		lower()
	}
	var bad *hashMismatchError
	switch err := fillAndCheck(ctx, cache, want, pacer, log); {
	case err == nil:
	case errors.As(err, &bad):
		revokeImage(rev, recordFault, err, log)
	case cache.Err() != nil:
		log.Error("background fill failed: the image on the server is not the one this node booted; "+
			"what was fetched is still served, other reads fail with I/O errors; reboot to boot the new image", "err", err)
	default:
		log.Error("background fill failed; the root keeps reading from the server", "err", err)
	}
}

// fillAndCheck fetches every chunk, logging progress every few seconds, and
// checks the whole-image hash when one was pinned.
func fillAndCheck(ctx context.Context, c *chunkcache.Cache, want []byte, pacer *fillPacer, log *slog.Logger) error {
	start := time.Now()
	last := time.Now()
	err := c.Fill(ctx, func(s chunkcache.Stats) {
		if time.Since(last) < 2*time.Second {
			return
		}
		last = time.Now()
		p := bootlog.Fill{Done: int64(s.Present) * c.ImageSize() / int64(max(s.Chunks, 1)), Total: c.ImageSize(), Percent: int64(s.Present * 100 / max(s.Chunks, 1))}
		if pacer != nil && pacer.Busy() {
			p.HeldTo = fillBusyRate
		}
		log.Info(p.Message())
	})
	if err != nil {
		return err
	}
	// The hash comes before "fill complete": that line tells the booted
	// system the local copy is the pinned image and the server can go.
	if len(want) > 0 {
		h := sha256.New()
		if _, err := io.Copy(h, bufio.NewReaderSize(c.Reader(), 1<<20)); err != nil {
			return err
		}
		if got := h.Sum(nil); !bytes.Equal(got, want) {
			return &hashMismatchError{got: hex.EncodeToString(got), want: hex.EncodeToString(want)}
		}
		log.Info("whole-image sha256 verified")
	}
	s := c.Stats()
	log.Info(fmt.Sprintf("fill complete: %s in %s; the server is no longer needed", bootlog.MiB(c.ImageSize()), time.Since(start).Round(time.Millisecond)),
		"demand_chunks", s.DemandFetches, "fill_chunks", s.FillFetches, "parallel", s.FillParallel, "parallel_peak", s.FillParallelPeak)
	return nil
}

// hashMismatchError is a complete image whose SHA-256 is not the pinned one.
type hashMismatchError struct{ got, want string }

func (e *hashMismatchError) Error() string {
	return fmt.Sprintf("image sha256 is %s, streamroot.sha256 wants %s", e.got, e.want)
}

// revocable is what the kernel reads: the cache, until revoke. After that
// every read fails, whatever is local: a whole image that failed its hash
// is not the pinned image, even if each chunk passed its own check.
type revocable struct {
	nbd.Backend
	cause atomic.Pointer[error]
}

// ReadAt serves from the backend unless the image was revoked.
func (r *revocable) ReadAt(ctx context.Context, p []byte, off int64) error {
	if err := r.revoked(); err != nil {
		return err
	}
	if err := r.Backend.ReadAt(ctx, p, off); err != nil {
		return err
	}
	// A read that raced the revocation does not hand out its bytes either.
	if err := r.revoked(); err != nil {
		clear(p)
		return err
	}
	return nil
}

// revoke makes every later read fail with cause.
func (r *revocable) revoke(cause error) {
	err := fmt.Errorf("the image was revoked: %w", cause)
	r.cause.CompareAndSwap(nil, &err)
}

func (r *revocable) revoked() error {
	if p := r.cause.Load(); p != nil {
		return *p
	}
	return nil
}

// revokeImage stops serving an image whose whole-image hash failed after
// the fill, and says so where the operator and the booted system look:
// blockd.fault and the console.
func revokeImage(rev *revocable, record func(error), cause error, log *slog.Logger) {
	err := fmt.Errorf("the whole image does not match streamroot.sha256= (%w)", cause)
	rev.revoke(err)
	record(err)
	log.Error("background fill failed: " + err.Error() + ": the block daemon stops serving it; every read of the root device now fails with I/O errors; " +
		"the image on the server is not the one the kernel line pins: fix the image or streamroot.sha256= and reboot")
}

// pinAddr resolves the URL's host now, while the initramfs's resolv.conf
// still exists. A DNS server that does not answer (yet) is asked again with
// backoff for up to retry (rd.retry), as an HTTP server that does not answer
// would be; a name the DNS server says does not exist fails at once. Errors
// name the (redacted) URL: the host alone does not say which root failed.
func pinAddr(ctx context.Context, u *url.URL, retry time.Duration, log *slog.Logger) (string, string, error) {
	return pinAddrWith(ctx, net.DefaultResolver.LookupHost, u, retry, log)
}

// pinAddrWith is pinAddr with the lookup as a parameter, for tests.
func pinAddrWith(ctx context.Context, lookup func(context.Context, string) ([]string, error), u *url.URL, retry time.Duration, log *slog.Logger) (string, string, error) {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	host := u.Hostname()
	addr := net.JoinHostPort(host, port)
	if net.ParseIP(host) != nil {
		return addr, addr, nil
	}
	if retry <= 0 {
		retry = 3 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, retry)
	defer cancel()
	var noted time.Time
	for attempt := 0; ; attempt++ {
		ips, err := lookup(ctx, host)
		if err == nil && len(ips) > 0 {
			if attempt > 0 {
				log.Info("resolved after retrying", "host", host, "attempts", attempt+1)
			}
			return addr, net.JoinHostPort(ips[0], port), nil
		}
		if err == nil {
			err = fmt.Errorf("lookup %s: no addresses", host)
		}
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return "", "", hint.New(fmt.Errorf("%s: resolve %s: %w", u.Redacted(), host, err),
				"the DNS server says the name does not exist: check the host name in root= and the DNS servers "+
					"the DHCP lease (or nameserver=) gives")
		}
		// Full jitter, as httpsrc's backoff: a rack booting at once spreads
		// its queries.
		wait := 250*time.Millisecond + rand.N(min(250*time.Millisecond<<min(attempt, 5), 5*time.Second))
		if ctx.Err() == nil && time.Since(noted) > 5*time.Second {
			noted = time.Now()
			log.Warn("retrying", "url", u.Redacted(), "err", err)
		}
		select {
		case <-ctx.Done():
			return "", "", hint.New(fmt.Errorf("%s: resolve %s: no answer within %s (rd.retry): last error: %w", u.Redacted(), host, retry, err),
				"check that the DNS server the DHCP lease (or nameserver=) names is up, reachable from the node's network "+
					"and knows the name, or use the server's address in root=; rd.retry=<s> sets how long to keep trying")
		case <-time.After(wait):
		}
	}
}

// lazyCacheBytes is lazy mode's memory bound: streamroot.cache= when
// given, else a sixteenth of the RAM, at most 256 MiB. Lazy mode is for
// nodes whose RAM the image does not fit in, and the daemon cannot be
// OOM-killed, so the default stays a small fraction. blockd raises a bound
// below one chunk to one chunk.
func lazyCacheBytes(argMiB, memTotal int64) int64 {
	if argMiB > 0 {
		return argMiB << 20
	}
	if memTotal <= 0 { // no /proc/meminfo: assume a small node
		return 64 << 20
	}
	return min(memTotal/16, 256<<20)
}
