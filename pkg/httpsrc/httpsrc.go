// Package httpsrc reads a boot image over HTTP(S) with Range requests.
//
// The image is pinned at the first response (size, ETag, Last-Modified);
// every later range carries If-Range, so a file replaced on the server shows
// up as a 200 or a different Content-Range and is refused: a boot never mixes
// bytes of two images. Ranges are aligned chunks so HTTP caches (nginx slice,
// CDNs) can serve them, and a chunk whose body breaks off is resumed from the
// byte where it stopped.
package httpsrc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// Options tune a Source.
type Options struct {
	// RootCAs verifies HTTPS servers; nil uses the system pool.
	RootCAs *x509.CertPool
	// InsecureSkipVerify disables certificate checks (rd.noverifyssl).
	InsecureSkipVerify bool
	// Stall is how long a transfer may make no progress before it fails
	// (rd.retry); retries of failed requests happen inside it.
	Stall time.Duration
	Log   *slog.Logger
	// Pin maps "host:port" to the "ip:port" to dial. The block daemon
	// resolves names before switch_root, because afterwards its own root
	// (the emptied initramfs) has no resolv.conf.
	Pin map[string]string
}

// Source is one pinned image on an HTTP server.
type Source struct {
	URL          string
	Size         int64
	ETag         string
	LastModified string
	client       *retryablehttp.Client
	log          *slog.Logger
	stall        time.Duration

	received atomic.Int64 // body bytes read, for progress and stall detection

	mu        sync.Mutex
	lastErr   error
	lastNoted time.Time
}

// StatusError is an HTTP answer that retrying will not change.
type StatusError struct {
	URL    string
	Status string
	Code   int
}

func (e *StatusError) Error() string { return fmt.Sprintf("GET %s: %s", e.URL, e.Status) }

// Hint tells the operator what to check.
func (e *StatusError) Hint() string {
	switch e.Code {
	case http.StatusNotFound, http.StatusGone:
		return "the server has no file at that path: check root=live:<URL> and that the image was copied to the server"
	case http.StatusForbidden, http.StatusUnauthorized:
		return "the server refuses to serve the file: check its permissions and access rules"
	}
	return "check the server's error log"
}

// TLSError is a certificate the initramfs does not trust: fatal, never
// retried, and never silently accepted.
type TLSError struct {
	URL string
	Err *tls.CertificateVerificationError
}

func (e *TLSError) Error() string {
	host := e.URL
	if len(e.Err.UnverifiedCertificates) > 0 {
		host = e.URL + " (certificate subject " + e.Err.UnverifiedCertificates[0].Subject.String() + ")"
	}
	return fmt.Sprintf("HTTPS %s: certificate not trusted: %v", host, e.Err.Err)
}

func (e *TLSError) Unwrap() error { return e.Err }

// Hint tells the operator what to check.
func (e *TLSError) Hint() string {
	return "add the site CA to the initramfs (make initramfs EXTRA_CA=ca.pem) or fix the server's certificate (its names must include the host in root=); rd.noverifyssl disables the check (unsafe)"
}

// ErrChanged means the file on the server is not the one the boot started with.
var ErrChanged = errors.New("image changed on the server during the boot")

// ErrNoRanges means the server ignores Range requests.
var ErrNoRanges = errors.New("server does not support Range requests")

// Open pins the image at url: size and validators come from a one-byte
// ranged GET (some servers and caches answer HEAD differently from GET).
func Open(ctx context.Context, url string, o Options) (*Source, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Stall <= 0 {
		o.Stall = 3 * time.Minute
	}
	s := &Source{URL: url, log: o.Log, stall: o.Stall}
	s.client = newClient(o, s.recordErr)

	ctx, cancel := context.WithTimeout(ctx, o.Stall)
	defer cancel()
	resp, err := s.do(ctx, 0, 0, "")
	if err != nil {
		var certErr *tls.CertificateVerificationError
		if errors.As(err, &certErr) {
			return nil, &TLSError{URL: url, Err: certErr}
		}
		return nil, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusPartialContent:
		_, _, size, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return nil, fmt.Errorf("GET %s: %w", url, err)
		}
		s.Size = size
	case http.StatusOK:
		return nil, fmt.Errorf("GET %s: %w (it answered 200 to a Range request): use nginx, Apache or `streamroot serve`", url, ErrNoRanges)
	default:
		return nil, &StatusError{URL: url, Status: resp.Status, Code: resp.StatusCode}
	}
	s.ETag = resp.Header.Get("ETag")
	s.LastModified = resp.Header.Get("Last-Modified")
	if strings.HasPrefix(s.ETag, "W/") {
		// A weak validator is not allowed in If-Range (RFC 9110 13.1.5).
		s.ETag = ""
	}
	return s, nil
}

func newClient(o Options, record func(error)) *retryablehttp.Client {
	tr := &http.Transport{
		Proxy: nil, // a boot network has no proxy environment; never guess one
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if pinned, ok := o.Pin[addr]; ok {
				addr = pinned
			}
			d := net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig:       &tls.Config{RootCAs: o.RootCAs, InsecureSkipVerify: o.InsecureSkipVerify},
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     false, // parallel ranges want parallel TCP streams
	}
	c := retryablehttp.NewClient()
	c.HTTPClient = &http.Client{Transport: tr}
	c.Logger = nil
	c.RetryMax = 1 << 20 // bounded by the stall deadline, not a count
	c.RetryWaitMin = 250 * time.Millisecond
	c.RetryWaitMax = 5 * time.Second
	c.Backoff = backoff
	c.CheckRetry = func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		if err != nil {
			record(err)
			var dnsErr *net.DNSError
			if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
				return false, err // a name that does not exist will not appear
			}
			var certErr *tls.CertificateVerificationError
			if errors.As(err, &certErr) {
				return false, err
			}
		} else if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
			record(fmt.Errorf("server answered %s", resp.Status))
		}
		return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
	}
	return c
}

// backoff waits as a 429/503's Retry-After says, else a random time up to
// min·2^attempt capped at max ("full jitter"): a rack booting at once
// spreads its retries, and a server that comes back is found within max.
// retryablehttp's linear jitter multiplies max by the attempt number, so
// after a long outage a node would wait minutes between tries.
func backoff(min, max time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) &&
		resp.Header.Get("Retry-After") != "" {
		return retryablehttp.DefaultBackoff(min, max, attempt, resp)
	}
	ceil := retryablehttp.DefaultBackoff(min, max, attempt, nil)
	return min + rand.N(ceil-min+1)
}

func (s *Source) recordErr(err error) {
	s.mu.Lock()
	s.lastErr = err
	// An operator watching the console must see that the node is retrying,
	// but one line every few seconds is enough.
	note := time.Since(s.lastNoted) > 5*time.Second
	if note {
		s.lastNoted = time.Now()
	}
	s.mu.Unlock()
	if note {
		s.log.Warn("retrying", "url", s.URL, "err", err)
	}
}

// LastError is the most recent transient failure, for messages when the
// stall deadline ends the retries.
func (s *Source) LastError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// do sends GET Range: bytes=off-end with If-Range once the image is pinned.
func (s *Source) do(ctx context.Context, off, end int64, ifRange string) (*http.Response, error) {
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", s.URL, err)
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, end))
	req.Header.Set("User-Agent", "streamroot")
	if ifRange != "" {
		req.Header.Set("If-Range", ifRange)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			if last := s.LastError(); last != nil {
				return nil, fmt.Errorf("GET %s: gave up (%v): last error: %w", s.URL, ctx.Err(), last)
			}
			return nil, fmt.Errorf("GET %s: gave up: %w", s.URL, ctx.Err())
		}
		return nil, err
	}
	return resp, nil
}

func (s *Source) validator() string {
	if s.ETag != "" {
		return s.ETag
	}
	return s.LastModified
}

// parseContentRange parses "bytes first-last/size".
func parseContentRange(h string) (first, last, size int64, err error) {
	rest, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return 0, 0, 0, fmt.Errorf("bad Content-Range %q", h)
	}
	rng, total, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, 0, fmt.Errorf("bad Content-Range %q", h)
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, 0, fmt.Errorf("bad Content-Range %q", h)
	}
	if first, err = strconv.ParseInt(a, 10, 64); err != nil || first < 0 {
		return 0, 0, 0, fmt.Errorf("bad Content-Range %q", h)
	}
	if last, err = strconv.ParseInt(b, 10, 64); err != nil || last < first {
		return 0, 0, 0, fmt.Errorf("bad Content-Range %q", h)
	}
	if size, err = strconv.ParseInt(total, 10, 64); err != nil || size <= last {
		return 0, 0, 0, fmt.Errorf("bad Content-Range %q (size must be known and larger than the range)", h)
	}
	return first, last, size, nil
}

// ReadRange fills p with the image bytes at off, resuming a body that breaks
// off mid-way; it returns only when p is full and every byte came from the
// pinned image, or with an error.
func (s *Source) ReadRange(ctx context.Context, p []byte, off int64) error {
	if off < 0 || off+int64(len(p)) > s.Size {
		return fmt.Errorf("read %s: range %d+%d outside image of %d bytes", s.URL, off, len(p), s.Size)
	}
	done := 0
	for done < len(p) {
		cur := off + int64(done)
		end := off + int64(len(p)) - 1
		resp, err := s.do(ctx, cur, end, s.validator())
		if err != nil {
			return err
		}
		n, err := s.readBody(resp, p[done:], cur, end)
		done += n
		if err == nil {
			continue
		}
		if errors.Is(err, ErrChanged) || ctx.Err() != nil {
			return err
		}
		var se *StatusError
		if errors.As(err, &se) {
			return err
		}
		// A broken body is transient: keep what arrived and ask for the rest.
		s.recordErr(err)
		s.log.Debug("range broke off; resuming", "offset", off+int64(done), "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("GET %s: %w (last error: %v)", s.URL, ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

func (s *Source) readBody(resp *http.Response, p []byte, first, last int64) (int, error) {
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusPartialContent:
	case http.StatusOK, http.StatusPreconditionFailed:
		// 200 to an If-Range request: the validator no longer matches.
		return 0, fmt.Errorf("GET %s: %w (the server answered %s to If-Range %s)", s.URL, ErrChanged, resp.Status, s.validator())
	case http.StatusRequestedRangeNotSatisfiable:
		return 0, fmt.Errorf("GET %s: %w (the server says range %d-%d is beyond the file: it shrank)", s.URL, ErrChanged, first, last)
	default:
		return 0, &StatusError{URL: s.URL, Status: resp.Status, Code: resp.StatusCode}
	}
	f, l, size, err := parseContentRange(resp.Header.Get("Content-Range"))
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", s.URL, err)
	}
	if size != s.Size {
		return 0, fmt.Errorf("GET %s: %w (size was %d, now %d)", s.URL, ErrChanged, s.Size, size)
	}
	if f != first || l != last {
		return 0, fmt.Errorf("GET %s: asked for bytes %d-%d, got %d-%d", s.URL, first, last, f, l)
	}
	if et := resp.Header.Get("ETag"); s.ETag != "" && et != "" && et != s.ETag {
		return 0, fmt.Errorf("GET %s: %w (ETag was %s, now %s)", s.URL, ErrChanged, s.ETag, et)
	}
	want := int(last - first + 1)
	n, err := io.ReadFull(countingReader{resp.Body, &s.received}, p[:want])
	if err != nil {
		return n, fmt.Errorf("GET %s: body broke off after %d of %d bytes: %w", s.URL, n, want, err)
	}
	return n, nil
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// Received is the number of body bytes read from the server so far,
// including bytes of ranges that later broke off.
func (s *Source) Received() int64 { return s.received.Load() }

// Device adapts a Source to the block daemon's source interface.
type Device struct{ *Source }

// ReadAt reads the pinned image's bytes at off.
func (d Device) ReadAt(ctx context.Context, p []byte, off int64) error {
	return d.ReadRange(ctx, p, off)
}

// Size is the image's size.
func (d Device) Size() int64 { return d.Source.Size }

// GetSmall fetches a small file (a manifest) whole, with the same client
// settings and retries as an image, refusing anything over limit bytes.
func GetSmall(ctx context.Context, url string, limit int64, o Options) ([]byte, error) {
	if o.Stall <= 0 {
		o.Stall = 3 * time.Minute
	}
	var last error
	c := newClient(o, func(err error) { last = err })
	ctx, cancel := context.WithTimeout(ctx, o.Stall)
	defer cancel()
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	req.Header.Set("User-Agent", "streamroot")
	resp, err := c.Do(req)
	if err != nil {
		if last != nil && ctx.Err() != nil {
			return nil, fmt.Errorf("GET %s: no answer within %s: last error: %w", url, o.Stall, last)
		}
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &StatusError{URL: url, Status: resp.Status, Code: resp.StatusCode}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("GET %s: larger than %d bytes", url, limit)
	}
	return data, nil
}
