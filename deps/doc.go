// Package deps owns the list of what anysched needs from the system:
// debian.txt names the Debian packages `make deps` installs (and `make
// test` and `make demo` run it first), essential.txt the commands every
// Debian system has. Its test reads the Makefile, .ci/run, scripts/*.sh
// and every Go file for the external commands they run and fails on one
// that is neither in the list, Essential nor the Go toolchain — so the next
// missing package is caught here, not by a new user. The package has no
// code of its own.
package deps
