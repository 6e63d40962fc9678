package main

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// access is what `streamroot serve`'s access log says about one path.
type access struct {
	Requests int
	Bytes    int64       // body bytes sent
	Statuses map[int]int // status -> count
	Ranged   int         // requests with a Range header
}

// parseAccessLog sums serve's access log lines for urlPath:
//
//	time=… level=INFO msg=request method=GET path=/demo.squashfs range="bytes=0-4194303" status=206 bytes=4194304 duration=1.2ms remote=…
func parseAccessLog(r io.Reader, urlPath string) access {
	a := access{Statuses: map[int]int{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		kv := parseLogfmt(sc.Text())
		if kv["msg"] != "request" || kv["path"] != urlPath {
			continue
		}
		a.Requests++
		if n, err := strconv.ParseInt(kv["bytes"], 10, 64); err == nil {
			a.Bytes += n
		}
		if s, err := strconv.Atoi(kv["status"]); err == nil {
			a.Statuses[s]++
		}
		if kv["range"] != "" {
			a.Ranged++
		}
	}
	return a
}

// parseLogfmt reads log/slog's text format: key=value, values optionally
// double-quoted with Go escapes.
func parseLogfmt(line string) map[string]string {
	m := map[string]string{}
	s := line
	for {
		s = strings.TrimLeft(s, " ")
		if s == "" {
			return m
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return m
		}
		key := s[:eq]
		s = s[eq+1:]
		if strings.HasPrefix(s, `"`) {
			// Find the closing quote, skipping escaped ones.
			end := 1
			for end < len(s) && s[end] != '"' {
				if s[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(s) {
				m[key] = s[1:]
				return m
			}
			v, err := strconv.Unquote(s[:end+1])
			if err != nil {
				v = s[1:end]
			}
			m[key] = v
			s = s[end+1:]
			continue
		}
		sp := strings.IndexByte(s, ' ')
		if sp < 0 {
			m[key] = s
			return m
		}
		m[key] = s[:sp]
		s = s[sp:]
	}
}
