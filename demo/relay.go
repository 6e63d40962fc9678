package main

import (
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// relayCommand is the hidden command QEMU runs for each guest connection to
// a forwarded address (guestfwd=...-cmd:<this binary> relay 127.0.0.1:PORT).
// Its stdin and stdout are the guest's TCP connection.
const relayCommand = "relay"

// relayMain copies the guest connection on stdin/stdout to addr and back.
// It only ever dials a loopback address. It must not write to stderr: QEMU
// makes stderr the guest's connection too.
func relayMain(args []string) int {
	// Die with QEMU.
	_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0)
	os.Stderr = nil
	if len(args) != 1 {
		return 2
	}
	var guestIn io.Reader = os.Stdin
	var guestOut io.Writer = os.Stdout
	closeGuestWrite := func() { os.Stdout.Close() }
	if c, err := net.FileConn(os.Stdin); err == nil { // a socket: half-close works
		guestIn, guestOut = c, c
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			closeGuestWrite = func() { cw.CloseWrite() }
		}
	}
	return relay(args[0], guestIn, guestOut, closeGuestWrite)
}

// relay connects to addr (a loopback address, else it refuses) and copies
// both ways until both directions have ended.
func relay(addr string, guestIn io.Reader, guestOut io.Writer, closeGuestWrite func()) int {
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return 2
	}
	server, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 1 // the guest sees its connection closed
	}
	defer server.Close()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		io.Copy(server, guestIn)
		server.(*net.TCPConn).CloseWrite()
	}()
	go func() {
		defer wg.Done()
		io.Copy(guestOut, server)
		closeGuestWrite()
	}()
	wg.Wait()
	return 0
}
