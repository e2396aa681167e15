package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	utls "github.com/refraction-networking/utls"

	"github.com/anysched/anysched/internal/certtest"
	"github.com/anysched/anysched/internal/testbed"
	"github.com/anysched/anysched/lookup"
	"github.com/anysched/anysched/parser"
	"github.com/anysched/anysched/sched"
)

// nodeServer is what each node runs on the VIP: a TLS server (and, for
// connections that do not start with a TLS handshake, a plain line echo)
// that answers every line with its own name and records which client
// ports it served, so the test checks placement on the node side.
type nodeServer struct {
	name string
	l    net.Listener
	mu   sync.Mutex
	seen map[uint16]bool
}

func (s *nodeServer) served(port uint16) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[port]
}

func startNodeServer(t *testing.T, h *testbed.Host, name string, vip netip.AddrPort, cert tls.Certificate) *nodeServer {
	t.Helper()
	l, err := h.Listen("tcp", vip.String())
	if err != nil {
		t.Fatal(err)
	}
	s := &nodeServer{name: name, l: l, seen: map[uint16]bool{}}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go s.serve(c, cert)
		}
	}()
	return s
}

func (s *nodeServer) serve(c net.Conn, cert tls.Certificate) {
	defer c.Close()
	s.mu.Lock()
	s.seen[uint16(c.RemoteAddr().(*net.TCPAddr).Port)] = true
	s.mu.Unlock()
	br := bufio.NewReader(c)
	first, err := br.Peek(1)
	if err != nil {
		return
	}
	var rw io.ReadWriter = struct {
		io.Reader
		io.Writer
	}{br, c}
	if first[0] == 0x16 {
		tc := tls.Server(&peekedConn{Conn: c, r: br}, &tls.Config{Certificates: []tls.Certificate{cert}})
		if tc.Handshake() != nil {
			return
		}
		rw = tc
	}
	lines := bufio.NewScanner(rw)
	for lines.Scan() {
		if _, err := fmt.Fprintf(rw, "%s\n", s.name); err != nil {
			return
		}
	}
}

type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// vipCert is the nodes' certificate for vip.test (the clients skip
// verification: these tests are about routing, not trust).
func vipCert(t *testing.T) tls.Certificate {
	t.Helper()
	ca := certtest.MustCA(t, certtest.CAOptions{})
	return ca.MustIssue(t, certtest.LeafOptions{DNSNames: []string{"vip.test"}}).TLS
}

// clientConn is one connection from the client namespace to the VIP.
type clientConn struct {
	port uint16
	rw   io.ReadWriter
	c    net.Conn
	r    *bufio.Reader
}

// ask sends a line and returns the name of the node that answered.
func (cc *clientConn) ask() (string, error) {
	cc.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(cc.rw, "who\n"); err != nil {
		return "", err
	}
	line, err := cc.r.ReadString('\n')
	return strings.TrimSpace(line), err
}

type dialKind int

const (
	plainTCP      dialKind = iota
	goTLS                  // crypto/tls: no migration_support (legacy)
	uTLSMigration          // utls with the migration_support extension
)

func dialVIP(t *testing.T, b *testbed.Bed, vip netip.AddrPort, port uint16, kind dialKind) *clientConn {
	t.Helper()
	var conn net.Conn
	err := b.Client.Do(func() (err error) {
		local := b.Client.Addr4
		if vip.Addr().Is6() {
			local = b.Client.Addr6
		}
		d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: local.AsSlice(), Port: int(port)}}
		conn, err = d.Dial("tcp", vip.String())
		return err
	})
	if err != nil {
		t.Fatalf("dial %s from port %d: %v", vip, port, err)
	}
	t.Cleanup(func() { conn.Close() })
	cc := &clientConn{port: port, c: conn}
	switch kind {
	case plainTCP:
		cc.rw = conn
	case goTLS:
		tc := tls.Client(conn, &tls.Config{ServerName: "vip.test", InsecureSkipVerify: true})
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			t.Fatalf("crypto/tls handshake from port %d: %v", port, err)
		}
		cc.rw = tc
	case uTLSMigration:
		spec, err := utls.UTLSIdToSpec(utls.HelloChrome_120)
		if err != nil {
			t.Fatal(err)
		}
		spec.Extensions = append([]utls.TLSExtension{&utls.GenericExtension{Id: parser.DefaultMigrationSupport}}, spec.Extensions...)
		uc := utls.UClient(conn, &utls.Config{ServerName: "vip.test", InsecureSkipVerify: true}, utls.HelloCustom)
		if err := uc.ApplyPreset(&spec); err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if err := uc.Handshake(); err != nil {
			t.Fatalf("utls handshake from port %d: %v", port, err)
		}
		cc.rw = uc
	}
	cc.r = bufio.NewReader(cc.rw)
	return cc
}

// metrics scrapes the router's metrics from inside the router namespace.
type metricsClient struct {
	h    *testbed.Host
	url  string
	http *http.Client
}

func newMetricsClient(h *testbed.Host, addr string) *metricsClient {
	return &metricsClient{h: h, url: "http://" + addr, http: &http.Client{
		Timeout: 3 * time.Second,
		Transport: &http.Transport{DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, a string) (net.Conn, error) { return h.Dial(ctx, network, a) }},
	}}
}

func (m *metricsClient) get(path string) (string, error) {
	resp, err := m.http.Get(m.url + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("%s: %s", path, resp.Status)
	}
	return string(body), err
}

// value returns the value of one series ("name" or `name{labels}`).
func (m *metricsClient) value(t *testing.T, series string) float64 {
	t.Helper()
	body, err := m.get("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	mm := re.FindStringSubmatch(body)
	if mm == nil {
		t.Fatalf("no series %s in the metrics", series)
	}
	v, err := strconv.ParseFloat(mm[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// writeRouterConfig writes the bed's router config: VIPs 443 on IPv4 and
// IPv6 (plus extraPort on IPv4 when not 0), node1 with its MAC (and weight
// weight1 when >= 0), node2 without one.
func writeRouterConfig(t *testing.T, path string, b *testbed.Bed, grace time.Duration, weight1 int, extraPort uint16) {
	t.Helper()
	n1, n2 := b.Nodes[0], b.Nodes[1]
	w := ""
	if weight1 >= 0 {
		w = fmt.Sprintf("        weight: %d\n", weight1)
	}
	extra := ""
	if extraPort != 0 {
		extra = fmt.Sprintf("  - address: %s\n    port: %d\n", b.VIP4, extraPort)
	}
	y := fmt.Sprintf(`vips:
  - address: %s
    port: 443
    tls: true
  - address: %s
    port: 443
    tls: true
%spools:
  - name: p
    nodes:
      - name: node1
        address: %s
        mac: "%s"
%s      - name: node2
        address: %s
table:
  size: 1009
  seed: "0123456789abcdef0123456789abcdef"
grace_period: %s
pins:
  capacity: 1024
  idle_timeout: 5m
`, b.VIP4, b.VIP6, extra, n1.Addr4, net.HardwareAddr(n1.MAC[:]), w, n2.Addr4, grace)
	// node2 has no MAC: the router resolves it from its neighbour table.
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
}

// portsOn returns n client ports whose IPv4 flows to the VIP the table of
// the config at cfgPath gives to node.
func portsOn(t *testing.T, cfgPath string, b *testbed.Bed, node string, n int, from uint16) []uint16 {
	return portsOnVIP(t, cfgPath, b, netip.AddrPortFrom(b.VIP4, 443), node, n, from)
}

// portsOnVIP is portsOn for any VIP, IPv4 or IPv6. Ports stay below the
// kernel's ephemeral range (32768..) so they never collide with a
// connection the test opens without choosing its port.
func portsOnVIP(t *testing.T, cfgPath string, b *testbed.Bed, vip netip.AddrPort, node string, n int, from uint16) []uint16 {
	t.Helper()
	cfg, err := sched.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sched.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	snap := s.Current()
	var out []uint16
	for p := from; len(out) < n && p < 32768; p++ {
		k := parser.FlowKey{SrcPort: p, DstPort: vip.Port(), Proto: 6}
		if vip.Addr().Is6() {
			k.SetIPv6(b.Client.Addr6.AsSlice(), vip.Addr().AsSlice())
		} else {
			k.SetIPv4(b.Client.Addr4.AsSlice(), vip.Addr().AsSlice())
		}
		if id := snap.LookupNew(&k); id != lookup.NoNode && snap.Nodes[id].Name == node {
			out = append(out, p)
		}
	}
	if len(out) < n {
		t.Fatalf("only %d ports map to %s", len(out), node)
	}
	return out
}

func xdpOn(t *testing.T, h *testbed.Host) bool {
	t.Helper()
	out, err := h.Exec("ip", "-d", "link", "show", "dev", h.Iface)
	if err != nil {
		t.Fatalf("ip link: %v\n%s", err, out)
	}
	return strings.Contains(out, "prog/xdp") || strings.Contains(out, " xdp")
}

// TestRunForwardsOnTheVethBed runs the built router binary in the router
// namespace of the veth bed (internal/testbed) on the real AF_XDP path and
// checks, on the node side, where real TCP and TLS connections land.
func TestRunForwardsOnTheVethBed(t *testing.T) {
	testbed.RequireRoot(t)
	b := testbed.New(t, testbed.Options{Nodes: 2})
	bin := buildRouter(t)
	// Long enough that the within-grace checks below finish inside it even
	// on a loaded CI machine.
	const grace = 8 * time.Second
	cfgPath := filepath.Join(t.TempDir(), "router.yaml")
	writeRouterConfig(t, cfgPath, b, grace, -1, 0)

	vip := netip.AddrPortFrom(b.VIP4, 443)
	cert := vipCert(t)
	servers := map[string]*nodeServer{
		"node1": startNodeServer(t, b.Nodes[0], "node1", vip, cert),
		"node2": startNodeServer(t, b.Nodes[1], "node2", vip, cert),
	}

	r := startRouter(t, b, bin, "--config", cfgPath, "--log-level", "info")
	cmd, m, metricsAddr := r.cmd, r.m, r.metricsAddr
	if !xdpOn(t, b.Router) {
		t.Fatal("no XDP program on the router's interface")
	}

	// Connections land where the table says, on both nodes.
	var want = map[uint16]string{}
	for _, node := range []string{"node1", "node2"} {
		for _, p := range portsOn(t, cfgPath, b, node, 3, 20000) {
			want[p] = node
		}
	}
	for p, node := range want {
		cc := dialVIP(t, b, vip, p, plainTCP)
		got, err := cc.ask()
		if err != nil {
			t.Fatalf("port %d: %v", p, err)
		}
		if got != node || !servers[node].served(p) {
			t.Fatalf("port %d answered by %s (node side: served %v), table says %s", p, got, servers[node].served(p), node)
		}
		cc.c.Close()
	}

	// The same over IPv6.
	vip6 := netip.AddrPortFrom(b.VIP6, 443)
	servers6 := map[string]*nodeServer{
		"node1": startNodeServer(t, b.Nodes[0], "node1", vip6, cert),
		"node2": startNodeServer(t, b.Nodes[1], "node2", vip6, cert),
	}
	for _, node := range []string{"node1", "node2"} {
		for _, p := range portsOnVIP(t, cfgPath, b, vip6, node, 2, 21000) {
			cc := dialVIP(t, b, vip6, p, plainTCP)
			got, err := cc.ask()
			if err != nil || got != node || !servers6[node].served(p) {
				t.Fatalf("IPv6 port %d answered by %q (%v), table says %s", p, got, err, node)
			}
			cc.c.Close()
		}
	}

	// ARP and the router's own traffic pass: ping it, and fetch its
	// metrics from the client over the fabric.
	if err := b.Client.PingOK(b.Router.Addr4, 2*time.Second); err != nil {
		t.Fatalf("ping the router: %v", err)
	}
	if err := b.Client.PingOK(b.Router.Addr6, 2*time.Second); err != nil {
		t.Fatalf("ping the router over IPv6 (neighbour discovery): %v", err)
	}
	if _, err := newMetricsClient(b.Client, metricsAddr).get("/ready"); err != nil {
		t.Fatalf("router's own TCP service from the client: %v", err)
	}

	// Three long connections on node1: plain (unpinned, rides the
	// transition rule), legacy TLS (pinned) and migrating TLS (not pinned).
	ports := portsOn(t, cfgPath, b, "node1", 3, 30000)
	pinsBefore := m.value(t, "anysched_pins")
	plain := dialVIP(t, b, vip, ports[0], plainTCP)
	legacy := dialVIP(t, b, vip, ports[1], goTLS)
	if got := m.value(t, "anysched_pins"); got != pinsBefore+1 {
		t.Fatalf("pins %v after a crypto/tls handshake, want %v", got, pinsBefore+1)
	}
	migSeen := m.value(t, `anysched_clienthellos_total{outcome="migration_support"}`)
	migrating := dialVIP(t, b, vip, ports[2], uTLSMigration)
	if got := m.value(t, `anysched_clienthellos_total{outcome="migration_support"}`); got != migSeen+1 {
		t.Fatalf("migration_support ClientHellos %v, want %v", got, migSeen+1)
	}
	if got := m.value(t, "anysched_pins"); got != pinsBefore+1 {
		t.Fatalf("pins %v after a migration_support handshake, want still %v", got, pinsBefore+1)
	}
	for _, cc := range []*clientConn{plain, legacy, migrating} {
		if got, err := cc.ask(); err != nil || got != "node1" {
			t.Fatalf("port %d before the change: %q, %v", cc.port, got, err)
		}
	}

	// Table change: node1 leaves the table (weight 0), by SIGHUP.
	gen := m.value(t, "anysched_table_generation")
	writeRouterConfig(t, cfgPath, b, grace, 0, 8443)
	changed := time.Now()
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if err := testbed.WaitFor(time.Now().Add(10*time.Second), func() error {
		if g := m.value(t, "anysched_table_generation"); g <= gen {
			return fmt.Errorf("generation still %v", g)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Within the grace period every established connection stays on node1.
	for _, cc := range []*clientConn{plain, legacy, migrating} {
		if got, err := cc.ask(); err != nil || got != "node1" {
			t.Fatalf("port %d within the grace period: %q, %v", cc.port, got, err)
		}
	}
	if time.Since(changed) >= grace {
		t.Fatalf("the grace-period checks took %v, longer than the grace period %v", time.Since(changed), grace)
	}
	// New connections go to node2.
	for _, p := range portsOn(t, cfgPath, b, "node2", 2, 24000) {
		cc := dialVIP(t, b, vip, p, plainTCP)
		if got, err := cc.ask(); err != nil || got != "node2" || !servers["node2"].served(p) {
			t.Fatalf("new connection from port %d after the change: %q, %v", p, got, err)
		}
	}
	// The reload also added VIP port 8443: the XDP program's VIP map
	// follows, and its flows go to node2, the only node left.
	vip8443 := netip.AddrPortFrom(b.VIP4, 8443)
	srv8443 := startNodeServer(t, b.Nodes[1], "node2", vip8443, cert)
	startNodeServer(t, b.Nodes[0], "node1", vip8443, cert)
	cc := dialVIP(t, b, vip8443, 26000, plainTCP)
	if got, err := cc.ask(); err != nil || got != "node2" || !srv8443.served(26000) {
		t.Fatalf("VIP port added by the reload: answered by %q, %v", got, err)
	}
	// After the grace period the pinned legacy flow still reaches node1.
	// Waiting out the grace period is the behaviour under test.
	time.Sleep(grace - time.Since(changed) + 200*time.Millisecond)
	if got, err := legacy.ask(); err != nil || got != "node1" {
		t.Fatalf("legacy flow after the grace period: %q, %v", got, err)
	}
	if got, err := plain.ask(); err == nil && got == "node1" {
		t.Errorf("unpinned plain flow still reached node1 after the grace period; the transition rule should have expired")
	} else {
		t.Logf("unpinned plain flow after the grace period: %q, %v (moved to node2, as expected without a pin)", got, err)
	}

	// SIGTERM: clean exit, no XDP program left.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r.wait(t)
	if xdpOn(t, b.Router) {
		t.Fatal("XDP program still attached after the router exited")
	}
	if !strings.Contains(r.logs.String(), "XDP program detached") {
		t.Errorf("no detach line in the log:\n%s", r.logs.String())
	}
}

// router is the anysched binary running in the router namespace.
type router struct {
	cmd         *exec.Cmd
	logs        *syncBuffer
	exited      chan error
	stopped     bool
	m           *metricsClient
	metricsAddr string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startRouter starts `anysched run` with args plus --iface and
// --metrics-addr, and returns once /ready answers.
func startRouter(t *testing.T, b *testbed.Bed, bin string, args ...string) *router {
	t.Helper()
	r := &router{logs: &syncBuffer{}, exited: make(chan error, 1),
		metricsAddr: netip.AddrPortFrom(b.Router.Addr4, 9300).String()}
	all := append([]string{"netns", "exec", b.Router.NS, bin, "run", "--iface", b.Router.Iface, "--metrics-addr", r.metricsAddr}, args...)
	r.cmd = exec.Command("ip", all...)
	r.cmd.Stdout, r.cmd.Stderr = r.logs, r.logs
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.exited <- r.cmd.Wait() }()
	t.Cleanup(func() {
		if !r.stopped {
			r.cmd.Process.Kill()
			<-r.exited
		}
		if t.Failed() {
			t.Logf("router log:\n%s", r.logs.String())
		}
	})
	r.m = newMetricsClient(b.Router, r.metricsAddr)
	if err := testbed.WaitFor(time.Now().Add(30*time.Second), func() error {
		select {
		case err := <-r.exited:
			r.stopped = true
			t.Fatalf("router exited early: %v\n%s", err, r.logs.String())
		default:
		}
		_, err := r.m.get("/ready")
		return err
	}); err != nil {
		t.Fatalf("router not ready: %v", err)
	}
	return r
}

// wait waits for the router to exit (after a signal) and fails unless it
// exits with status 0 within 20 s.
func (r *router) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-r.exited:
		r.stopped = true
		if err != nil {
			t.Fatalf("router exit: %v\n%s", err, r.logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("router did not stop within 20s of its signal")
	}
}

func buildRouter(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "anysched")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestRunRateOnTheVethBed measures packets/s through the router on the
// veth bed, next to the reflector (--mode reflect, the I/O ceiling of the
// bed): the client's AF_XDP packet generator sends TCP SYNs to the VIP for
// RUN_RATE_DURATION (default 1s); forwarded frames are counted on the
// nodes' interfaces, reflected ones on the client's. It reports the rates
// and asserts only that frames went through (speed is not tested).
func TestRunRateOnTheVethBed(t *testing.T) {
	testbed.RequireRoot(t)
	dur := time.Second
	if s := os.Getenv("RUN_RATE_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("RUN_RATE_DURATION: %v", err)
		}
		dur = d
	}
	bin := buildRouter(t)
	cert := vipCert(t)
	rates := map[string]float64{}
	for _, mode := range []string{"reflect", "forward"} {
		// A fresh bed per mode: the kernel keeps the client's queue busy
		// for a while after the packet generator's AF_XDP socket closes.
		b := testbed.New(t, testbed.Options{Nodes: 2})
		cfgPath := filepath.Join(t.TempDir(), "router.yaml")
		writeRouterConfig(t, cfgPath, b, 3*time.Second, -1, 0)
		vip := netip.AddrPortFrom(b.VIP4, 443)
		startNodeServer(t, b.Nodes[0], "node1", vip, cert)
		startNodeServer(t, b.Nodes[1], "node2", vip, cert)
		r := startRouter(t, b, bin, "--config", cfgPath, "--mode", mode)
		if mode == "forward" {
			// node2's MAC comes from the neighbour table: make sure the
			// router forwards to it before measuring.
			if err := testbed.WaitFor(time.Now().Add(15*time.Second), func() error {
				cc := dialVIP(t, b, vip, portsOn(t, cfgPath, b, "node2", 1, 28000)[0], plainTCP)
				cc.c.Close()
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		counted := []*testbed.Host{b.Client}
		if mode == "forward" {
			counted = b.Nodes
			// The nodes count the frames on their link and drop them at
			// ingress, so their TCP stacks answering a SYN flood do not
			// take CPU from the router on this shared machine (in reflect
			// mode the client's kernel drops them early too: not its IP).
			for _, h := range b.Nodes {
				for _, c := range [][]string{
					{"nft", "add", "table", "netdev", "ratetest"},
					{"nft", "add", "chain", "netdev", "ratetest", "in", "{ type filter hook ingress device " + h.Iface + " priority 0; }"},
					{"nft", "add", "rule", "netdev", "ratetest", "in", "tcp", "dport", "443", "tcp", "flags", "syn", "drop"},
				} {
					if out, err := h.Exec(c...); err != nil {
						t.Fatalf("%s: %v\n%s", strings.Join(c, " "), err, out)
					}
				}
			}
		}
		rxSum := func() uint64 {
			var sum uint64
			for _, h := range counted {
				rx, _, err := h.LinkStats()
				if err != nil {
					t.Fatal(err)
				}
				sum += rx
			}
			return sum
		}
		rx0 := rxSum()
		var res testbed.PktgenResult
		err := b.Client.Do(func() (err error) {
			res, err = testbed.Pktgen(context.Background(), testbed.PktgenConfig{
				Iface: b.Client.Iface, SrcMAC: b.Client.MAC, DstMAC: b.Router.MAC,
				Src: b.Client.Addr4, Dst: vip, Duration: dur, Flows: 1024,
			})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		// Count until the frames in flight have arrived.
		var got uint64
		testbed.WaitFor(time.Now().Add(2*time.Second), func() error {
			n := rxSum() - rx0
			if n == got && n > 0 {
				return nil
			}
			got = n
			return fmt.Errorf("still counting")
		})
		rates[mode] = float64(got) / res.Elapsed.Seconds()
		t.Logf("%s: pktgen sent %d frames in %v (%.0f pps); %d arrived (%.0f pps, %.1f%%)", mode, res.Sent,
			res.Elapsed.Round(time.Millisecond), res.PPS(), got, rates[mode], 100*float64(got)/float64(max(res.Sent, 1)))
		if mode == "forward" {
			t.Logf("router: received %v, transmitted %v, dropped no_mac %v", r.m.value(t, "anysched_packets_received_total"),
				r.m.value(t, "anysched_packets_transmitted_total"), r.m.value(t, `anysched_packets_dropped_total{reason="no_mac"}`))
		}
		if got == 0 {
			t.Fatalf("%s: nothing arrived", mode)
		}
		r.cmd.Process.Signal(syscall.SIGTERM)
		r.wait(t)
	}
	t.Logf("veth bed, one run: router forwards %.0f pps, reflector %.0f pps (ratio %.2f)",
		rates["forward"], rates["reflect"], rates["forward"]/rates["reflect"])
}

// TestRunTwoQueues runs one worker per RX queue, pinned to CPUs 0 and 1,
// on a two-queue veth: connections still land where the table says. (It
// does not check how the veth spreads flows over its queues.)
func TestRunTwoQueues(t *testing.T) {
	testbed.RequireRoot(t)
	b := testbed.New(t, testbed.Options{Nodes: 2, RouterQueues: 2})
	bin := buildRouter(t)
	cfgPath := filepath.Join(t.TempDir(), "router.yaml")
	writeRouterConfig(t, cfgPath, b, 3*time.Second, -1, 0)
	vip := netip.AddrPortFrom(b.VIP4, 443)
	cert := vipCert(t)
	servers := map[string]*nodeServer{
		"node1": startNodeServer(t, b.Nodes[0], "node1", vip, cert),
		"node2": startNodeServer(t, b.Nodes[1], "node2", vip, cert),
	}
	r := startRouter(t, b, bin, "--config", cfgPath, "--cpus", "0-1")
	if !strings.Contains(r.logs.String(), "queues=2") {
		t.Fatalf("router does not serve two queues:\n%s", r.logs.String())
	}
	for _, node := range []string{"node1", "node2"} {
		for _, p := range portsOn(t, cfgPath, b, node, 8, 22000) {
			cc := dialVIP(t, b, vip, p, plainTCP)
			if got, err := cc.ask(); err != nil || got != node || !servers[node].served(p) {
				t.Fatalf("port %d answered by %q (%v), table says %s", p, got, err, node)
			}
			cc.c.Close()
		}
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	r.wait(t)
	if xdpOn(t, b.Router) {
		t.Fatal("XDP program still attached after the router exited")
	}
}
