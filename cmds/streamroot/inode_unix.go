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
