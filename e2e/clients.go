package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/anysched/anysched/internal/loadreport"
)

// nodeHeader names the node that served a response (anynode sets it).
const nodeHeader = "Anysched-Node"

// GetResult is one line of `anyclient get --json`.
type GetResult struct {
	Status   int    `json:"status"`
	Node     string `json:"node"`
	Migrated bool   `json:"migrated"`
	Resumed  bool   `json:"resumed"`
	Remote   string `json:"remote"`
	Anycast  string `json:"anycast"`
	Fallback string `json:"fallback"`
	Moves    int    `json:"moves"`
	Error    string `json:"error"`
}

// LoadResult is the final line of `anyclient load --json`.
type LoadResult = loadreport.Report

// StartClient runs anyclient in the client namespace with the nodes' CA
// (`anyclient SUBCOMMAND --ca CA ARGS...`).
func (e *Env) StartClient(t testing.TB, sub string, args ...string) *Proc {
	t.Helper()
	all := append([]string{sub, "--ca", e.CA}, args...)
	return startClientProc(t, "anyclient "+strings.Join(all, " "), e.Bed.Client.Command(bin(t, "anyclient"), all...))
}

// Get runs `anyclient get --json ARGS...` and returns its lines; the test
// fails unless it exits 0.
func (e *Env) Get(t testing.TB, args ...string) []GetResult {
	t.Helper()
	p := e.StartClient(t, "get", append([]string{"--json"}, args...)...)
	if code := p.Wait(t); code != 0 {
		p.logTo(t)
		t.Fatalf("anyclient get %v: exit %d", args, code)
	}
	var out []GetResult
	for _, line := range strings.Split(strings.TrimSpace(p.Stdout.String()), "\n") {
		var r GetResult
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("anyclient get %v: %v: %q", args, err, line)
		}
		out = append(out, r)
	}
	return out
}

// StartLoad starts `anyclient load --json --progress off ARGS... URL`.
func (e *Env) StartLoad(t testing.TB, url string, args ...string) *Proc {
	t.Helper()
	return e.StartClient(t, "load", append(append([]string{"--json", "--progress", "off"}, args...), url)...)
}

// LoadResult waits for a load client and returns its final counts and
// its exit code (1: some connection broke).
func LoadResultOf(t testing.TB, p *Proc) (LoadResult, int) {
	t.Helper()
	code := p.Wait(t)
	lines := strings.Split(strings.TrimSpace(p.Stdout.String()), "\n")
	var r LoadResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil || !r.Final {
		p.logTo(t)
		t.Fatalf("%s: no final JSON line (%v, exit %d)", p.Name, err, code)
	}
	return r, code
}

// LegacyConn is a Go crypto/tls client (no migration_support: the router
// pins it) holding one keep-alive HTTP/1.1 connection.
type LegacyConn struct {
	Local netip.AddrPort
	conn  *tls.Conn
	r     *bufio.Reader
	host  string
}

func (e *Env) tlsConfig(t testing.TB, serverName string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(e.CA)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("%s: no certificates", e.CA)
	}
	return &tls.Config{RootCAs: roots, ServerName: serverName, MinVersion: tls.VersionTLS13, NextProtos: []string{"http/1.1"}}
}

// DialLegacy connects from the client namespace to target (a VIP, or a
// node's unicast address to load it), from src when it is valid (one of
// the client's addresses), and completes the TLS handshake.
func (e *Env) DialLegacy(t testing.TB, target netip.AddrPort, src netip.Addr) (*LegacyConn, error) {
	t.Helper()
	cfg := e.tlsConfig(t, target.Addr().String())
	var c net.Conn
	err := e.Bed.Client.Do(func() error {
		d := net.Dialer{Timeout: 10 * time.Second}
		if src.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
		}
		var err error
		c, err = d.Dial("tcp", target.String())
		return err
	})
	if err != nil {
		return nil, err
	}
	tc := tls.Client(c, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, err
	}
	lc := &LegacyConn{Local: c.LocalAddr().(*net.TCPAddr).AddrPort(), conn: tc, r: bufio.NewReader(tc), host: target.Addr().String()}
	return lc, nil
}

// Get makes one request on the connection and returns the node that
// answered.
func (c *LegacyConn) Get() (string, error) {
	c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c.conn, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", c.host); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s", resp.Status)
	}
	return resp.Header.Get(nodeHeader), nil
}

// Close closes the connection.
func (c *LegacyConn) Close() error { return c.conn.Close() }

// headerNode finds the Anysched-Node header in raw HTTP response text.
func headerNode(out string) string {
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && strings.EqualFold(k, nodeHeader) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// OpenSSL makes one request through `openssl s_client` (a legacy client)
// to target and returns the node that answered.
func (e *Env) OpenSSL(t testing.TB, target netip.AddrPort) (string, error) {
	t.Helper()
	p := e.Bed.Client.Command("openssl", "s_client", "-connect", target.String(), "-CAfile", e.CA,
		"-verify_return_error", "-verify_ip", target.Addr().String(), "-quiet", "-ign_eof")
	p.Stdin = strings.NewReader("GET / HTTP/1.1\r\nHost: " + target.Addr().String() + "\r\nConnection: close\r\n\r\n")
	proc := startClientProc(t, "openssl s_client "+target.String(), p)
	if code, err := proc.wait(); err != nil {
		return "", err
	} else if code != 0 {
		return "", fmt.Errorf("openssl s_client: exit %d: %s", code, proc.Stderr.String())
	}
	node := headerNode(proc.Stdout.String())
	if node == "" || !strings.HasPrefix(proc.Stdout.String(), "HTTP/1.1 200") {
		return "", fmt.Errorf("openssl s_client: no 200 with %s: %q", nodeHeader, proc.Stdout.String())
	}
	return node, nil
}

// Curl makes one request with curl (a legacy client) and returns the node
// that answered.
func (e *Env) Curl(t testing.TB, url string) (string, error) {
	t.Helper()
	proc := startClientProc(t, "curl "+url, e.Bed.Client.Command("curl", "-sS", "--fail", "--max-time", "10",
		"--cacert", e.CA, "-o", "/dev/null", "-D", "-", url))
	if code, err := proc.wait(); err != nil {
		return "", err
	} else if code != 0 {
		return "", fmt.Errorf("curl %s: exit %d: %s", url, code, proc.Stderr.String())
	}
	node := headerNode(proc.Stdout.String())
	if node == "" {
		return "", fmt.Errorf("curl %s: no %s header: %q", url, nodeHeader, proc.Stdout.String())
	}
	return node, nil
}

func jsonUnmarshal(line string, v any) error { return json.Unmarshal([]byte(line), v) }

// NewFlows opens n new legacy connections to the VIP (anyclient load
// --policy never, 4 at once) and returns how many new flows the router
// sent to each pool and node meanwhile (anysched_node_new_flows_total).
// The test fails if any of them broke.
func (e *Env) NewFlows(t testing.TB, n int) (byPool, byNode map[string]float64) {
	t.Helper()
	byPool, byNode, broken := e.newFlows(t, n)
	if broken != 0 {
		t.Fatalf("%d of %d new connections broke", broken, n)
	}
	return byPool, byNode
}

// newFlows is NewFlows that returns how many connections broke (each
// gets 2 s) instead of failing on them.
func (e *Env) newFlows(t testing.TB, n int) (byPool, byNode map[string]float64, broken int) {
	t.Helper()
	before := e.Router.Metrics(t)
	p := e.StartLoad(t, e.VIPURL(false), "--policy", "never", "--connections", "4", "--total", fmt.Sprint(n), "--duration", "60s", "--timeout", "2s")
	res, code := LoadResultOf(t, p)
	if res.Connections != n || (code != 0) != (res.Broken != 0) {
		p.logTo(t)
		t.Fatalf("load of %d new connections: exit %d, %+v", n, code, res)
	}
	after := e.Router.Metrics(t)
	const series = "anysched_node_new_flows_total"
	byNode, byPool = map[string]float64{}, map[string]float64{}
	prev := before.ByLabel(series, "node")
	for node, v := range after.ByLabel(series, "node") {
		byNode[node] = v - prev[node]
		if nd := e.NodeByName(node); nd != nil {
			byPool[nd.Pool] += v - prev[node]
		}
	}
	return byPool, byNode, res.Broken
}

// startHeldGets starts n `anyclient get --repeat` clients that keep one
// connection each for repeat requests at interval.
func (e *Env) startHeldGets(t testing.TB, n int, policy string, repeat int, interval time.Duration) []*Proc {
	t.Helper()
	var ps []*Proc
	for range n {
		ps = append(ps, e.StartClient(t, "get", "--json", "--policy", policy, "--repeat", fmt.Sprint(repeat),
			"--interval", interval.String(), e.VIPURL(false)))
	}
	return ps
}

// firstAnswer waits until the get client has printed its first result.
func firstAnswer(t testing.TB, p *Proc) GetResult {
	t.Helper()
	var r GetResult
	deadline := time.Now().Add(failAfter)
	for {
		if line, _, ok := strings.Cut(p.Stdout.String(), "\n"); ok {
			if err := jsonUnmarshal(line, &r); err != nil {
				t.Fatalf("%s: %v: %q", p.Name, err, line)
			}
			return r
		}
		if !p.Running() || time.Now().After(deadline) {
			p.logTo(t)
			t.Fatalf("%s: no first answer (%s)", p.Name, p.state())
		}
		time.Sleep(20 * time.Millisecond) // polling interval of a deadline wait
	}
}

// getResults waits for a get client and returns its exit code and lines.
func getResults(t testing.TB, p *Proc) (int, []GetResult) {
	t.Helper()
	code := p.Wait(t)
	var out []GetResult
	for _, line := range strings.Split(strings.TrimSpace(p.Stdout.String()), "\n") {
		var r GetResult
		if line != "" && jsonUnmarshal(line, &r) == nil {
			out = append(out, r)
		}
	}
	return code, out
}

// oneConnection reports whether every answer of a get client came over
// the same connection: the same node, remote address and move count (a
// connection that died and was redialed shows up as a change).
func oneConnection(rs []GetResult) bool {
	for _, r := range rs {
		if r.Node != rs[0].Node || r.Remote != rs[0].Remote || r.Moves != rs[0].Moves {
			return false
		}
	}
	return true
}
