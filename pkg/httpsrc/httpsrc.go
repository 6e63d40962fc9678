// Package httpsrc reads a boot image over HTTP(S) with Range requests.
//
// The image is pinned at the first response (final URL after redirects,
// size, ETag, Last-Modified); every later range goes to that URL and carries
// If-Range with a strong ETag or else Last-Modified, and every answer's size,
// ETag and Last-Modified are compared with the pinned ones, so a file
// replaced on the server is refused: a boot never mixes bytes of two images
// that a validator tells apart (HasValidator says whether there is one).
// Ranges are aligned chunks so HTTP caches (nginx slice, CDNs) can serve
// them, and a chunk whose body breaks off is resumed from the byte where it
// stopped. URLs in messages and logs never carry a password.
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
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/streamroot/streamroot/pkg/hint"
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
	// (the emptied initramfs) has no resolv.conf. When Pin is non-nil, Open
	// resolves the host of every redirect the same way (the map itself is
	// not modified).
	Pin map[string]string
	// Proxy picks a proxy per request, as http.Transport.Proxy; nil (the
	// boot: its network has no proxy environment) uses none. The host CLI
	// passes http.ProxyFromEnvironment.
	Proxy func(*http.Request) (*url.URL, error)
}

// MaxImageSize bounds the image size a server may claim (16 TiB, far
// beyond any live image). The size sets the kernel device's size and the
// block daemon's bookkeeping; a larger claim is a broken or hostile server.
const MaxImageSize = 16 << 40

// MaxRedirects bounds the redirects Open follows.
const MaxRedirects = 10

// lookupHost resolves redirect targets when pinning; tests replace it.
var lookupHost = net.DefaultResolver.LookupHost

// Source is one pinned image on an HTTP server.
type Source struct {
	// URL is the image's URL as given to Open, password redacted.
	URL string
	// FinalURL is where the redirects at Open led (password redacted);
	// every range is read from there. It equals URL without redirects.
	FinalURL     string
	Size         int64
	ETag         string // as the server sent it, W/ prefix included
	LastModified string
	client       *retryablehttp.Client
	log          *slog.Logger
	stall        time.Duration

	url    *url.URL // the final URL, credentials included: requests only
	orig   *url.URL // the URL as given, to scrub its password from errors
	name   string   // the redacted URL(s) for messages
	pins   *pinTable
	opened atomic.Bool // redirects are followed only while opening

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

// RedirectError is a redirect that is not followed: fatal, never retried.
type RedirectError struct {
	From, To string // redacted
	Reason   string
}

func (e *RedirectError) Error() string {
	return fmt.Sprintf("redirect from %s to %s refused: %s", e.From, e.To, e.Reason)
}

// Hint tells the operator what to check.
func (e *RedirectError) Hint() string {
	return "put the URL the server should serve the image from in root= (https for an https boot), or fix the redirect on the server"
}

// CheckRedirect is the redirect policy of every client here (an
// http.Client.CheckRedirect): at most MaxRedirects hops, only to http or
// https, and never from https to plain http, where anyone on the path could
// swap the image.
func CheckRedirect(req *http.Request, via []*http.Request) error {
	prev := via[len(via)-1].URL
	refuse := func(reason string) error {
		return &RedirectError{From: prev.Redacted(), To: req.URL.Redacted(), Reason: reason}
	}
	if len(via) >= MaxRedirects {
		return refuse(fmt.Sprintf("more than %d redirects (a loop?)", MaxRedirects))
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return refuse(fmt.Sprintf("scheme %q is neither http nor https", req.URL.Scheme))
	}
	for _, v := range via {
		if v.URL.Scheme == "https" && req.URL.Scheme != "https" {
			return refuse("it downgrades HTTPS to plain HTTP, which anyone on the path can read and change")
		}
	}
	return nil
}

// checkSize refuses a size no image can have.
func checkSize(name string, size int64, from string) error {
	if size <= 0 || size > MaxImageSize {
		return hint.New(fmt.Errorf("GET %s: the server claims an image of %d bytes (%s): refusing sizes outside 1 byte to %d bytes (16 TiB)", name, size, from, int64(MaxImageSize)),
			"the server or a proxy on the way is broken: check what it answers to a Range request (curl -r 0-0 -I URL)")
	}
	return nil
}

// checkRange says whether n bytes at off lie inside an image of size bytes,
// without computing off+n (which wraps near MaxInt64).
func checkRange(off int64, n int, size int64) bool {
	return off >= 0 && n >= 0 && off <= size && int64(n) <= size-off
}

// pinTable is Options.Pin plus the redirect targets Open resolved.
type pinTable struct {
	mu sync.Mutex
	m  map[string]string
}

func newPinTable(pin map[string]string) *pinTable {
	if pin == nil {
		return nil
	}
	t := &pinTable{m: make(map[string]string, len(pin))}
	for k, v := range pin {
		t.m[k] = v
	}
	return t
}

func (t *pinTable) get(addr string) string {
	if t == nil {
		return addr
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if p, ok := t.m[addr]; ok {
		return p
	}
	return addr
}

// add resolves u's host now, while a resolver exists, unless it is pinned.
func (t *pinTable) add(ctx context.Context, u *url.URL) error {
	addr := hostPort(u)
	t.mu.Lock()
	_, ok := t.m[addr]
	t.mu.Unlock()
	if ok || net.ParseIP(u.Hostname()) != nil {
		return nil
	}
	ips, err := lookupHost(ctx, u.Hostname())
	if err == nil && len(ips) == 0 {
		err = errors.New("no address")
	}
	if err != nil {
		return fmt.Errorf("resolve %s (a redirect leads there): %w", u.Hostname(), err)
	}
	_, port, _ := net.SplitHostPort(addr)
	t.mu.Lock()
	t.m[addr] = net.JoinHostPort(ips[0], port)
	t.mu.Unlock()
	return nil
}

func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// scrub rewrites an error whose text holds u's password (net/http and
// retryablehttp redact their own, this catches any other path).
func scrub(err error, u *url.URL) error {
	if err == nil || u == nil || u.User == nil {
		return err
	}
	pw, ok := u.User.Password()
	if !ok || pw == "" {
		return err
	}
	msg := err.Error()
	clean := msg
	for _, secret := range []string{u.User.String(), u.User.Username() + ":" + pw} {
		clean = strings.ReplaceAll(clean, secret+"@", u.User.Username()+":xxxxx@")
	}
	if clean == msg {
		return err
	}
	return &scrubbed{msg: clean, err: err}
}

func (s *Source) scrub(err error) error { return scrub(scrub(err, s.orig), s.url) }

type scrubbed struct {
	msg string
	err error
}

func (s *scrubbed) Error() string { return s.msg }
func (s *scrubbed) Unwrap() error { return s.err }

// parseURL parses an image URL; its error never repeats the URL (it may
// hold a password).
func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("bad URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%s: only http:// and https:// URLs are supported", u.Redacted())
	}
	return u, nil
}

// Open pins the image at rawURL: redirects are followed here, once, and
// size and validators come from a one-byte ranged GET (some servers and
// caches answer HEAD differently from GET).
func Open(ctx context.Context, rawURL string, o Options) (*Source, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Stall <= 0 {
		o.Stall = 3 * time.Minute
	}
	u, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	s := &Source{URL: u.Redacted(), FinalURL: u.Redacted(), url: u, orig: u, name: u.Redacted(), log: o.Log, stall: o.Stall, pins: newPinTable(o.Pin)}
	s.client = newClient(o, s.recordErr, s.checkRedirect, s.pins.get)

	ctx, cancel := context.WithTimeout(ctx, o.Stall)
	defer cancel()
	resp, err := s.do(ctx, 0, 0, "")
	if err != nil {
		var certErr *tls.CertificateVerificationError
		var re *RedirectError
		switch {
		case errors.As(err, &re):
			return nil, re
		case errors.As(err, &certErr):
			return nil, &TLSError{URL: s.name, Err: certErr}
		}
		return nil, err
	}
	defer resp.Body.Close()
	s.opened.Store(true)
	if final := resp.Request.URL; final.String() != u.String() {
		s.url, s.FinalURL = final, final.Redacted()
		s.name = fmt.Sprintf("%s (redirected to %s)", s.URL, s.FinalURL)
		s.log.Info("the image URL redirects; every range is read from where it leads", "url", s.URL, "final", s.FinalURL)
	}
	switch resp.StatusCode {
	case http.StatusPartialContent:
		h := resp.Header.Get("Content-Range")
		_, _, size, err := parseContentRange(h)
		if err != nil {
			return nil, fmt.Errorf("GET %s: %w", s.name, err)
		}
		if err := checkSize(s.name, size, "Content-Range "+strconv.Quote(h)); err != nil {
			return nil, err
		}
		s.Size = size
	case http.StatusOK:
		return nil, fmt.Errorf("GET %s: %w (it answered 200 to a Range request): use nginx, Apache or `streamroot serve`", s.name, ErrNoRanges)
	default:
		return nil, s.statusError(resp)
	}
	s.ETag = resp.Header.Get("ETag")
	s.LastModified = resp.Header.Get("Last-Modified")
	return s, nil
}

// HasValidator says whether the server sent an ETag or Last-Modified. Without
// one, an image replaced on the server between two ranges is detected only
// if its size changed: only a manifest (or a whole-image hash checked before
// use) keeps the bytes of two images apart.
func (s *Source) HasValidator() bool { return s.ETag != "" || s.LastModified != "" }

// checkRedirect follows redirects only while the image is opened, pinning
// every new host when the caller pins the first.
func (s *Source) checkRedirect(req *http.Request, via []*http.Request) error {
	if s.opened.Load() {
		// The image was pinned at one URL; a redirect now is an answer
		// like any other, and refused.
		return http.ErrUseLastResponse
	}
	if err := CheckRedirect(req, via); err != nil {
		return err
	}
	if s.pins != nil {
		return s.pins.add(req.Context(), req.URL)
	}
	return nil
}

func (s *Source) statusError(resp *http.Response) *StatusError {
	e := &StatusError{URL: s.name, Status: resp.Status, Code: resp.StatusCode}
	if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode >= 300 && resp.StatusCode < 400 {
		if to, err := s.url.Parse(loc); err == nil {
			e.Status += " to " + to.Redacted() + " (redirects are followed only when the image is opened)"
		}
	}
	return e
}

func newClient(o Options, record func(error), checkRedirect func(*http.Request, []*http.Request) error, pinned func(string) string) *retryablehttp.Client {
	tr := &http.Transport{
		Proxy: o.Proxy, // nil unless asked: a boot network has no proxy environment; never guess one
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
			return d.DialContext(ctx, network, pinned(addr))
		},
		TLSClientConfig:       &tls.Config{RootCAs: o.RootCAs, InsecureSkipVerify: o.InsecureSkipVerify},
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     false, // parallel ranges want parallel TCP streams
	}
	c := retryablehttp.NewClient()
	c.HTTPClient = &http.Client{Transport: tr, CheckRedirect: checkRedirect}
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
			var re *RedirectError
			if errors.As(err, &re) {
				return false, err
			}
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
	err = s.scrub(err)
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
		s.log.Warn("retrying", "url", s.name, "err", s.scrub(err))
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
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, s.url.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", s.name, s.scrub(err))
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
				return nil, fmt.Errorf("GET %s: gave up (%v): last error: %w", s.name, ctx.Err(), last)
			}
			return nil, fmt.Errorf("GET %s: gave up: %w", s.name, ctx.Err())
		}
		return nil, s.scrub(err)
	}
	return resp, nil
}

// validator is the If-Range value: a strong ETag, else Last-Modified (a
// weak ETag is not allowed in If-Range, RFC 9110 13.1.5; it is still
// compared with every answer's), else none.
func (s *Source) validator() string {
	if s.ETag != "" && !strings.HasPrefix(s.ETag, "W/") {
		return s.ETag
	}
	return s.LastModified
}

// sameETag is the weak comparison of RFC 9110 8.8.3.2: a cache may weaken
// a strong tag (W/"x" for "x") without the bytes changing.
func sameETag(a, b string) bool {
	return strings.TrimPrefix(a, "W/") == strings.TrimPrefix(b, "W/")
}

// parseContentRange parses "bytes first-last/size" (RFC 9110 14.4: every
// number is 1*DIGIT; strconv alone would also take "+5").
func parseContentRange(h string) (first, last, size int64, err error) {
	bad := func(why string) (int64, int64, int64, error) {
		return 0, 0, 0, fmt.Errorf("bad Content-Range %q%s", h, why)
	}
	rest, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return bad("")
	}
	rng, total, ok := strings.Cut(rest, "/")
	if !ok {
		return bad("")
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok || !digits(a) || !digits(b) {
		return bad("")
	}
	if first, err = strconv.ParseInt(a, 10, 64); err != nil {
		return bad("")
	}
	if last, err = strconv.ParseInt(b, 10, 64); err != nil || last < first {
		return bad("")
	}
	if !digits(total) {
		return bad(" (size must be known and larger than the range)")
	}
	if size, err = strconv.ParseInt(total, 10, 64); err != nil || size <= last {
		return bad(" (size must be known and larger than the range)")
	}
	return first, last, size, nil
}

func digits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// ReadRange fills p with the image bytes at off, resuming a body that breaks
// off mid-way; it returns only when p is full and every byte came from the
// pinned image, or with an error.
func (s *Source) ReadRange(ctx context.Context, p []byte, off int64) error {
	if !checkRange(off, len(p), s.Size) {
		return fmt.Errorf("read %s: range %d+%d outside image of %d bytes", s.name, off, len(p), s.Size)
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
		if IsPermanent(err) || ctx.Err() != nil {
			return err
		}
		// A broken body is transient: keep what arrived and ask for the rest.
		s.recordErr(err)
		s.log.Debug("range broke off; resuming", "offset", off+int64(done), "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("GET %s: %w (last error: %v)", s.name, ctx.Err(), err)
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
		return 0, fmt.Errorf("GET %s: %w (the server answered %s to If-Range %s)", s.name, ErrChanged, resp.Status, s.validator())
	case http.StatusRequestedRangeNotSatisfiable:
		return 0, fmt.Errorf("GET %s: %w (the server says range %d-%d is beyond the file: it shrank)", s.name, ErrChanged, first, last)
	default:
		return 0, s.statusError(resp)
	}
	f, l, size, err := parseContentRange(resp.Header.Get("Content-Range"))
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", s.name, err)
	}
	if size != s.Size {
		return 0, fmt.Errorf("GET %s: %w (size was %d, now %d)", s.name, ErrChanged, s.Size, size)
	}
	if f != first || l != last {
		return 0, fmt.Errorf("GET %s: asked for bytes %d-%d, got %d-%d", s.name, first, last, f, l)
	}
	if et := resp.Header.Get("ETag"); s.ETag != "" && et != "" && !sameETag(et, s.ETag) {
		return 0, fmt.Errorf("GET %s: %w (ETag was %s, now %s)", s.name, ErrChanged, s.ETag, et)
	}
	// Without a strong ETag, If-Range (if any) compared only a date a
	// server need not honour: compare it here too.
	if lm := resp.Header.Get("Last-Modified"); s.LastModified != "" && lm != "" && lm != s.LastModified && s.validator() == s.LastModified {
		return 0, fmt.Errorf("GET %s: %w (Last-Modified was %s, now %s)", s.name, ErrChanged, s.LastModified, lm)
	}
	want := int(last - first + 1)
	if resp.ContentLength >= 0 && resp.ContentLength != int64(want) {
		return 0, fmt.Errorf("GET %s: Content-Length %d for the %d bytes of Content-Range %d-%d", s.name, resp.ContentLength, want, f, l)
	}
	n, err := io.ReadFull(countingReader{resp.Body, &s.received}, p[:want])
	if err != nil {
		return n, fmt.Errorf("GET %s: body broke off after %d of %d bytes: %w", s.name, n, want, err)
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
// settings, retries and redirect policy as an image, refusing anything over
// limit bytes.
func GetSmall(ctx context.Context, rawURL string, limit int64, o Options) ([]byte, error) {
	if o.Stall <= 0 {
		o.Stall = 3 * time.Minute
	}
	u, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	name := u.Redacted()
	var mu sync.Mutex
	var last error
	pins := newPinTable(o.Pin)
	c := newClient(o, func(err error) { mu.Lock(); last = scrub(err, u); mu.Unlock() }, CheckRedirect, pins.get)
	ctx, cancel := context.WithTimeout(ctx, o.Stall)
	defer cancel()
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", name, scrub(err, u))
	}
	req.Header.Set("User-Agent", "streamroot")
	resp, err := c.Do(req)
	if err != nil {
		var re *RedirectError
		if errors.As(err, &re) {
			return nil, re
		}
		mu.Lock()
		defer mu.Unlock()
		if last != nil && ctx.Err() != nil {
			return nil, fmt.Errorf("GET %s: no answer within %s: last error: %w", name, o.Stall, last)
		}
		return nil, scrub(err, u)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &StatusError{URL: name, Status: resp.Status, Code: resp.StatusCode}
	}
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("GET %s: the server announces %d bytes, more than the %d accepted", name, resp.ContentLength, limit)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", name, scrub(err, u))
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("GET %s: larger than %d bytes", name, limit)
	}
	return data, nil
}
