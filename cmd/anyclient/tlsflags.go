package main

import (
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/anysched/anysched/internal/cli"
	"github.com/anysched/anysched/internal/cpflag"
	"github.com/anysched/anysched/migration"
	"github.com/anysched/anysched/tls13"
)

// clientFlags are the TLS and migration flags get and load share.
type clientFlags struct {
	ca         string
	insecure   bool
	policyName string
	serverName string
	tokenWait  time.Duration
	timeout    time.Duration
	verbose    bool
	json       bool
	codePoints string
}

func (c *clientFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.ca, "ca", "", "PEM file of the CA (or self-signed certificate, e.g. anynode --write-cert) to verify the server with; default: the system roots")
	fs.BoolVar(&c.insecure, "insecure", false, "do not verify the server's certificate (tests only)")
	fs.StringVar(&c.policyName, "policy", "rendezvous", "migration policy: rendezvous (wait on the VIP for the token, resume at the target, use only the unicast connection), background (use the VIP connection at once, move when the token or migrate_notify arrives, make-before-break) or never (a legacy client: no migration_support)")
	fs.StringVar(&c.serverName, "server-name", "", "TLS server name (SNI and certificate check); default: the URL's host")
	fs.DurationVar(&c.tokenWait, "token-wait", 3*time.Second, "rendezvous: how long to wait on the VIP for a token before using the VIP connection (a fallback)")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "limit for each request, connection set-up included")
	fs.BoolVarP(&c.verbose, "verbose", "v", false, "say where each request landed and how (anycast address, remote, migrated, resumed, fallback, node) on stderr")
	fs.BoolVar(&c.json, "json", false, "machine-readable output on stdout")
	fs.StringVar(&c.codePoints, "code-points", "", "wire code points: "+cpflag.Syntax)
}

// parseURL checks the one positional argument.
func parseURL(fs *pflag.FlagSet) (*url.URL, error) {
	switch fs.NArg() {
	case 0:
		return nil, &cli.UsageError{Msg: "a URL is required (https://HOST[:PORT]/PATH)"}
	case 1:
	default:
		return nil, &cli.UsageError{Msg: fmt.Sprintf("unexpected argument %q after the URL", fs.Arg(1))}
	}
	u, err := url.Parse(fs.Arg(0))
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, &cli.UsageError{Msg: fmt.Sprintf("URL %q: want https://HOST[:PORT]/PATH", fs.Arg(0))}
	}
	return u, nil
}

// dialer builds the migration.Dialer the flags describe; errors name the
// flag or file.
func (c *clientFlags) dialer(log *slog.Logger) (*migration.Dialer, error) {
	policy, err := migration.ParsePolicy(c.policyName)
	if err != nil {
		return nil, &cli.UsageError{Msg: fmt.Sprintf("--policy %q: want rendezvous, background or never", c.policyName)}
	}
	if c.ca != "" && c.insecure {
		return nil, &cli.UsageError{Msg: "--ca and --insecure exclude each other"}
	}
	if c.tokenWait <= 0 {
		return nil, &cli.UsageError{Msg: fmt.Sprintf("--token-wait %v: want a positive duration", c.tokenWait)}
	}
	if c.timeout <= 0 {
		return nil, &cli.UsageError{Msg: fmt.Sprintf("--timeout %v: want a positive duration", c.timeout)}
	}
	cp, err := cpflag.Parse(c.codePoints)
	if err != nil {
		return nil, &cli.UsageError{Msg: fmt.Sprintf("--code-points: %v", err)}
	}
	cfg := &tls13.Config{
		ServerName:         c.serverName,
		InsecureSkipVerify: c.insecure,
		NextProtos:         []string{"http/1.1"},
	}
	if c.ca != "" {
		pem, err := os.ReadFile(c.ca)
		if err != nil {
			return nil, &cli.UsageError{Msg: fmt.Sprintf("--ca %s: %v", c.ca, err)}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &cli.UsageError{Msg: fmt.Sprintf("--ca %s: no PEM certificate in it", c.ca)}
		}
		cfg.RootCAs = pool
	}
	return &migration.Dialer{
		TLS:        cfg,
		Policy:     policy,
		NetDialer:  &net.Dialer{Timeout: c.timeout},
		TokenWait:  c.tokenWait,
		CodePoints: cp,
		Logger:     log,
	}, nil
}
