//go:build !unix

package main

import "io/fs"

// inode is 0 where the platform has no inode numbers; the ETag then rests
// on size and mtime.
func inode(fs.FileInfo) uint64 { return 0 }

// openNoBlock: no FIFO semantics to guard against here.
const openNoBlock = 0
