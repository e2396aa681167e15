//go:build race

package main

// raceBuild: the binaries the end-to-end tests run are built with -race
// too, so the daemon's own goroutines are checked.
const raceBuild = true
