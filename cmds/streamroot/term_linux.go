package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// isTerminal tells whether f is a terminal (a tty, not /dev/null or a
// pipe), so progress is drawn only where someone watches.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
