// Command democlient is the client of the veth demo
// (scripts/demo_testbed.sh). It opens TLS 1.3 connections to the VIP in
// two flavours — legacy (Go's crypto/tls: no migration_support) and
// migrating (uTLS with a Chrome ClientHello plus the draft's empty
// migration_support extension) — sends one line on each and prints which
// node answered. With --hold it keeps one connection of each kind open and
// asks again on all of them every time a line arrives on stdin, so the demo
// can show where established connections go across a table change. With
// --get it fetches one URL (the router's /ready and /metrics).
package main

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	utls "github.com/refraction-networking/utls"
	"github.com/spf13/pflag"

	"github.com/anysched/anysched/parser"
)

const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

type options struct {
	vip       string
	kinds     []string
	count     int
	hold      bool
	on        string
	tries     int
	timeout   time.Duration
	supportID uint16
	get       string
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("democlient", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.vip, "vip", "10.200.0.1:443", "service address (VIP:port; [v6]:port for IPv6)")
	fs.StringSliceVar(&o.kinds, "kind", []string{"legacy"}, "connection kinds, comma-separated: legacy (crypto/tls, no migration_support) or migrating (uTLS with migration_support)")
	fs.IntVar(&o.count, "count", 1, "connections per kind, one after another (1..1000); each asks once and closes")
	fs.BoolVar(&o.hold, "hold", false, "keep one connection per kind open; ask on all of them again for every line read from stdin; close at EOF")
	fs.StringVar(&o.on, "on", "", "with --hold: redial until each held connection is answered by this node (gives up after --tries)")
	fs.IntVar(&o.tries, "tries", 64, "with --on: connections tried per kind (1..10000)")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Second, "deadline of each dial, handshake and request")
	fs.Uint16Var(&o.supportID, "support-id", parser.DefaultMigrationSupport, "code point of the migration_support extension")
	fs.StringVar(&o.get, "get", "", "only fetch this http:// URL, print the body and exit 0 on status 200 (1 otherwise)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: democlient [--vip ADDR] [--kind legacy,migrating] [--count N]")
		fmt.Fprintln(stderr, "       democlient --hold [--on NODE] [--kind legacy,migrating]  (stdin: one line per round)")
		fmt.Fprintln(stderr, "       democlient --get URL")
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, "Prints one line per connection and round: KIND #N LOCAL -> NODE, or -> error: ...")
		fmt.Fprintln(stderr, "Exit codes: 0 every request answered, 1 a request failed, 2 bad flags.")
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, "flags:")
		fmt.Fprint(stderr, fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintf(stderr, "democlient: %v\n", err)
		return exitUsage
	}
	bad := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "democlient: "+format+"\n", a...)
		return exitUsage
	}
	if fs.NArg() > 0 {
		return bad("unexpected argument %q", fs.Arg(0))
	}
	if o.timeout <= 0 {
		return bad("--timeout %v: want a positive duration", o.timeout)
	}
	if o.get != "" {
		if !strings.HasPrefix(o.get, "http://") {
			return bad("--get %q: want an http:// URL", o.get)
		}
		return get(o.get, o.timeout, stdout, stderr)
	}
	if _, _, err := net.SplitHostPort(o.vip); err != nil {
		return bad("--vip %q: want HOST:PORT", o.vip)
	}
	for _, k := range o.kinds {
		if k != "legacy" && k != "migrating" {
			return bad("--kind %q: want legacy or migrating", k)
		}
	}
	if o.count < 1 || o.count > 1000 {
		return bad("--count %d: want 1..1000", o.count)
	}
	if o.tries < 1 || o.tries > 10000 {
		return bad("--tries %d: want 1..10000", o.tries)
	}
	if o.on != "" && !o.hold {
		return bad("--on needs --hold")
	}
	if o.hold {
		return hold(&o, stdin, stdout)
	}
	code := exitOK
	for _, kind := range o.kinds {
		for i := 1; i <= o.count; i++ {
			c, err := dial(&o, kind)
			if err != nil {
				fmt.Fprintf(stdout, "%-9s #%d -> error: %v\n", kind, i, err)
				code = exitFailure
				continue
			}
			node, err := c.ask(o.timeout)
			c.report(stdout, i, node, err)
			if err != nil {
				code = exitFailure
			}
			c.close()
		}
	}
	return code
}

// hold keeps one connection per kind open and asks on each of them once
// now and once per line of stdin.
func hold(o *options, stdin io.Reader, stdout io.Writer) int {
	held := make([]*conn, 0, len(o.kinds))
	defer func() {
		for _, c := range held {
			c.close()
		}
	}()
	for _, kind := range o.kinds {
		var c *conn
		for try := 1; c == nil; try++ {
			if try > o.tries {
				fmt.Fprintf(stdout, "%-9s held -> error: no connection answered by %s in %d tries\n", kind, o.on, o.tries)
				return exitFailure
			}
			d, err := dial(o, kind)
			if err != nil {
				fmt.Fprintf(stdout, "%-9s held -> error: %v\n", kind, err)
				return exitFailure
			}
			node, err := d.ask(o.timeout)
			if err != nil {
				d.report(stdout, 0, node, err)
				d.close()
				return exitFailure
			}
			if o.on != "" && node != o.on {
				fmt.Fprintf(stdout, "%-9s try  %-21s -> %s (closed: want %s)\n", kind, d.raw.LocalAddr(), node, o.on)
				d.close()
				continue
			}
			d.report(stdout, 0, node, nil)
			c = d
		}
		held = append(held, c)
	}
	fmt.Fprintln(stdout, "-- round done")
	code := exitOK
	lines := bufio.NewScanner(stdin)
	for lines.Scan() {
		for _, c := range held {
			node, err := c.ask(o.timeout)
			c.report(stdout, 0, node, err)
			if err != nil {
				code = exitFailure
			}
		}
		fmt.Fprintln(stdout, "-- round done")
	}
	return code
}

// conn is one TLS connection to the VIP and its line reader.
type conn struct {
	kind string
	raw  net.Conn
	rw   io.ReadWriter
	r    *bufio.Reader
}

func dial(o *options, kind string) (*conn, error) {
	raw, err := net.DialTimeout("tcp", o.vip, o.timeout)
	if err != nil {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(o.vip)
	raw.SetDeadline(time.Now().Add(o.timeout))
	c := &conn{kind: kind, raw: raw}
	switch kind {
	case "legacy":
		tc := tls.Client(raw, &tls.Config{ServerName: "vip.anysched.test", InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
		err = tc.Handshake()
		c.rw = tc
	case "migrating":
		var uc *utls.UConn
		uc, err = migratingClient(raw, o.supportID)
		if err == nil {
			err = uc.Handshake()
		}
		c.rw = uc
	}
	if err != nil {
		raw.Close()
		return nil, fmt.Errorf("%s handshake with %s: %w", kind, host, err)
	}
	c.r = bufio.NewReader(c.rw)
	return c, nil
}

// migratingClient is a uTLS client with Chrome's ClientHello and the empty
// migration_support extension in front of Chrome's own extensions.
func migratingClient(raw net.Conn, supportID uint16) (*utls.UConn, error) {
	spec, err := utls.UTLSIdToSpec(utls.HelloChrome_120)
	if err != nil {
		return nil, err
	}
	spec.Extensions = append([]utls.TLSExtension{&utls.GenericExtension{Id: supportID}}, spec.Extensions...)
	uc := utls.UClient(raw, &utls.Config{ServerName: "vip.anysched.test", InsecureSkipVerify: true}, utls.HelloCustom)
	if err := uc.ApplyPreset(&spec); err != nil {
		return nil, err
	}
	return uc, nil
}

// ask sends one line and returns the node that answered it.
func (c *conn) ask(timeout time.Duration) (string, error) {
	c.raw.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c.rw, "which node?\n"); err != nil {
		return "", err
	}
	line, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(line), nil
}

func (c *conn) report(w io.Writer, i int, node string, err error) {
	label := fmt.Sprintf("#%d", i)
	if i == 0 {
		label = "held"
	}
	if err != nil {
		fmt.Fprintf(w, "%-9s %-4s %-21s -> error: %v\n", c.kind, label, c.raw.LocalAddr(), err)
		return
	}
	fmt.Fprintf(w, "%-9s %-4s %-21s -> %s\n", c.kind, label, c.raw.LocalAddr(), node)
}

func (c *conn) close() { c.raw.Close() }

func get(url string, timeout time.Duration, stdout, stderr io.Writer) int {
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(url)
	if err != nil {
		fmt.Fprintf(stderr, "democlient: %v\n", err)
		return exitFailure
	}
	defer resp.Body.Close()
	if _, err := io.Copy(stdout, resp.Body); err != nil {
		fmt.Fprintf(stderr, "democlient: %s: %v\n", url, err)
		return exitFailure
	}
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "democlient: %s: %s\n", url, resp.Status)
		return exitFailure
	}
	return exitOK
}
