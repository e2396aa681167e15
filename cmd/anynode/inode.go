package main

import (
	"os"
	"syscall"
)

// inode tells a file replaced by rename (how key files are usually
// rotated) from the same file, even with an equal size and mtime.
func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
