//go:build unix

package main

import (
	"io/fs"
	"syscall"
)

// inode returns the file's inode number, part of the ETag.
func inode(st fs.FileInfo) uint64 {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return uint64(s.Ino)
	}
	return 0
}

// openNoBlock keeps open(2) from waiting on a FIFO swapped in for a file
// (serve), and keeps a tty from becoming the controlling terminal.
const openNoBlock = syscall.O_NONBLOCK | syscall.O_NOCTTY
