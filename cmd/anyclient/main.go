// Command anyclient is the client side of the TLS service-affinity
// protocol: an HTTPS client on migration.Transport that sends
// migration_support, takes the token the node offers and moves to the
// node's unicast address (policy rendezvous or background), or behaves as
// a legacy client (policy never). `anyclient get` makes one request and
// says where it landed and how; `anyclient load` is a bounded load
// generator that counts migrated, resumed, fallback and broken
// connections and the connect-to-first-byte latency.
//
// Exit codes: 0 success, 1 a request failed (get) or a connection broke
// (load), 2 bad usage (the message names the flag or file).
package main

import (
	"fmt"
	"io"
	"os"
)

const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

type subcommand struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

var subcommands = []subcommand{
	{"get", "one request (or --repeat N on one connection): print the body and, with -v or --json, where it landed and how", runGet},
	{"load", "a bounded load generator: concurrent connections, K requests each; counts migrated, resumed, fallback, broken; p50/p99 connect-to-first-byte", runLoad},
}

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage(stdout)
		return exitOK
	}
	for _, c := range subcommands {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "anyclient: unknown subcommand %q\n\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: anyclient <subcommand> [flags] URL")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "An HTTPS client that migrates from the anycast VIP to the serving node's unicast")
	fmt.Fprintln(w, "address with the node's migration token (or, with --policy never, a legacy client).")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "subcommands:")
	for _, c := range subcommands {
		fmt.Fprintf(w, "  %-6s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'anyclient <subcommand> --help' for its flags. Exit codes: 0 ok, 1 failure, 2 bad usage.")
}
