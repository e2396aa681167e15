package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/anysched/anysched/internal/cli"
	"github.com/anysched/anysched/internal/cpflag"
	"github.com/anysched/anysched/migration"
)

// options are anynode's flags, checked.
type options struct {
	name          string
	vips          []netip.AddrPort
	unicast       netip.AddrPort
	certFile      string
	keyFile       string
	serverNames   []string
	writeCert     string
	ticketKeys    string
	keyCheck      time.Duration
	profile       migration.Profile
	profileName   string
	replay        string
	backend       *url.URL
	adminAddr     string
	metricsAddr   string
	drainTimeout  time.Duration
	drainLinger   time.Duration
	drainTarget   netip.AddrPort
	tokenLifetime time.Duration
	ticketLife    time.Duration
	capacity      int64
	codePoints    migration.CodePoints
	logLevel      slog.Level
}

func parseFlags(args []string, stdout, stderr io.Writer) (*options, error) {
	fs := cli.NewFlagSet("anynode", args, stdout, stderr, anynodeHelp...)
	var (
		o                                  options
		vips                               []string
		unicast, backend, drainTarget, lvl string
		codePoints                         string
	)
	fs.StringVar(&o.name, "name", "", "this node's name: in every response (Anysched-Node header), the load report and the self-signed certificate; must match the node's name in the router config; required")
	fs.StringSliceVar(&vips, "vip", nil, "anycast service address HOST:PORT to serve (the VIP, held on lo: direct server return); repeat or comma-separate for more (e.g. an IPv4 and an IPv6 VIP); required")
	fs.StringVar(&unicast, "unicast", "", "this node's own address HOST:PORT, served too; migration tokens name it as the target, so it must be reachable by clients; port 0 picks a free port; required")
	fs.StringVar(&o.certFile, "cert", "", "PEM certificate chain to serve (with --key); default: a self-signed ECDSA P-256 certificate made at start")
	fs.StringVar(&o.keyFile, "key", "", "PEM private key of --cert")
	fs.StringSliceVar(&o.serverNames, "server-name", nil, "extra DNS names for the self-signed certificate (it always has --name and the VIP and unicast IPs); repeatable")
	fs.StringVar(&o.writeCert, "write-cert", "", "write the self-signed certificate (PEM) to this file, for clients' --ca")
	fs.StringVar(&o.ticketKeys, "ticket-keys", "", "session-ticket key file shared by the pool: one 32-byte key per line (64 hex digits or base64), the first seals, an optional second (the previous key) still opens; '#' comments. Reloaded on SIGHUP and when the file changes. Default: a random key (this node alone resumes its tickets)")
	fs.DurationVar(&o.keyCheck, "ticket-keys-check", time.Second, "how often to look for a changed --ticket-keys file")
	fs.StringVar(&o.profileName, "profile", "seed", "migration profile: seed (a migration_token in each NewSessionTicket, migrate_notify alert) or draft03 (migration_allowed tickets, migrate_request message)")
	fs.StringVar(&o.replay, "replay", "memory", "token replay store: memory (this node only) or redis://HOST:PORT[/DB] (shared by the pool, so a token is single-use across nodes); when it cannot answer, tokens are refused (full handshake), never accepted")
	fs.StringVar(&backend, "backend", "", "proxy every request to this http:// or https:// URL (net/http/httputil) instead of answering with the built-in handler")
	fs.StringVar(&o.adminAddr, "admin-addr", "", "serve the admin API on HOST:PORT: POST /migrate[?target=HOST:PORT], POST /drain, GET /status, GET /load (the scheduler's load report: give the router config report_port = this port); empty: none")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "serve Prometheus metrics at http://HOST:PORT/metrics; empty: none")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 30*time.Second, "on SIGTERM, SIGINT or POST /drain: how long to wait for notified clients to leave before exiting")
	fs.DurationVar(&o.drainLinger, "drain-linger", 3*time.Second, "on drain, keep accepting (and moving) new connections at least this long after the node starts reporting itself draining, so the routers read GET /load and stop sending it flows before it closes; --drain-timeout ends it too; 0: close as soon as the notified clients left")
	fs.StringVar(&drainTarget, "drain-target", "", "on drain, first re-target capable clients to this sibling node HOST:PORT (it must share --ticket-keys and --replay); default: this node's --unicast")
	fs.DurationVar(&o.tokenLifetime, "token-lifetime", 5*time.Minute, "how long a migration token stays valid (never beyond the ticket lifetime)")
	fs.DurationVar(&o.ticketLife, "ticket-lifetime", 24*time.Hour, "session ticket lifetime (at most 168h)")
	fs.Int64Var(&o.capacity, "capacity", 0, "connections this node is sized for, sent in the load report (the scheduler's load = active/capacity); 0: leave it to the router config")
	fs.StringVar(&codePoints, "code-points", "", "wire code points: "+cpflag.Syntax)
	fs.StringVar(&lvl, "log-level", "info", "log level: debug, info, warn or error")
	if err := cli.Parse(fs, args); err != nil {
		return nil, err
	}
	bad := func(format string, a ...any) (*options, error) {
		return nil, &cli.UsageError{Msg: fmt.Sprintf(format, a...)}
	}
	if fs.NArg() > 0 {
		return bad("unexpected argument %q", fs.Arg(0))
	}
	if o.name == "" {
		return bad("--name is required")
	}
	if len(o.name) > 255 || strings.ContainsFunc(o.name, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return bad("--name %q: want 1..255 printable ASCII characters without spaces", o.name)
	}
	if len(vips) == 0 {
		return bad("--vip is required")
	}
	for _, v := range vips {
		ap, err := parseAddrPort(v)
		if err != nil {
			return bad("--vip %q: %v", v, err)
		}
		o.vips = append(o.vips, ap)
	}
	if unicast == "" {
		return bad("--unicast is required")
	}
	var err error
	if o.unicast, err = parseAddrPort(unicast); err != nil {
		return bad("--unicast %q: %v", unicast, err)
	}
	if o.unicast.Addr().IsUnspecified() {
		return bad("--unicast %q: want the node's own address, not a wildcard (tokens name it)", unicast)
	}
	for _, v := range o.vips {
		if v == o.unicast {
			return bad("--unicast %s is also a --vip", unicast)
		}
	}
	if (o.certFile == "") != (o.keyFile == "") {
		return bad("--cert and --key go together")
	}
	if o.writeCert != "" && o.certFile != "" {
		return bad("--write-cert writes the self-signed certificate; it cannot be used with --cert")
	}
	if o.keyCheck <= 0 {
		return bad("--ticket-keys-check %v: want a positive duration", o.keyCheck)
	}
	if o.profile, err = migration.ParseProfile(o.profileName); err != nil {
		return bad("--profile %q: want seed or draft03", o.profileName)
	}
	if o.replay != "memory" && !strings.HasPrefix(o.replay, "redis://") {
		return bad("--replay %q: want memory or redis://HOST:PORT", redactURL(o.replay))
	}
	if backend != "" {
		u, err := url.Parse(backend)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("--backend %q: want an http:// or https:// URL", backend)
		}
		o.backend = u
	}
	for _, a := range []struct{ flag, v string }{{"admin-addr", o.adminAddr}, {"metrics-addr", o.metricsAddr}} {
		if a.v == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			return bad("--%s %q: want HOST:PORT", a.flag, a.v)
		}
	}
	if o.drainTimeout <= 0 {
		return bad("--drain-timeout %v: want a positive duration", o.drainTimeout)
	}
	if o.drainLinger < 0 {
		return bad("--drain-linger %v: want 0 or more", o.drainLinger)
	}
	if drainTarget != "" {
		if o.drainTarget, err = migration.ParseTarget(drainTarget); err != nil {
			return bad("--drain-target %q: want HOST:PORT with an IP address", drainTarget)
		}
	}
	if o.tokenLifetime < time.Second {
		return bad("--token-lifetime %v: want at least 1s", o.tokenLifetime)
	}
	if o.ticketLife < time.Second || o.ticketLife > 7*24*time.Hour {
		return bad("--ticket-lifetime %v: want 1s..168h", o.ticketLife)
	}
	if o.tokenLifetime > o.ticketLife {
		return bad("--token-lifetime %v exceeds --ticket-lifetime %v", o.tokenLifetime, o.ticketLife)
	}
	if o.capacity < 0 {
		return bad("--capacity %d: want 0 or more", o.capacity)
	}
	if o.codePoints, err = cpflag.Parse(codePoints); err != nil {
		return bad("--code-points: %v", err)
	}
	if err := o.logLevel.UnmarshalText([]byte(lvl)); err != nil {
		return bad("--log-level %q: want debug, info, warn or error", lvl)
	}
	return &o, nil
}

// parseAddrPort reads HOST:PORT where HOST is an IP address (IPv6 in
// brackets).
func parseAddrPort(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, errors.New("want IP:PORT (IPv6 as [ADDR]:PORT)")
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// redactURL hides a password in a URL-shaped flag value (a Redis URL may
// carry one), for messages and logs.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if strings.Contains(s, "@") {
			return "<unparsable, hidden>"
		}
		return s
	}
	return u.Redacted()
}

var anynodeHelp = []string{
	"usage: anynode --name NAME --vip HOST:PORT --unicast HOST:PORT [flags]",
	"",
	"A service node of an anycast pool: serves HTTPS (HTTP/1.1 over TLS 1.3) on the VIP and",
	"on its unicast address, gives migration-capable clients a token that moves them to",
	"the unicast address (so the router keeps nothing for them), and reports its load.",
	"Clients that did not send migration_support are never notified.",
	"",
	"signals: SIGHUP reloads --ticket-keys; SIGUSR1 notifies every capable client now;",
	"SIGTERM/SIGINT drain: report draining, notify every capable client (and those that keep",
	"arriving for --drain-linger), wait up to --drain-timeout (a second SIGTERM/SIGINT ends",
	"the wait), close, exit 0.",
	"",
	"admin API (--admin-addr):",
	"  POST /migrate[?target=HOST:PORT]  notify every capable client now; with target, first",
	"                                    send each a fresh ticket whose token names that sibling",
	"  POST /drain                       start draining (as SIGTERM; the process exits after)",
	"  GET  /status                      JSON: connections by kind, handshakes, tokens, notifications",
	"  GET  /load                        JSON load report for the router's scheduler:",
	"                                    {\"node\",\"active_connections\",\"capacity\",\"cpu\",\"draining\"}",
	"",
	"exit codes: 0 ok (also after a drain), 1 runtime failure, 2 bad flag or file.",
}
