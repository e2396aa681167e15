// Command anynode is a service node of an anycast pool:
// an HTTPS server (HTTP/1.1 over tls13) on the VIP, held on lo for direct
// server return, and on the node's unicast address. Through the migration
// package it gives every client that sent migration_support a token that
// moves it to the unicast address, validates those tokens there, notifies
// capable clients on request, on SIGUSR1 and when draining, and serves the
// load report the router's scheduler reads, an admin API and Prometheus
// metrics. It answers itself (a handler that names the node) or proxies
// to --backend.
//
// Exit codes: 0 success (also after a drain), 1 runtime failure, 2 bad
// usage or configuration (the message names the flag or file).
package main

import (
	"os"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
