package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anysched/anysched/parser"
)

// fakeNodes is a TLS server on loopback that answers each line with a node
// name: the nodes take turns per connection, as a router spreading
// connections would. It records whether each ClientHello carried
// migration_support.
type fakeNodes struct {
	addr    string
	names   []string
	next    atomic.Int64
	mu      sync.Mutex
	support []bool
}

func startFakeNodes(t *testing.T, names ...string) *fakeNodes {
	t.Helper()
	f := &fakeNodes{names: names}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{testCert(t)},
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			f.mu.Lock()
			f.support = append(f.support, slices.Contains(h.Extensions, parser.DefaultMigrationSupport))
			f.mu.Unlock()
			return nil, nil
		},
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	f.addr = l.Addr().String()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			name := f.names[int(f.next.Add(1)-1)%len(f.names)]
			go func() {
				defer c.Close()
				lines := bufio.NewScanner(c)
				for lines.Scan() {
					fmt.Fprintf(c, "%s\n", name)
				}
			}()
		}
	}()
	return f
}

func (f *fakeNodes) supports() []bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.support)
}

func testCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "t"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func runClient(stdin string, args ...string) (int, string, string) {
	var out, errOut strings.Builder
	code := run(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCountModeReportsTheAnsweringNodeAndSendsMigrationSupportOnlyWhenMigrating(t *testing.T) {
	f := startFakeNodes(t, "node1", "node2")
	code, out, errOut := runClient("", "--vip", f.addr, "--kind", "legacy,migrating", "--count", "2")
	if code != exitOK {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
	want := regexp.MustCompile(`(?m)^(legacy|migrating) +#([12]) +127\.0\.0\.1:\d+ +-> (node[12])$`)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("want 4 lines, got:\n%s", out)
	}
	for i, l := range lines {
		m := want.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("line %q does not match %v", l, want)
		}
		if wantNode := fmt.Sprintf("node%d", i%2+1); m[3] != wantNode {
			t.Errorf("line %q: want %s", l, wantNode)
		}
	}
	if got, want := f.supports(), []bool{false, false, true, true}; !slices.Equal(got, want) {
		t.Errorf("migration_support per ClientHello %v, want %v", got, want)
	}
}

func TestHoldAsksAgainPerStdinLineAndPicksTheRequestedNode(t *testing.T) {
	f := startFakeNodes(t, "node1", "node2", "node3")
	code, out, errOut := runClient("ask\nask\n", "--vip", f.addr, "--hold", "--on", "node3", "--kind", "legacy,migrating")
	if code != exitOK {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
	if n := strings.Count(out, "-- round done"); n != 3 {
		t.Errorf("%d rounds, want 3:\n%s", n, out)
	}
	if n := len(regexp.MustCompile(`(?m)^(legacy|migrating) +held .* -> node3$`).FindAllString(out, -1)); n != 6 {
		t.Errorf("%d held answers from node3, want 6 (2 connections x 3 rounds):\n%s", n, out)
	}
	// Connections 1, 2 (legacy) and 4, 5 (migrating) land elsewhere first.
	if n := strings.Count(out, "(closed: want node3)"); n != 4 {
		t.Errorf("%d tries closed, want 4:\n%s", n, out)
	}
}

func TestHoldGivesUpAfterTries(t *testing.T) {
	f := startFakeNodes(t, "node1")
	code, out, _ := runClient("", "--vip", f.addr, "--hold", "--on", "node9", "--tries", "3")
	if code != exitFailure || !strings.Contains(out, "no connection answered by node9 in 3 tries") {
		t.Fatalf("exit %d, want %d and a clear message:\n%s", code, exitFailure, out)
	}
}

func TestUnansweredConnectionFails(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close() // reset before any handshake
		}
	}()
	defer l.Close()
	code, out, _ := runClient("", "--vip", l.Addr().String(), "--timeout", "2s")
	if code != exitFailure || !strings.Contains(out, "-> error:") {
		t.Fatalf("exit %d, want %d and an error line:\n%s", code, exitFailure, out)
	}
}

func TestGet(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ready" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "ready")
	}))
	defer srv.Close()
	if code, out, _ := runClient("", "--get", srv.URL+"/ready"); code != exitOK || out != "ready\n" {
		t.Errorf("/ready: exit %d, body %q", code, out)
	}
	if code, _, errOut := runClient("", "--get", srv.URL+"/nope"); code != exitFailure || !strings.Contains(errOut, "404") {
		t.Errorf("/nope: exit %d, stderr %q; want 1 and the status", code, errOut)
	}
}

func TestBadFlagsExit2NamingTheFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"--kind", "modern"}, "--kind"},
		{[]string{"--count", "0"}, "--count"},
		{[]string{"--vip", "10.0.0.1"}, "--vip"},
		{[]string{"--on", "node1"}, "--on"},
		{[]string{"--hold", "--tries", "0"}, "--tries"},
		{[]string{"--timeout", "0s"}, "--timeout"},
		{[]string{"--get", "ftp://x"}, "--get"},
		{[]string{"--nope"}, "--nope"},
		{[]string{"extra"}, "extra"},
	} {
		code, _, errOut := runClient("", tc.args...)
		if code != exitUsage || !strings.Contains(errOut, tc.flag) {
			t.Errorf("%v: exit %d, stderr %q; want 2 naming %s", tc.args, code, errOut, tc.flag)
		}
	}
	if code, _, errOut := runClient("", "--help"); code != exitOK || !strings.Contains(errOut, "--hold") {
		t.Errorf("--help: exit %d, want 0 and the flags", code)
	}
}
