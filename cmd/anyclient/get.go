package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/pflag"

	"github.com/anysched/anysched/internal/cli"
	"github.com/anysched/anysched/migration"
)

// NodeHeader is the response header in which anynode names itself.
const NodeHeader = "Anysched-Node"

// maxBody bounds what get reads of a response body.
const maxBody = 64 << 20

type getOptions struct {
	clientFlags
	repeat   int
	interval time.Duration
	url      *url.URL
}

// getResult is one request as --json prints it (one object per request).
type getResult struct {
	URL      string `json:"url"`
	Status   int    `json:"status"`
	Node     string `json:"node"`
	Migrated bool   `json:"migrated"`
	Resumed  bool   `json:"resumed"`
	Remote   string `json:"remote"`
	Anycast  string `json:"anycast"`
	Fallback string `json:"fallback"`
	Moves    int    `json:"moves"`
	Policy   string `json:"policy"`
	Body     string `json:"body"`
	Error    string `json:"error,omitempty"`
}

func parseGetFlags(args []string, stdout, stderr io.Writer) (*getOptions, error) {
	fs := cli.NewFlagSet("get", args, stdout, stderr, getHelp...)
	var o getOptions
	o.register(fs)
	fs.IntVar(&o.repeat, "repeat", 1, "requests to make one after another on the same keep-alive connection (1..10000); with background policy, later ones go over the migrated connection")
	fs.DurationVar(&o.interval, "interval", 0, "pause between --repeat requests")
	if err := cli.Parse(fs, args); err != nil {
		return nil, err
	}
	u, err := parseURL(fs)
	if err != nil {
		return nil, err
	}
	o.url = u
	if o.repeat < 1 || o.repeat > 10000 {
		return nil, &cli.UsageError{Msg: fmt.Sprintf("--repeat %d: want 1..10000", o.repeat)}
	}
	if o.interval < 0 {
		return nil, &cli.UsageError{Msg: fmt.Sprintf("--interval %v: want 0 or more", o.interval)}
	}
	return &o, nil
}

func runGet(args []string, stdout, stderr io.Writer) int {
	o, err := parseGetFlags(args, stdout, stderr)
	if errors.Is(err, pflag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "anyclient get: %v\n", err)
		return exitUsage
	}
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	d, err := o.dialer(log)
	if err != nil {
		fmt.Fprintf(stderr, "anyclient get: %v\n", err)
		return exitUsage
	}
	tr := &migration.Transport{Dialer: d, MaxIdlePerHost: 1}
	defer tr.CloseIdleConnections()
	// No http.Client.Timeout: it wraps resp.Body, which hides the
	// connection info the Transport attaches; the request context bounds
	// each request instead.
	client := &http.Client{Transport: tr}
	code := exitOK
	for i := 0; i < o.repeat; i++ {
		if i > 0 && o.interval > 0 {
			time.Sleep(o.interval)
		}
		res := getOnce(client, o)
		if res.Error != "" || res.Status >= 400 {
			code = exitFailure
		}
		switch {
		case o.json:
			b, _ := json.Marshal(res)
			fmt.Fprintln(stdout, string(b))
		default:
			fmt.Fprint(stdout, res.Body)
		}
		if o.verbose {
			fmt.Fprintf(stderr, "anyclient: %s\n", describe(res))
		}
		if res.Error != "" && !o.json {
			fmt.Fprintf(stderr, "anyclient get: %s\n", res.Error)
		}
		if res.Error != "" {
			break // the connection is gone; later requests would say nothing new
		}
	}
	return code
}

func getOnce(client *http.Client, o *getOptions) getResult {
	res := getResult{URL: o.url.String(), Policy: o.policyName}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.url.String(), nil)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	resp, err := client.Do(req)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	res.Status = resp.StatusCode
	res.Node = resp.Header.Get(NodeHeader)
	res.Body = string(body)
	if info, ok := migration.ResponseConnInfo(resp); ok {
		res.Migrated, res.Resumed = info.Migrated, info.Resumed
		res.Remote, res.Anycast, res.Fallback, res.Moves = info.Remote, info.Anycast, info.Fallback, info.Moves
	}
	if err != nil {
		res.Error = "reading the body: " + err.Error()
	}
	return res
}

func describe(r getResult) string {
	s := fmt.Sprintf("policy=%s anycast=%s remote=%s migrated=%v resumed=%v moves=%d node=%q status=%d",
		r.Policy, r.Anycast, r.Remote, r.Migrated, r.Resumed, r.Moves, r.Node, r.Status)
	if r.Fallback != "" {
		s += fmt.Sprintf(" fallback=%q", r.Fallback)
	}
	if r.Error != "" {
		s += fmt.Sprintf(" error=%q", r.Error)
	}
	return s
}

var getHelp = []string{
	"usage: anyclient get [--ca FILE | --insecure] [--policy rendezvous|background|never] [--json] [-v] URL",
	"",
	"Makes one GET request through migration.Transport and prints the body. -v also says on",
	"stderr where it landed: the anycast address dialed, the remote address that answered,",
	"whether the connection migrated and resumed, why not (fallback) and the node's name.",
	"--json prints, per request, one object with url, status, node, migrated, resumed,",
	"remote, anycast, fallback, moves, policy and body. Exit 1 when a request fails or",
	"its status is 400 or above.",
}
