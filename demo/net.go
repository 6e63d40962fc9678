package main

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Guest-side addresses of QEMU's user-mode network.
const (
	guestServer = "10.0.2.2" // the host's loopback server, as the guest sees it
	// slirpHost is QEMU's own address in restricted mode. QEMU refuses a
	// guestfwd to its host address (10.0.2.2 by default), so the host moves
	// to .1 and 10.0.2.2 becomes a forwarded address.
	slirpHost = "10.0.2.1"
)

// source is where the image comes from.
type source struct {
	// Local file: the directory `streamroot serve` serves and the image's
	// URL path in it. Empty for a URL.
	serveDir  string
	servePath string // "/demo.squashfs"
	file      string // the local file
	// URL: the image's URL on the host and the loopback address the guest's
	// connections are forwarded to ("" in open mode for a non-loopback URL).
	hostURL *url.URL
	fwdAddr string // "127.0.0.1:8080"
}

// resolveSource turns IMAGE (a path or a URL) into a source. In restricted
// mode a URL must be on this machine's loopback; in open mode any URL goes.
func resolveSource(image, netMode string) (*source, error) {
	if strings.Contains(image, "://") {
		u, err := url.Parse(image)
		if err != nil {
			return nil, &usageError{fmt.Sprintf("IMAGE %q: not a URL: %v", image, err)}
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return nil, &usageError{fmt.Sprintf("IMAGE %q: want an http:// or https:// URL, or a local path", image)}
		}
		if u.Host == "" {
			return nil, &usageError{fmt.Sprintf("IMAGE %q: no host in the URL", image)}
		}
		if strings.ContainsAny(image, " \t") {
			return nil, &usageError{fmt.Sprintf("IMAGE %q: a kernel argument cannot hold spaces: escape them as %%20", image)}
		}
		s := &source{hostURL: u}
		if isLoopback(u.Hostname()) {
			port := u.Port()
			if port == "" {
				port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
			}
			s.fwdAddr = net.JoinHostPort(loopbackIP(u.Hostname()), port)
			return s, nil
		}
		if netMode != "open" {
			return nil, &usageError{fmt.Sprintf("IMAGE %q: the guest may only reach this machine's loopback "+
				"(its network is QEMU user networking with restrict=on, and 10.0.2.2 is forwarded to 127.0.0.1). "+
				"Give a local file (it is served with streamroot serve), a URL on 127.0.0.1/localhost, "+
				"or NET=open on a machine where the guest may reach other hosts", image)}
		}
		return s, nil
	}
	abs, err := filepath.Abs(image)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("IMAGE %s: %w", image, err)
	}
	if !st.Mode().IsRegular() {
		return nil, &usageError{fmt.Sprintf("IMAGE %s: not a regular file (want a squashfs, erofs or ext4 image, or an ISO)", image)}
	}
	return &source{serveDir: filepath.Dir(abs), servePath: "/" + filepath.Base(abs), file: abs}, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loopbackIP is the address the relay dials for a loopback host name.
func loopbackIP(host string) string {
	if strings.EqualFold(host, "localhost") {
		return "127.0.0.1"
	}
	return host
}

// guestURL is the image's URL as the guest uses it. port is the port of
// the local `streamroot serve` (local files only).
func (s *source) guestURL(netMode string, port int) string {
	if s.hostURL == nil {
		return "http://" + net.JoinHostPort(guestServer, strconv.Itoa(port)) + (&url.URL{Path: s.servePath}).EscapedPath()
	}
	u := *s.hostURL
	if s.fwdAddr != "" {
		_, p, _ := net.SplitHostPort(s.fwdAddr)
		u.Host = net.JoinHostPort(guestServer, p)
	}
	return u.String()
}

// forward is one guest address forwarded to a host loopback address.
type forward struct {
	guestPort int
	hostAddr  string // 127.0.0.1:PORT
}

// netdevArg is QEMU's -netdev for the guest. restricted: only the guest
// forwards exist (restrict=on drops everything else, and QEMU's DHCP then
// offers no router and no DNS); each forward runs `relay <addr>` for every
// connection (QEMU's guestfwd cmd:). open: QEMU's default NAT, where
// 10.0.2.2 is the host itself.
func netdevArg(netMode, relayExe string, fwds []forward) string {
	if netMode == "open" {
		return "user,id=n0"
	}
	parts := []string{"user", "id=n0", "net=10.0.2.0/24", "host=" + slirpHost, "restrict=on"}
	for _, f := range fwds {
		cmd := shellQuote(relayExe) + " " + relayCommand + " " + f.hostAddr
		// QEMU's option syntax: a comma inside a value is written twice.
		parts = append(parts, fmt.Sprintf("guestfwd=tcp:%s:%d-cmd:%s", guestServer, f.guestPort, strings.ReplaceAll(cmd, ",", ",,")))
	}
	return strings.Join(parts, ",")
}

// shellQuote quotes s for /bin/sh -c (QEMU runs guestfwd commands so).
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
