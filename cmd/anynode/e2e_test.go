package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/anysched/anysched/internal/redistest"
	"github.com/anysched/anysched/sched"
)

// Loopback stands in for the bed: 127.0.0.1 is the "VIP", 127.0.0.2 (also
// on lo: Linux routes all of 127/8 there) the node's unicast address.
const (
	testVIP     = "127.0.0.1:0"
	testUnicast = "127.0.0.2:0"
)

func nodeArgs(name string, extra ...string) []string {
	return append([]string{"--name", name, "--vip", testVIP, "--unicast", testUnicast,
		"--admin-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--log-level", "debug"}, extra...)
}

func TestGetMigratesToTheUnicastAddress(t *testing.T) {
	certFile := filepath.Join(t.TempDir(), "node.pem")
	n := startNode(t, nodeArgs("alpha", "--write-cert", certFile)...)
	url := "https://" + n.vip + "/hello"

	for _, policy := range []string{"rendezvous", "background"} {
		r := getJSON(t, "--insecure", "--policy", policy, "--repeat", "1", url)
		if policy == "background" {
			// One request is answered on the VIP connection at once; the
			// move happens behind it.
			if r.Status != 200 || r.Node != "alpha" || r.Remote != n.vip {
				t.Errorf("background get: %+v", r)
			}
			continue
		}
		if r.Status != 200 || r.Node != "alpha" || !r.Migrated || !r.Resumed || r.Remote != n.unicast ||
			r.Anycast != n.vip || r.Fallback != "" || !strings.Contains(r.Body, "hello from alpha via unicast, resumed=true") {
			t.Errorf("rendezvous get: %+v; want migrated and resumed at %s, node alpha", r, n.unicast)
		}
	}

	// Verified against the node's own certificate (its SANs carry the VIP
	// and unicast IPs) rather than --insecure.
	r := getJSON(t, "--ca", certFile, url)
	if !r.Migrated || r.Remote != n.unicast {
		t.Errorf("get --ca: %+v", r)
	}

	// A legacy client: no migration_support, no token, stays on the VIP.
	r = getJSON(t, "--insecure", "--policy", "never", url)
	if r.Status != 200 || r.Node != "alpha" || r.Migrated || r.Resumed || r.Remote != n.vip ||
		!strings.Contains(r.Body, "via anycast") {
		t.Errorf("never get: %+v; want the VIP %s, not migrated", r, n.vip)
	}

	// -v says where it landed, on stderr; the body goes to stdout.
	code, out, errOut := runClient(t, "get", "--insecure", "-v", url)
	if code != 0 || !strings.HasPrefix(out, "hello from alpha via unicast") ||
		!strings.Contains(errOut, "migrated=true") || !strings.Contains(errOut, "remote="+n.unicast) {
		t.Errorf("get -v: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	st := n.status()
	if st.TokensOK < 3 || st.TokensIssued < st.TokensOK || st.Notifications != 0 {
		t.Errorf("status after the gets: %+v", st)
	}

	// The scheduler's load report, read by the scheduler's own parser.
	rep, err := sched.ParseReport(httpDo(t, http.MethodGet, "http://"+n.admin+"/load", http.StatusOK), "alpha")
	if err != nil || rep.Draining {
		t.Errorf("GET /load: %+v, %v", rep, err)
	}

	metrics := string(httpDo(t, http.MethodGet, "http://"+n.metrics+"/metrics", http.StatusOK))
	for _, series := range []string{
		`anynode_handshakes_total{capable="true",kind="unicast",node="alpha",type="resumed"} `,
		`anynode_handshakes_total{capable="false",kind="anycast",node="alpha",type="full"} 1`,
		`anynode_tokens_accepted_total{node="alpha"} `,
		`anynode_tokens_rejected_total{node="alpha",reason="forged"} 0`,
		`anynode_notifications_sent_total{kind="anycast",node="alpha"} 0`,
		`anynode_connections_active{kind="unicast",node="alpha"} `,
		`anynode_replay_store_errors_total{node="alpha"} 0`,
	} {
		if !strings.Contains(metrics, series) {
			t.Errorf("/metrics lacks %s", series)
		}
	}

	// A failed request is exit 1.
	if code, _, _ := runClient(t, "get", "--insecure", "https://"+n.admin+"/"); code != 1 {
		t.Errorf("get against a plain-HTTP port: exit %d, want 1", code)
	}
}

func TestDraft03ProfileMigrates(t *testing.T) {
	n := startNode(t, nodeArgs("delta", "--profile", "draft03")...)
	r := getJSON(t, "--insecure", "https://"+n.vip+"/")
	if !r.Migrated || !r.Resumed || r.Remote != n.unicast || r.Node != "delta" {
		t.Errorf("draft03 rendezvous get: %+v", r)
	}
}

// pool is two nodes sharing a ticket-key file and a Redis replay store.
func pool(t *testing.T, extraA ...string) (a, b *nodeProc) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "pool.keys")
	if err := os.WriteFile(keys, []byte("# test pool\n"+strings.Repeat("5a", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	replay := "redis://" + redistest.Start(t)
	b = startNode(t, nodeArgs("bravo", "--ticket-keys", keys, "--replay", replay)...)
	a = startNode(t, nodeArgs("alpha", append([]string{"--ticket-keys", keys, "--replay", replay}, extraA...)...)...)
	return a, b
}

// legacyConn is a crypto/tls client (a stock stack: an unknown alert such
// as migrate_notify would be fatal to it) holding one keep-alive connection.
type legacyConn struct {
	t  *testing.T
	c  *tls.Conn
	br *bufio.Reader
}

func dialLegacy(t *testing.T, addr string) *legacyConn {
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &legacyConn{t: t, c: c, br: bufio.NewReader(c)}
}

// get makes one request on the held connection and returns the node's name.
func (l *legacyConn) get() (string, error) {
	if _, err := fmt.Fprintf(l.c, "GET / HTTP/1.1\r\nHost: vip\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(l.br, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body strings.Builder
	if _, err := bufio.NewReader(resp.Body).WriteTo(&body); err != nil {
		return "", err
	}
	return resp.Header.Get(NodeHeader), nil
}

const heldConns = 4

// holdingLoad starts a background-policy load whose connections stay open
// long enough to be moved, and waits until every one of them is up on
// node n (legacy is how many full handshakes other, legacy, clients made
// there). It does not wait for them to settle: a client may still be on
// its VIP leg, mid-move to n's unicast address, or moved and not yet
// switched, and whatever the node does next must not break any of them.
func holdingLoad(t *testing.T, n *nodeProc, legacy int) *clientProc {
	c := startClient(t, "load", "-v", "--insecure", "--json", "--policy", "background",
		"--connections", fmt.Sprint(heldConns), "--duration", "0", "--requests-per-conn", "25", "--think", "200ms",
		"https://"+n.vip+"/")
	n.waitStatus("the load's connections up", func(st statusReport) bool {
		return st.Handshakes["full"] >= uint64(heldConns+legacy) && st.Capable >= heldConns
	})
	return c
}

func TestRetargetToSiblingSparesLegacyAndBreaksNothing(t *testing.T) {
	a, b := pool(t)
	legacy := dialLegacy(t, a.vip)
	if node, err := legacy.get(); err != nil || node != "alpha" {
		t.Fatalf("legacy client before: %q, %v", node, err)
	}
	load := holdingLoad(t, a, 1)

	body := httpDo(t, http.MethodPost, "http://"+a.admin+"/migrate?target="+b.unicast, http.StatusOK)
	var told struct{ Notified int }
	if err := json.Unmarshal(body, &told); err != nil {
		t.Fatal(err)
	}
	// A client that has not switched yet holds two capable connections
	// (its VIP leg and its prepared unicast one), and both are told.
	if told.Notified < heldConns || told.Notified > 2*heldConns {
		t.Errorf("POST /migrate told %d connections, want one or two for each of the %d capable clients (and not the legacy one)", told.Notified, heldConns)
	}
	// SIGUSR1 notifies too; the legacy client is still never told.
	from := a.logLen()
	a.signal(syscall.SIGUSR1)
	a.waitLog("SIGUSR1: notified capable clients", from)

	code, out, errOut := load.wait(t)
	r := lastLoadResult(t, out)
	if code != 0 || r.Broken != 0 || r.Connections != heldConns || r.Nodes["bravo"] != heldConns {
		t.Errorf("load: exit %d, %+v; want %d connections ending on bravo, none broken\nstderr: %s", code, r, heldConns, errOut)
	}
	if node, err := legacy.get(); err != nil || node != "alpha" {
		t.Errorf("legacy client after the notifications: %q, %v; want alpha, unharmed", node, err)
	}
	if st := b.status(); st.TokensOK < heldConns {
		t.Errorf("bravo accepted %d tokens, want at least %d", st.TokensOK, heldConns)
	}
	if bad := httpDo(t, http.MethodPost, "http://"+a.admin+"/migrate?target=bravo:443", http.StatusBadRequest); !strings.Contains(string(bad), "target") {
		t.Errorf("bad target: %s", bad)
	}
}

func TestDrainOnSIGTERMMovesEveryCapableClient(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "pool.keys")
	if err := os.WriteFile(keys, []byte(strings.Repeat("6b", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	replay := "redis://" + redistest.Start(t)
	b := startNode(t, nodeArgs("bravo", "--ticket-keys", keys, "--replay", replay)...)
	a := startNode(t, nodeArgs("alpha", "--ticket-keys", keys, "--replay", replay,
		"--drain-target", b.unicast, "--drain-timeout", "50s")...)
	load := holdingLoad(t, a, 0)

	from := a.logLen()
	a.signal(syscall.SIGTERM)
	_, line := a.waitLog("msg=drained", from)
	// A client mid-move is told on each of its legs on this node.
	f := logFields(line)
	if notified, err := strconv.Atoi(f["notifications"]); f["capable_left"] != "0" || err != nil || notified < heldConns {
		t.Errorf("drain: %s; want every one of %d capable clients notified and gone", line, heldConns)
	}
	if code := a.wait(); code != 0 {
		t.Errorf("anynode exit %d after the drain, want 0", code)
	}
	code, out, errOut := load.wait(t)
	r := lastLoadResult(t, out)
	if code != 0 || r.Broken != 0 || r.Nodes["bravo"] != heldConns {
		t.Errorf("load: exit %d, %+v; want all %d on bravo, none broken\nstderr: %s", code, r, heldConns, errOut)
	}
}

func TestCurlAndOpenSSLGetNormalService(t *testing.T) {
	for _, tool := range []string{"curl", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (Debian package %s): %v", tool, tool, err)
		}
	}
	dir := t.TempDir()
	certFile := filepath.Join(dir, "node.pem")
	n := startNode(t, nodeArgs("echo", "--write-cert", certFile)...)
	for _, addr := range []string{n.vip, n.unicast} {
		kind := "anycast"
		if addr == n.unicast {
			kind = "unicast"
		}
		for _, tlsArgs := range [][]string{{"--insecure"}, {"--cacert", certFile}} {
			args := append([]string{"-sS", "--fail", "--tlsv1.3", "-D", "-"}, tlsArgs...)
			out, err := exec.Command("curl", append(args, "https://"+addr+"/")...).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "hello from echo via "+kind) ||
				!strings.Contains(strings.ToLower(string(out)), "anysched-node: echo") {
				t.Errorf("curl %s https://%s/: %v\n%s", tlsArgs, addr, err, out)
			}
		}
		sess := filepath.Join(dir, kind+".sess")
		for i, sessArg := range []string{"-sess_out", "-sess_in"} {
			cmd := exec.Command("openssl", "s_client", "-connect", addr, "-tls1_3", "-ign_eof", sessArg, sess)
			cmd.Stdin = strings.NewReader("GET / HTTP/1.0\r\nHost: vip\r\n\r\n")
			out, err := cmd.CombinedOutput()
			want := "hello from echo via " + kind + ", resumed=" + fmt.Sprint(i == 1)
			if err != nil || !strings.Contains(string(out), want) {
				t.Errorf("openssl s_client %s %s: %v; want %q in\n%s", sessArg, addr, err, want, out)
			}
			if i == 1 && !strings.Contains(string(out), "Reused, TLSv1.3") {
				t.Errorf("openssl s_client -sess_in %s: not resumed\n%s", addr, out)
			}
		}
	}
	if st := n.status(); st.Notifications != 0 || st.TokensIssued != 0 {
		t.Errorf("legacy clients only, yet: %+v", st)
	}
}

func TestCodePointsAreConfiguration(t *testing.T) {
	const cps = "support=0xFF10,token=0xFF11,allowed=0xFF12,notify=241"
	n := startNode(t, nodeArgs("kilo", "--code-points", cps)...)
	url := "https://" + n.vip + "/"
	if r := getJSON(t, "--insecure", "--code-points", cps, url); !r.Migrated || r.Remote != n.unicast {
		t.Errorf("matching code points: %+v, want migrated to %s", r, n.unicast)
	}
	// A client on the default code points is a legacy client to this node:
	// served, never given a token.
	r := getJSON(t, "--insecure", url)
	if r.Migrated || r.Remote != n.vip || r.Fallback == "" || r.Status != 200 {
		t.Errorf("default code points against custom ones: %+v, want served on the VIP with a fallback reason", r)
	}
}

func TestRedisDownFailsClosed(t *testing.T) {
	redis := redistest.StartServer(t)
	n := startNode(t, nodeArgs("lima", "--replay", "redis://"+redis.Addr)...)
	url := "https://" + n.vip + "/"
	if r := getJSON(t, "--insecure", url); !r.Migrated || !r.Resumed {
		t.Fatalf("with Redis up: %+v", r)
	}
	redis.Kill()
	r := getJSON(t, "--insecure", url)
	if r.Status != 200 || r.Resumed || r.Fallback == "" || r.Node != "lima" {
		t.Errorf("with Redis down: %+v; want service after a full handshake, the fallback named", r)
	}
	st := n.status()
	if st.TokensRefused["store_unavailable"] < 1 || st.ReplayErrors < 1 {
		t.Errorf("with Redis down: %+v; want the refusal counted as store_unavailable", st)
	}
}

func TestBackendProxy(t *testing.T) {
	seen := make(chan http.Header, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case seen <- r.Header.Clone():
		default:
		}
		w.Header().Set("X-Backend", "yes")
		fmt.Fprintf(w, "backend says hi to %s\n", r.URL.Path)
	}))
	t.Cleanup(backend.Close)
	n := startNode(t, nodeArgs("mike", "--backend", backend.URL)...)
	r := getJSON(t, "--insecure", "https://"+n.vip+"/some/path")
	if r.Status != 200 || r.Body != "backend says hi to /some/path\n" || r.Node != "mike" || !r.Migrated {
		t.Errorf("through the proxy: %+v", r)
	}
	h := <-seen
	if h.Get("X-Forwarded-For") == "" || h.Get("X-Forwarded-Proto") != "https" || h.Get("Anysched-Via") != "unicast" {
		t.Errorf("backend saw headers %v; want X-Forwarded-For, X-Forwarded-Proto https, Anysched-Via unicast", h)
	}
	backend.Close()
	code, out, _ := runClient(t, "get", "--insecure", "--json", "https://"+n.vip+"/")
	if code != 1 || !strings.Contains(out, `"status":502`) || !strings.Contains(out, `"node":"mike"`) {
		t.Errorf("backend down: exit %d, %s; want 502 from mike and exit 1", code, out)
	}
}
