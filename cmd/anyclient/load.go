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
	"os"
	"strings"
	"sync"
	"time"

	"github.com/anysched/anysched/internal/loadreport"

	"github.com/spf13/pflag"

	"github.com/anysched/anysched/internal/cli"
	"github.com/anysched/anysched/migration"
)

type loadOptions struct {
	clientFlags
	connections int
	total       int
	rate        float64
	duration    time.Duration
	requests    int
	think       time.Duration
	reportEvery time.Duration
	progress    string
	url         *url.URL
}

func parseLoadFlags(args []string, stdout, stderr io.Writer) (*loadOptions, error) {
	fs := cli.NewFlagSet("load", args, stdout, stderr, loadHelp...)
	var o loadOptions
	o.register(fs)
	fs.IntVar(&o.connections, "connections", 10, "connections open at once (1..100000)")
	fs.IntVar(&o.total, "total", 0, "stop after this many connections in all (0: as many as --duration allows)")
	fs.Float64Var(&o.rate, "rate", 0, "open new connections at this rate per second (at most --connections open at once); 0: each of the --connections opens its next connection as soon as its last one is done")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "stop opening connections after this long (connections already open finish their requests); 0: each of the --connections makes one connection")
	fs.IntVar(&o.requests, "requests-per-conn", 1, "requests made on each connection, one after another (1..100000)")
	fs.DurationVar(&o.think, "think", 0, "pause between the requests of a connection (the application's think time; with --policy background, the connection moves meanwhile)")
	fs.DurationVar(&o.reportEvery, "report-every", 0, "also print the counts so far every this long (0: only at the end)")
	fs.StringVar(&o.progress, "progress", "auto", "live progress line on stderr: auto (when stderr is a terminal), on, off")
	if err := cli.Parse(fs, args); err != nil {
		return nil, err
	}
	u, err := parseURL(fs)
	if err != nil {
		return nil, err
	}
	o.url = u
	bad := func(format string, a ...any) (*loadOptions, error) {
		return nil, &cli.UsageError{Msg: fmt.Sprintf(format, a...)}
	}
	switch {
	case o.connections < 1 || o.connections > 100000:
		return bad("--connections %d: want 1..100000", o.connections)
	case o.total < 0:
		return bad("--total %d: want 0 or more", o.total)
	case o.rate < 0 || o.rate > 1e6:
		return bad("--rate %v: want 0..1000000 per second", o.rate)
	case o.rate > 0 && o.duration == 0 && o.total == 0:
		return bad("--rate needs --duration or --total (it would never stop)")
	case o.duration < 0:
		return bad("--duration %v: want 0 or more", o.duration)
	case o.requests < 1 || o.requests > 100000:
		return bad("--requests-per-conn %d: want 1..100000", o.requests)
	case o.think < 0:
		return bad("--think %v: want 0 or more", o.think)
	case o.reportEvery < 0:
		return bad("--report-every %v: want 0 or more", o.reportEvery)
	}
	switch o.progress {
	case "auto", "on", "off":
	default:
		return bad("--progress %q: want auto, on or off", o.progress)
	}
	return &o, nil
}

// connResult is what one connection did.
type connResult struct {
	broken   bool
	why      string // the first failure, if broken
	migrated bool
	resumed  bool
	fallback string
	node     string
	remote   string
	requests int
	ttfb     time.Duration // connect to first response byte (headers) of the first request
	gotTTFB  bool
}

// tally is the running count over all connections; safe for concurrent use.
type tally struct {
	mu        sync.Mutex
	started   int
	done      int
	migrated  int
	resumed   int
	fallbacks int
	broken    int
	requests  int
	reasons   map[string]int // fallback reasons
	failures  map[string]int // why connections broke
	nodes     map[string]int
	ttfb      histogram
}

func newTally() *tally {
	return &tally{reasons: map[string]int{}, failures: map[string]int{}, nodes: map[string]int{}}
}

func (t *tally) start() {
	t.mu.Lock()
	t.started++
	t.mu.Unlock()
}

func (t *tally) add(r connResult) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.done++
	t.requests += r.requests
	if r.broken {
		t.broken++
		t.failures[shortReason(r.why)]++
	}
	if r.migrated {
		t.migrated++
	}
	if r.resumed {
		t.resumed++
	}
	if r.fallback != "" {
		t.fallbacks++
		t.reasons[r.fallback]++
	}
	if r.node != "" {
		t.nodes[r.node]++
	}
	if r.gotTTFB {
		t.ttfb.record(r.ttfb)
	}
}

// shortReason keeps failure classes few: addresses and ports make every
// error text unique.
func shortReason(s string) string {
	if i := strings.LastIndex(s, ": "); i >= 0 && i+2 < len(s) {
		return s[i+2:]
	}
	return s
}

// loadReport is the machine-readable result (--json); Final marks the last.
type loadReport = loadreport.Report

func (t *tally) report(policy string, elapsed time.Duration, final bool) loadReport {
	t.mu.Lock()
	defer t.mu.Unlock()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return loadReport{
		Final: final, Elapsed: elapsed.Seconds(), Policy: policy,
		Connections: t.started, Open: t.started - t.done, Done: t.done,
		Migrated: t.migrated, Resumed: t.resumed, Fallbacks: t.fallbacks, Broken: t.broken, Requests: t.requests,
		TTFBp50ms: ms(t.ttfb.quantile(0.5)), TTFBp99ms: ms(t.ttfb.quantile(0.99)), TTFBMaxms: ms(t.ttfb.max),
		Reasons: clone(t.reasons), Failures: clone(t.failures), Nodes: clone(t.nodes),
	}
}

func clone(m map[string]int) map[string]int {
	c := make(map[string]int, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func runLoad(args []string, stdout, stderr io.Writer) int {
	o, err := parseLoadFlags(args, stdout, stderr)
	if errors.Is(err, pflag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "anyclient load: %v\n", err)
		return exitUsage
	}
	level := slog.LevelError // -v: each broken connection's error, and the Dialer's notes
	if o.verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	d, err := o.dialer(log)
	if err != nil {
		fmt.Fprintf(stderr, "anyclient load: %v\n", err)
		return exitUsage
	}
	progress := o.progress == "on" || (o.progress == "auto" && isTerminal(stderr))
	t := newTally()
	start := time.Now()
	done := make(chan struct{})
	var out sync.Mutex // stdout and the progress line
	go func() {
		var every, live <-chan time.Time
		if o.reportEvery > 0 {
			tk := time.NewTicker(o.reportEvery)
			defer tk.Stop()
			every = tk.C
		}
		if progress {
			tk := time.NewTicker(250 * time.Millisecond)
			defer tk.Stop()
			live = tk.C
		}
		for {
			select {
			case <-done:
				return
			case <-every:
				r := t.report(o.policyName, time.Since(start), false)
				out.Lock()
				if progress {
					fmt.Fprint(stderr, "\r\033[K")
				}
				if o.json {
					b, _ := json.Marshal(r)
					fmt.Fprintln(stdout, string(b))
				} else {
					fmt.Fprintln(stdout, r.Line())
				}
				out.Unlock()
			case <-live:
				r := t.report(o.policyName, time.Since(start), false)
				out.Lock()
				fmt.Fprintf(stderr, "\r\033[K%s", r.Line())
				out.Unlock()
			}
		}
	}()
	generate(o, d, t, log)
	close(done)
	r := t.report(o.policyName, time.Since(start), true)
	out.Lock()
	if progress {
		fmt.Fprint(stderr, "\r\033[K")
	}
	if o.json {
		b, _ := json.Marshal(r)
		fmt.Fprintln(stdout, string(b))
	} else {
		r.Summary(stdout)
	}
	out.Unlock()
	if r.Broken > 0 {
		return exitFailure
	}
	return exitOK
}

// generate opens connections until --duration or --total says stop, with
// at most --connections open at once, and waits for all of them.
func generate(o *loadOptions, d *migration.Dialer, t *tally, log *slog.Logger) {
	deadline := time.Now().Add(o.duration)
	slots := make(chan struct{}, o.connections)
	var wg sync.WaitGroup
	var tick <-chan time.Time
	if o.rate > 0 {
		tk := time.NewTicker(time.Duration(float64(time.Second) / o.rate))
		defer tk.Stop()
		tick = tk.C
	}
	for n := 0; ; n++ {
		if o.total > 0 && n >= o.total {
			break
		}
		if o.duration == 0 && o.rate == 0 && n >= o.connections {
			break // one connection per slot
		}
		if o.duration > 0 && !time.Now().Before(deadline) {
			break
		}
		if tick != nil && n > 0 {
			if !waitUntil(tick, deadline, o.duration > 0) {
				break
			}
		}
		slots <- struct{}{}
		if o.duration > 0 && !time.Now().Before(deadline) {
			<-slots
			break
		}
		t.start()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			r := oneConnection(o, d)
			if r.broken {
				log.Warn("connection broke", "err", r.why, "node", r.node, "remote", r.remote, "migrated", r.migrated)
			}
			t.add(r)
		}()
	}
	wg.Wait()
}

// waitUntil waits for the next rate tick; false when the deadline came first.
func waitUntil(tick <-chan time.Time, deadline time.Time, bounded bool) bool {
	if !bounded {
		<-tick
		return true
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-tick:
		return true
	case <-timer.C:
		return false
	}
}

// oneConnection is one new client: its own Transport (so its own
// connection and its own session), K requests with think time between.
func oneConnection(o *loadOptions, d *migration.Dialer) connResult {
	var r connResult
	tr := &migration.Transport{Dialer: d, MaxIdlePerHost: 1}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	connStart := time.Now()
	fail := func(format string, a ...any) connResult {
		r.broken = true
		r.why = fmt.Sprintf(format, a...)
		return r
	}
	for i := 0; i < o.requests; i++ {
		if i > 0 && o.think > 0 {
			time.Sleep(o.think)
		}
		ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.url.String(), nil)
		if err != nil {
			cancel()
			return fail("request %d: %v", i+1, err)
		}
		resp, err := client.Do(req)
		if err != nil {
			cancel()
			return fail("request %d: %v", i+1, err)
		}
		if i == 0 {
			r.ttfb, r.gotTTFB = time.Since(connStart), true
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		cancel()
		if info, ok := migration.ResponseConnInfo(resp); ok {
			r.migrated, r.resumed, r.fallback, r.remote = info.Migrated, info.Resumed, info.Fallback, info.Remote
		}
		r.node = resp.Header.Get(NodeHeader)
		switch {
		case err != nil:
			return fail("request %d: reading the body: %v", i+1, err)
		case resp.ContentLength >= 0 && n != resp.ContentLength:
			return fail("request %d: short body: %d of %d bytes", i+1, n, resp.ContentLength)
		case resp.StatusCode >= 400:
			return fail("request %d: status %d", i+1, resp.StatusCode)
		}
		r.requests++
	}
	if n := tr.Dials(); n > 1 {
		// The Transport redialed (a request on the lost connection
		// retried on a new one, or an idle connection the peer
		// closed): the client saw no error, but its connection broke.
		return fail("the connection was lost and redialed %d time(s) between requests", n-1)
	}
	return r
}

// isTerminal reports whether w is a terminal (for the live progress line).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && fdIsTerminal(f.Fd())
}

var loadHelp = []string{
	"usage: anyclient load [--ca FILE | --insecure] [--policy P] --connections N [--rate R]",
	"                      --duration D --requests-per-conn K [--think D] [--report-every D] [--json] URL",
	"",
	"Opens connections through migration.Transport (one transport per connection, so each is a",
	"new client), makes K GET requests on each, and counts: connections, migrated (ended on",
	"the migrated unicast connection), resumed, fallback (migration did not happen: a full",
	"handshake or the VIP connection was kept; the reason is counted), broken (a request",
	"failed, a body was short or a status was 400 or above), and the connect-to-first-byte",
	"time of each connection's first response (p50, p99). It stops by itself: after --duration",
	"or --total. Exit 1 when any connection broke.",
}
