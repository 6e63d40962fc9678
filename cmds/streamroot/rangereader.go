package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/streamroot/streamroot/pkg/httpsrc"
)

// rangeBlock is the unit inspect fetches over HTTP: the first request
// fetches the first 64 KiB (enough for every superblock and the ISO volume
// descriptors), later ones only the blocks a reader asks for.
const rangeBlock = 64 << 10

// rangeBudget caps what inspect downloads from a URL, so a corrupt image
// (a huge directory length, a loop) cannot turn it into a full download.
const rangeBudget = 32 << 20

// httpReaderAt reads a remote file with Range requests, caching 64 KiB
// blocks. Like the init (pkg/httpsrc, whose redirect policy and size bound
// it shares) it follows redirects only on the first request, never from
// https to http, and reads every later block from where they led; it pins
// the file with If-Range on a strong ETag (or Last-Modified) and compares
// every answer's size, ETag and Last-Modified: if the file changes between
// requests the read fails rather than mixing two versions.
type httpReaderAt struct {
	ctx       context.Context
	client    *http.Client
	url       *url.URL // where requests go: the final URL once opened
	name      string   // the URL(s) for messages, password redacted
	size      int64
	etag      string
	lastMod   string
	validator string
	cache     map[int64][]byte
	requests  int
	bytes     int64
}

func openHTTP(ctx context.Context, rawURL string) (*httpReaderAt, error) {
	return openHTTPWith(ctx, rawURL, http.DefaultTransport)
}

// openHTTPWith is openHTTP over rt (tests pass a test server's transport).
func openHTTPWith(ctx context.Context, rawURL string, rt http.RoundTripper) (*httpReaderAt, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // ue.URL would show a password
		}
		return nil, fmt.Errorf("bad URL: %w", err)
	}
	h := &httpReaderAt{
		ctx:   ctx,
		url:   u,
		name:  u.Redacted(),
		size:  -1,
		cache: map[int64][]byte{},
	}
	h.client = &http.Client{Timeout: 30 * time.Second, Transport: rt, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if h.size >= 0 {
			return http.ErrUseLastResponse // pinned: a redirect now is refused below
		}
		return httpsrc.CheckRedirect(req, via)
	}}
	if err := h.fetch(0, 1); err != nil {
		var re *httpsrc.RedirectError
		if errors.As(err, &re) {
			return nil, re
		}
		return nil, err
	}
	return h, nil
}

// hasValidator says whether the server sent an ETag or Last-Modified:
// without one a file replaced between two requests is seen only if its
// size changed.
func (h *httpReaderAt) hasValidator() bool { return h.etag != "" || h.lastMod != "" }

// fetch gets blocks [first, first+n) in one request.
func (h *httpReaderAt) fetch(first, n int64) error {
	start := first * rangeBlock
	end := start + n*rangeBlock - 1
	if h.size >= 0 {
		end = min(end, h.size-1)
	}
	if h.bytes+(end-start+1) > rangeBudget {
		return fmt.Errorf("GET %s: inspecting would download more than %s; refusing", h.name, humanBytes(rangeBudget))
	}
	req, err := http.NewRequestWithContext(h.ctx, http.MethodGet, h.url.String(), nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", h.name, err)
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", start, end))
	req.Header.Set("User-Agent", "streamroot-inspect")
	if h.validator != "" {
		req.Header.Set("If-Range", h.validator)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return err // *url.Error names method and URL, password redacted
	}
	defer resp.Body.Close()
	h.requests++
	switch resp.StatusCode {
	case http.StatusPartialContent:
	case http.StatusOK:
		if h.validator != "" {
			return fmt.Errorf("GET %s: the file changed on the server while it was being inspected", h.name)
		}
		return fmt.Errorf("GET %s: the server ignored the Range request (answered 200 OK); refusing to download the whole file (streamroot needs Range support too)", h.name)
	case http.StatusRequestedRangeNotSatisfiable:
		return fmt.Errorf("GET %s: 416 Range Not Satisfiable (an empty file?)", h.name)
	default:
		return fmt.Errorf("GET %s: %s", h.name, resp.Status)
	}
	rs, re, total, err := parseContentRange(resp.Header.Get("Content-Range"))
	if err != nil {
		return fmt.Errorf("GET %s: %w", h.name, err)
	}
	if h.size < 0 {
		if total > httpsrc.MaxImageSize {
			return fmt.Errorf("GET %s: the server claims a file of %d bytes: refusing sizes over %d bytes (16 TiB)", h.name, total, int64(httpsrc.MaxImageSize))
		}
		if final := resp.Request.URL; final.String() != h.url.String() {
			h.url, h.name = final, h.name+" (redirected to "+final.Redacted()+")"
		}
		h.size = total
		h.etag, h.lastMod = resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
		if h.etag != "" && !strings.HasPrefix(h.etag, "W/") {
			h.validator = h.etag
		} else {
			h.validator = h.lastMod // a weak ETag is not allowed in If-Range
		}
	} else if et, lm := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified"); total != h.size ||
		h.etag != "" && et != "" && strings.TrimPrefix(et, "W/") != strings.TrimPrefix(h.etag, "W/") ||
		h.lastMod != "" && lm != "" && lm != h.lastMod && h.validator == h.lastMod {
		return fmt.Errorf("GET %s: the file changed on the server while it was being inspected (size %d, ETag %s, Last-Modified %s; now %d, %s, %s)",
			h.name, h.size, h.etag, h.lastMod, total, et, lm)
	}
	if rs != start || re > end {
		return fmt.Errorf("GET %s: asked for bytes %d-%d, got %d-%d of %d", h.name, start, end, rs, re, total)
	}
	buf := make([]byte, re-rs+1)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		return fmt.Errorf("GET %s: bytes %d-%d: %w", h.name, rs, re, err)
	}
	h.bytes += int64(len(buf))
	for i := int64(0); i*rangeBlock < int64(len(buf)); i++ {
		h.cache[first+i] = buf[i*rangeBlock : min(int64(len(buf)), (i+1)*rangeBlock)]
	}
	return nil
}

func parseContentRange(s string) (first, last, size int64, err error) {
	bad := fmt.Errorf("bad Content-Range %q", s)
	rest, ok := strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, 0, 0, bad
	}
	rng, tot, ok := strings.Cut(rest, "/")
	a, b, ok2 := strings.Cut(rng, "-")
	if !ok || !ok2 {
		return 0, 0, 0, bad
	}
	var errs [3]error
	first, errs[0] = strconv.ParseInt(a, 10, 64)
	last, errs[1] = strconv.ParseInt(b, 10, 64)
	size, errs[2] = strconv.ParseInt(tot, 10, 64)
	if errors.Join(errs[:]...) != nil || !digits(a) || !digits(b) || !digits(tot) || last < first || size <= last {
		return 0, 0, 0, bad
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

// ReadAt fetches the missing blocks of [off, off+len(p)) in as few requests
// as possible, then copies from the cache.
func (h *httpReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= h.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	// No off+len nor block*rangeBlock: a server may claim 2^63-1 bytes,
	// and both would wrap. Count in blocks instead.
	end := off + min(int64(len(p)), h.size-off)
	lastBlock := (end - 1) / rangeBlock
	for b := off / rangeBlock; b <= lastBlock; {
		if _, ok := h.cache[b]; ok {
			b++
			continue
		}
		n := int64(1)
		for b+n <= lastBlock {
			if _, ok := h.cache[b+n]; ok {
				break
			}
			n++
		}
		if err := h.fetch(b, n); err != nil {
			return 0, err
		}
		b += n
	}
	n := 0
	for pos := off; pos < end; {
		blk := h.cache[pos/rangeBlock]
		if pos%rangeBlock >= int64(len(blk)) {
			return n, fmt.Errorf("GET %s: short block at byte %d", h.name, pos)
		}
		c := copy(p[n:end-off], blk[pos%rangeBlock:])
		n += c
		pos += int64(c)
	}
	if int64(n) < int64(len(p)) {
		return n, io.EOF
	}
	return n, nil
}
