package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/anysched/anysched/internal/certtest"
	"github.com/anysched/anysched/migration"
	"github.com/anysched/anysched/tls13"
)

func runArgs(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := dispatch(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestHelpExplainsEveryFlag(t *testing.T) {
	common := []string{"--code-points", "--ca", "--insecure", "--policy", "--server-name", "--token-wait", "--timeout", "--verbose", "--json"}
	for _, c := range []struct {
		sub   string
		flags []string
	}{
		{"get", append([]string{"--repeat", "--interval"}, common...)},
		{"load", append([]string{"--connections", "--total", "--rate", "--duration", "--requests-per-conn", "--think", "--report-every", "--progress"}, common...)},
	} {
		code, out, _ := runArgs(c.sub, "--help")
		if code != exitOK {
			t.Errorf("%s --help: exit %d", c.sub, code)
		}
		for _, f := range append(c.flags, "rendezvous", "background", "never") {
			if !strings.Contains(out, f) {
				t.Errorf("%s --help does not mention %s", c.sub, f)
			}
		}
	}
	if code, out, _ := runArgs("--help"); code != exitOK || !strings.Contains(out, "get") || !strings.Contains(out, "load") {
		t.Errorf("--help: exit %d: %s", code, out)
	}
}

func TestBadUsageExits2NamingTheFlag(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	const u = "https://127.0.0.1:1/"
	cases := []struct {
		args []string
		want string
	}{
		{nil, "usage"},
		{[]string{"fetch", u}, "fetch"},
		{[]string{"get"}, "URL"},
		{[]string{"get", "http://127.0.0.1/"}, "https://"},
		{[]string{"get", u, u}, "unexpected argument"},
		{[]string{"get", "--policy", "sometimes", u}, "--policy"},
		{[]string{"get", "--ca", filepath.Join(dir, "absent.pem"), u}, "absent.pem"},
		{[]string{"get", "--ca", notPEM, u}, notPEM},
		{[]string{"get", "--ca", notPEM, "--insecure", u}, "--insecure"},
		{[]string{"get", "--token-wait", "0s", u}, "--token-wait"},
		{[]string{"get", "--timeout", "-1s", u}, "--timeout"},
		{[]string{"get", "--repeat", "0", u}, "--repeat"},
		{[]string{"get", "--bogus", u}, "bogus"},
		{[]string{"load", "--connections", "0", u}, "--connections"},
		{[]string{"load", "--requests-per-conn", "0", u}, "--requests-per-conn"},
		{[]string{"load", "--rate", "-1", u}, "--rate"},
		{[]string{"load", "--rate", "5", "--duration", "0", u}, "--rate"},
		{[]string{"load", "--duration", "-1s", u}, "--duration"},
		{[]string{"load", "--think", "-1s", u}, "--think"},
		{[]string{"load", "--total", "-1", u}, "--total"},
		{[]string{"load", "--report-every", "-1s", u}, "--report-every"},
		{[]string{"load", "--progress", "maybe", u}, "--progress"},
		{[]string{"load", "--policy", "x", u}, "--policy"},
		{[]string{"get", "--code-points", "notify=0", u}, "--code-points"},
	}
	for _, c := range cases {
		code, _, stderr := runArgs(c.args...)
		if code != exitUsage {
			t.Errorf("%q: exit %d, want %d (stderr %q)", c.args, code, exitUsage, stderr)
			continue
		}
		if !strings.Contains(stderr, c.want) {
			t.Errorf("%q: stderr %q does not name %q", c.args, stderr, c.want)
		}
	}
}

// testNode is a migration.Server on a "VIP" (127.0.0.1) and a unicast
// address (127.0.0.2) with an HTTP handler, in process.
type testNode struct {
	vip, unicast string
	caFile       string
}

func startTestNode(t *testing.T, h http.Handler) *testNode {
	t.Helper()
	ca := certtest.MustCA(t, certtest.CAOptions{})
	leaf := ca.MustIssue(t, certtest.LeafOptions{IPs: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("127.0.0.2")}})
	caFile := ca.WriteFile(t)
	keys, err := tls13.NewRandomTicketKeys()
	if err != nil {
		t.Fatal(err)
	}
	vipLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	uniLn, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := migration.NewServer(migration.ServerConfig{
		TLS:     &tls13.Config{Certificates: []tls.Certificate{leaf.TLS}, TicketKeys: keys},
		Unicast: netip.MustParseAddrPort(uniLn.Addr().String()),
	})
	if err != nil {
		t.Fatal(err)
	}
	web := &http.Server{Handler: h}
	go web.Serve(srv.Listen(vipLn, migration.KindAnycast))
	go web.Serve(srv.Listen(uniLn, migration.KindUnicast))
	t.Cleanup(func() { web.Close() })
	return &testNode{vip: vipLn.Addr().String(), unicast: uniLn.Addr().String(), caFile: caFile}
}

func named(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(NodeHeader, name)
		fmt.Fprintf(w, "hello from %s\n", name)
	})
}

func TestGetReportsWhereItLanded(t *testing.T) {
	n := startTestNode(t, named("n1"))
	code, out, errOut := runArgs("get", "--ca", n.caFile, "--json", "--repeat", "2", "https://"+n.vip+"/")
	if code != exitOK {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("--repeat 2 --json printed %d lines: %q", len(lines), out)
	}
	for _, l := range lines {
		var r getResult
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		if r.Status != 200 || r.Node != "n1" || !r.Migrated || !r.Resumed || r.Remote != n.unicast || r.Anycast != n.vip || r.Fallback != "" || r.Body != "hello from n1\n" {
			t.Errorf("get: %+v", r)
		}
	}
	code, out, _ = runArgs("get", "--insecure", "--policy", "never", "https://"+n.vip+"/")
	if code != exitOK || out != "hello from n1\n" {
		t.Errorf("never: exit %d, %q", code, out)
	}
	// Status 400 and above is a failure; so is a refused connection.
	bad := startTestNode(t, http.NotFoundHandler())
	if code, _, _ := runArgs("get", "--insecure", "https://"+bad.vip+"/"); code != exitFailure {
		t.Errorf("404: exit %d, want 1", code)
	}
	if code, _, _ := runArgs("get", "--insecure", "--timeout", "5s", "https://127.0.0.1:1/"); code != exitFailure {
		t.Errorf("refused: exit %d, want 1", code)
	}
}

func loadJSON(t *testing.T, out string) loadReport {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var r loadReport
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil || !r.Final {
		t.Fatalf("no final JSON result (%v): %q", err, out)
	}
	return r
}

func TestLoadCountsConnections(t *testing.T) {
	n := startTestNode(t, named("n1"))
	code, out, errOut := runArgs("load", "--insecure", "--json", "--connections", "3", "--duration", "0",
		"--requests-per-conn", "3", "--think", "100ms", "--report-every", "50ms", "--progress", "on", "https://"+n.vip+"/")
	if code != exitOK {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	r := loadJSON(t, out)
	if r.Connections != 3 || r.Done != 3 || r.Migrated != 3 || r.Resumed != 3 || r.Broken != 0 || r.Fallbacks != 0 ||
		r.Requests != 9 || r.Nodes["n1"] != 3 || r.TTFBp50ms <= 0 || r.TTFBp99ms < r.TTFBp50ms {
		t.Errorf("load: %+v", r)
	}
	// Each connection thinks 200ms in all; reports come every 50ms and the
	// live line every 250ms on stderr.
	if periodic := strings.Count(out, `"final":false`); periodic < 1 {
		t.Errorf("--report-every 50ms printed no periodic line: %q", out)
	}
	if !strings.Contains(errOut, "\r\033[K") {
		t.Errorf("--progress on: no live line on stderr: %q", errOut)
	}

	code, out, _ = runArgs("load", "--insecure", "--policy", "never", "--connections", "2", "--total", "4", "--duration", "1m", "https://"+n.vip+"/")
	if code != exitOK || !strings.Contains(out, "4 connections") || !strings.Contains(out, "migrated  0") {
		t.Errorf("never, --total 4: exit %d\n%s", code, out)
	}
}

func TestLoadRateIsBounded(t *testing.T) {
	n := startTestNode(t, named("n1"))
	// 20 new connections a second for 300ms: a ticker never fires faster
	// than its period, so at most 1 + 300/50 connections open.
	code, out, errOut := runArgs("load", "--insecure", "--json", "--rate", "20", "--duration", "300ms", "--connections", "3", "https://"+n.vip+"/")
	r := loadJSON(t, out)
	if code != exitOK || r.Connections < 1 || r.Connections > 7 || r.Broken != 0 || r.Migrated != r.Connections {
		t.Errorf("exit %d, %+v (stderr %s)", code, r, errOut)
	}
}

func TestLoadExitsOneWhenAConnectionBreaks(t *testing.T) {
	var requests atomic.Int64
	// Every second request on a connection is cut off: headers promise
	// more body than arrives.
	n := startTestNode(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1)%2 == 1 {
			w.Header().Set(NodeHeader, "n1")
			fmt.Fprintln(w, "ok")
			return
		}
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
		buf.Flush()
		conn.Close()
	}))
	code, out, errOut := runArgs("load", "--insecure", "--json", "--connections", "1", "--duration", "0", "--requests-per-conn", "2", "https://"+n.vip+"/")
	r := loadJSON(t, out)
	if code != exitFailure || r.Broken != 1 || r.Connections != 1 || r.Requests != 1 || len(r.Failures) != 1 {
		t.Errorf("exit %d, %+v (stderr %s); want exit 1 and one broken connection", code, r, errOut)
	}
}
