package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/anysched/anysched/internal/testbed"
	"github.com/anysched/anysched/lookup"
	"github.com/anysched/anysched/parser"
	"github.com/anysched/anysched/sched"
)

// Ports on the bed.
const (
	ServicePort   = 443  // HTTPS on the VIPs and on every node's unicast address
	AdminPort     = 9400 // anynode's admin API (/status, /load: the router's report_port)
	NodeMetrics   = 9401 // anynode's /metrics, on its unicast address
	RedisPort     = 6379 // the replay store, on the store host
	RouterMetrics = "127.0.0.1:9300"
)

// Options shape an Env. Zero values take the defaults.
type Options struct {
	// Pools × PerPool nodes (default 2 × 2). Pool i is named pool-a,
	// pool-b, ...; its nodes share a ticket-key file.
	Pools, PerPool int
	// Router is the router config's policy and timing (see RouterConfig).
	Router RouterConfig
	// NodeCapacity is every anynode's --capacity (its load report's
	// denominator); 0 leaves it out.
	NodeCapacity int
	// DrainTimeout is every anynode's --drain-timeout (default 20s).
	DrainTimeout time.Duration
	// ClientAddrs are extra client addresses (testbed.Options.ClientAddrs).
	ClientAddrs int
	// Delays puts a delay line in front of every node, so SetPoolDelay
	// works. It is off by default: every node frame then crosses this
	// process twice, and on a loaded 2-core machine that can stall the
	// router's probes past their timeout.
	Delays bool
	// RouterArgs are more `anysched run` flags (e.g. --explain: one line
	// per frame on the router's stdout, for a failure's post-mortem).
	RouterArgs []string
}

// Env is a running system on one bed: Redis on the store host, anynode on
// every node, anysched on the router.
type Env struct {
	T      *testing.T
	Bed    *testbed.Bed
	Nodes  []*Node
	Pools  [][]*Node
	Router *Router
	Redis  *Proc
	// Dir holds the configs, keys, certificates and CA file.
	Dir string
	// CA is the PEM file with every node's self-signed certificate (the
	// clients' --ca).
	CA string

	opts Options
}

// Node is one running anynode.
type Node struct {
	*Proc
	Name    string
	Pool    string
	Host    *testbed.Host
	Unicast netip.AddrPort // its HTTPS address (migration target)
	Admin   netip.AddrPort
	// Sibling is the other node of its pool (its --drain-target), nil in a
	// pool of one.
	Sibling *Node
	args    []string
	env     *Env
}

// RequireTools fails the test (never skips) unless it runs as root with
// the system tools the bed and the legacy clients need.
func RequireTools(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("e2e: needs root (network namespaces, veth links, XDP); run go test as root")
	}
	for _, tool := range []string{"ip", "redis-server", "openssl", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("e2e: %s not found (deps/debian.txt lists the packages): %v", tool, err)
		}
	}
}

// Start builds the bed and starts Redis, the nodes and the router, and
// returns once each is ready (router /ready, every node's /status
// through its unicast address). Everything stops in t.Cleanup.
func Start(t *testing.T, o Options) *Env {
	t.Helper()
	RequireTools(t)
	if o.Pools == 0 {
		o.Pools = 2
	}
	if o.PerPool == 0 {
		o.PerPool = 2
	}
	if o.DrainTimeout == 0 {
		o.DrainTimeout = 20 * time.Second
	}
	b := testbed.New(t, testbed.Options{Nodes: o.Pools * o.PerPool, Store: true, DelayLine: o.Delays, ClientAddrs: o.ClientAddrs})
	e := &Env{T: t, Bed: b, Dir: t.TempDir(), opts: o}
	e.CA = filepath.Join(e.Dir, "ca.pem")
	e.startRedis()

	hostPools, err := b.Pools(o.Pools)
	if err != nil {
		t.Fatal(err)
	}
	var certs []byte
	for pi, hosts := range hostPools {
		pool := "pool-" + string(rune('a'+pi))
		keys := filepath.Join(e.Dir, pool+".keys")
		key := make([]byte, 32)
		rand.Read(key)
		if err := os.WriteFile(keys, []byte("# "+pool+"\n"+hex.EncodeToString(key)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var nodes []*Node
		for _, h := range hosts {
			n := &Node{Name: h.Role, Pool: pool, Host: h, env: e,
				Unicast: netip.AddrPortFrom(h.Addr4, ServicePort), Admin: netip.AddrPortFrom(h.Addr4, AdminPort)}
			nodes = append(nodes, n)
		}
		for i, n := range nodes {
			if len(nodes) > 1 {
				n.Sibling = nodes[(i+1)%len(nodes)]
			}
			cert := filepath.Join(e.Dir, n.Name+".pem")
			n.args = []string{"--name", n.Name,
				"--vip", netip.AddrPortFrom(b.VIP4, ServicePort).String(),
				"--vip", netip.AddrPortFrom(b.VIP6, ServicePort).String(),
				"--unicast", n.Unicast.String(),
				"--ticket-keys", keys,
				"--replay", "redis://" + netip.AddrPortFrom(b.Store.Addr4, RedisPort).String(),
				"--admin-addr", n.Admin.String(),
				"--metrics-addr", netip.AddrPortFrom(n.Host.Addr4, NodeMetrics).String(),
				"--write-cert", cert,
				"--drain-timeout", o.DrainTimeout.String(),
			}
			if n.Sibling != nil {
				n.args = append(n.args, "--drain-target", n.Sibling.Unicast.String())
			}
			if o.NodeCapacity > 0 {
				n.args = append(n.args, "--capacity", fmt.Sprint(o.NodeCapacity))
			}
			n.start(t)
			pem, err := os.ReadFile(cert)
			if err != nil {
				t.Fatalf("%s's certificate: %v", n.Name, err)
			}
			certs = append(certs, pem...)
		}
		e.Pools = append(e.Pools, nodes)
		e.Nodes = append(e.Nodes, nodes...)
	}
	if err := os.WriteFile(e.CA, certs, 0o644); err != nil {
		t.Fatal(err)
	}
	e.Router = e.startRouter(t, o.Router)
	return e
}

// startRedis runs redis-server on the store host, reachable from every
// node, and waits until it accepts connections.
func (e *Env) startRedis() {
	t := e.T
	t.Helper()
	addr := netip.AddrPortFrom(e.Bed.Store.Addr4, RedisPort)
	e.Redis = startProc(t, "redis-server", e.Bed.Store.Command("redis-server",
		"--port", fmt.Sprint(RedisPort), "--bind", addr.Addr().String(), "--protected-mode", "no",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir(), "--daemonize", "no"))
	if err := e.Bed.Nodes[0].WaitTCP(addr, time.Now().Add(failAfter)); err != nil {
		t.Fatalf("redis-server on %v: %v", addr, err)
	}
}

// start runs the node's anynode and waits until its admin API answers
// /status from the router's namespace (as the router's reports reach it).
func (n *Node) start(t *testing.T) {
	t.Helper()
	n.Proc = startProc(t, "anynode "+n.Name, n.Host.Command(bin(t, "anynode"), n.args...))
	n.Proc.waitLog(t, "msg=serving")
	if err := testbed.WaitFor(time.Now().Add(failAfter), func() error {
		if !n.Running() {
			t.Fatalf("%s exited while starting", n.Name)
		}
		_, err := n.Status()
		return err
	}); err != nil {
		t.Fatalf("%s /status: %v", n.Name, err)
	}
}

// Restart starts the node's anynode again (after it exited or was killed).
func (n *Node) Restart(t *testing.T) {
	t.Helper()
	n.Kill()
	n.start(t)
}

// NodeStatus is the part of anynode's GET /status the tests read.
type NodeStatus struct {
	Node        string         `json:"node"`
	Draining    bool           `json:"draining"`
	Connections map[string]int `json:"connections"`
	Capable     int            `json:"capable"`
}

// Status reads GET /status from the router's namespace.
func (n *Node) Status() (NodeStatus, error) {
	var st NodeStatus
	body, err := httpGet(n.env.Bed.Router, "http://"+n.Admin.String()+"/status")
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("%s /status: %v: %s", n.Name, err, body)
	}
	return st, nil
}

// Metrics scrapes the node's /metrics.
func (n *Node) Metrics() (Metrics, error) {
	return scrape(n.env.Bed.Router, fmt.Sprintf("http://%v/metrics", netip.AddrPortFrom(n.Host.Addr4, NodeMetrics)))
}

// NodeByName returns the node called name, nil if none is.
func (e *Env) NodeByName(name string) *Node {
	for _, n := range e.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// NodeByUnicast returns the node whose unicast HTTPS address is ap.
func (e *Env) NodeByUnicast(ap string) *Node {
	for _, n := range e.Nodes {
		if n.Unicast.String() == ap {
			return n
		}
	}
	return nil
}

// VIPURL is the service URL on the IPv4 VIP (v6: the IPv6 VIP).
func (e *Env) VIPURL(v6 bool) string {
	if v6 {
		return "https://[" + e.Bed.VIP6.String() + "]/"
	}
	return "https://" + e.Bed.VIP4.String() + "/"
}

// VIP is the IPv4 (v6: IPv6) service address.
func (e *Env) VIP(v6 bool) netip.AddrPort {
	if v6 {
		return netip.AddrPortFrom(e.Bed.VIP6, ServicePort)
	}
	return netip.AddrPortFrom(e.Bed.VIP4, ServicePort)
}

// SetPoolDelay delays the egress of every node of pool i by d (the
// node-to-client and node-to-router direction, probes included); the Env
// needs Options.Delays.
func (e *Env) SetPoolDelay(i int, d time.Duration) {
	e.T.Helper()
	hosts := make([]*testbed.Host, 0, len(e.Pools[i]))
	for _, n := range e.Pools[i] {
		hosts = append(hosts, n.Host)
	}
	if err := testbed.SetDelays(hosts, d); err != nil {
		e.T.Fatal(err)
	}
}

// RouterConfig is what the tests set in anysched's config; the rest is
// derived from the bed. Zero values take the defaults noted.
type RouterConfig struct {
	Policy string        // "weighted" (default) or "best-pool"
	Grace  time.Duration // grace_period (default 2s)
	// Static leaves out health_port and report_port (no live status): the
	// table follows the config alone.
	Static bool
	// Weights override nodes' weights by name; Drain drains nodes by name.
	Weights map[string]int
	Drain   map[string]bool
	// Extra is YAML appended to the config (probe:, reports:, score:,
	// hysteresis: sections); "" takes liveDefaults unless Static.
	Extra string
	// Seed is table.seed (default: random per Env, kept across reloads).
	Seed string
}

// liveDefaults make the router react within a second: probes and reports
// every 200 ms, rebuilds at most every 200 ms. A node is down after 3
// failed probes; the 200 ms timeout is generous because a probe that
// times out under CPU starvation (2 cores, a dozen processes) marks a
// live node down, and its slots then move at once, dwell or not.
const liveDefaults = `probe:
  interval: 200ms
  timeout: 200ms
  down_after: 3
  up_after: 2
  ewma_alpha: 0.5
reports:
  interval: 200ms
  timeout: 150ms
  stale_after: 2s
hysteresis:
  threshold: 0.1
  min_interval: 200ms
score:
  delay_reference: 50ms
  delay_weight: 0.5
  load_weight: 0.5
`

func (e *Env) renderConfig(c RouterConfig) string {
	var b strings.Builder
	fmt.Fprintf(&b, "vips:\n  - address: %s\n    port: %d\n    tls: true\n  - address: %s\n    port: %d\n    tls: true\npools:\n",
		e.Bed.VIP4, ServicePort, e.Bed.VIP6, ServicePort)
	for _, pool := range e.Pools {
		fmt.Fprintf(&b, "  - name: %s\n    nodes:\n", pool[0].Pool)
		for _, n := range pool {
			fmt.Fprintf(&b, "      - name: %s\n        address: %s\n        mac: \"%s\"\n", n.Name, n.Host.Addr4, net.HardwareAddr(n.Host.MAC[:]))
			if !c.Static {
				fmt.Fprintf(&b, "        health_port: %d\n        report_port: %d\n", ServicePort, AdminPort)
			}
			if w, ok := c.Weights[n.Name]; ok {
				fmt.Fprintf(&b, "        weight: %d\n", w)
			}
			if c.Drain[n.Name] {
				b.WriteString("        drain: true\n")
			}
		}
	}
	fmt.Fprintf(&b, "policy: %s\ntable:\n  size: 1009\n  seed: \"%s\"\ngrace_period: %v\npins:\n  capacity: 4096\n  idle_timeout: 5m\n",
		c.Policy, c.Seed, c.Grace)
	b.WriteString(c.Extra)
	return b.String()
}

// Router is the running anysched.
type Router struct {
	*Proc
	env    *Env
	Config RouterConfig
	Path   string // the config file
}

func (e *Env) startRouter(t *testing.T, c RouterConfig) *Router {
	t.Helper()
	if c.Policy == "" {
		c.Policy = "weighted"
	}
	if c.Grace == 0 {
		c.Grace = 2 * time.Second
	}
	if c.Extra == "" && !c.Static {
		c.Extra = liveDefaults
	}
	if c.Seed == "" {
		seed := make([]byte, 16)
		rand.Read(seed)
		c.Seed = hex.EncodeToString(seed)
	}
	r := &Router{env: e, Config: c, Path: filepath.Join(e.Dir, "router.yaml")}
	r.write(t)
	r.start(t)
	return r
}

func (r *Router) write(t testing.TB) {
	t.Helper()
	if err := r.writeConfig(); err != nil {
		t.Fatal(err)
	}
}

func (r *Router) writeConfig() error {
	tmp := r.Path + ".new"
	if err := os.WriteFile(tmp, []byte(r.env.renderConfig(r.Config)), 0o644); err != nil {
		return err
	}
	// A rename, so the router never reads a half-written file.
	return os.Rename(tmp, r.Path)
}

// ReloadNow is Reload without waiting, for a goroutine other than the
// test's (e.g. one that churns the table): it edits the config, writes it
// and sends SIGHUP, and returns what went wrong. Only one goroutine may
// edit the config at a time.
func (r *Router) ReloadNow(edit func(*RouterConfig)) error {
	edit(&r.Config)
	if err := r.writeConfig(); err != nil {
		return err
	}
	return r.Cmd.Process.Signal(syscall.SIGHUP)
}

func (r *Router) start(t *testing.T) {
	t.Helper()
	b := r.env.Bed
	args := append([]string{"run", "--config", r.Path, "--iface", b.Router.Iface, "--metrics-addr", RouterMetrics}, r.env.opts.RouterArgs...)
	r.Proc = startProc(t, "anysched", b.Router.Command(bin(t, "anysched"), args...))
	if err := testbed.WaitFor(time.Now().Add(failAfter), func() error {
		if !r.Running() {
			t.Fatalf("anysched exited while starting (%s)", r.state())
		}
		_, err := httpGet(b.Router, "http://"+RouterMetrics+"/ready")
		return err
	}); err != nil {
		t.Fatalf("anysched /ready: %v", err)
	}
}

// Restart starts the router again with the same config (after Kill).
func (r *Router) Restart(t *testing.T) {
	t.Helper()
	r.Kill()
	r.start(t)
}

// Metrics scrapes the router's /metrics; the test fails if it cannot.
func (r *Router) Metrics(t testing.TB) Metrics {
	t.Helper()
	m, err := scrape(r.env.Bed.Router, "http://"+RouterMetrics+"/metrics")
	if err != nil {
		t.Fatalf("anysched metrics: %v", err)
	}
	return m
}

// Generation is the published table's generation.
func (r *Router) Generation(t testing.TB) float64 {
	t.Helper()
	return r.Metrics(t).Value("anysched_table_generation")
}

// Reload applies edit to the config, writes it and sends SIGHUP. With
// wantTable it waits until a newer table is published (the edit changed
// the table's inputs).
func (r *Router) Reload(t testing.TB, wantTable bool, edit func(*RouterConfig)) {
	t.Helper()
	before := r.Generation(t)
	edit(&r.Config)
	r.write(t)
	r.Signal(t, syscall.SIGHUP)
	if !wantTable {
		return
	}
	if err := testbed.WaitFor(time.Now().Add(failAfter), func() error {
		if g := r.Generation(t); g <= before {
			return fmt.Errorf("table generation still %v", g)
		}
		return nil
	}); err != nil {
		t.Fatalf("after SIGHUP: %v", err)
	}
}

// TableNode is the node that config c's table (built fresh, as a router
// starting with it builds it) gives a new TCP flow from src to vip: what
// the router does for an unpinned flow when the config's inputs are all
// it has (Static configs: no live status).
func (e *Env) TableNode(t testing.TB, c RouterConfig, src, vip netip.AddrPort) string {
	t.Helper()
	cfg, err := sched.ParseConfig([]byte(e.renderConfig(c)), "e2e table")
	if err != nil {
		t.Fatal(err)
	}
	s, err := sched.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	k := parser.FlowKey{SrcPort: src.Port(), DstPort: vip.Port(), Proto: 6}
	if vip.Addr().Is6() {
		k.SetIPv6(src.Addr().AsSlice(), vip.Addr().AsSlice())
	} else {
		k.SetIPv4(src.Addr().AsSlice(), vip.Addr().AsSlice())
	}
	snap := s.Current()
	id := snap.LookupNew(&k)
	if id == lookup.NoNode {
		return ""
	}
	return snap.Nodes[id].Name
}

// AnycastHandshakes sums, over the given nodes (all when none are
// given), the TLS handshakes they completed on the VIP by migration-
// capable and by legacy clients: one per connection a client opened
// through the router. migration.Transport (inside anyclient) silently
// redials when a kept-alive connection dies between requests, so a test
// that counts the connections its clients meant to open against these
// sums sees the broken connections a client hid.
func (e *Env) AnycastHandshakes(t testing.TB, nodes ...*Node) (capable, legacy float64) {
	t.Helper()
	if len(nodes) == 0 {
		nodes = e.Nodes
	}
	for _, n := range nodes {
		m, err := n.Metrics()
		if err != nil {
			t.Fatalf("%s metrics: %v", n.Name, err)
		}
		for series, v := range m {
			if !strings.HasPrefix(series, "anynode_handshakes_total{") || !strings.Contains(series, `kind="anycast"`) {
				continue
			}
			if strings.Contains(series, `capable="true"`) {
				capable += v
			} else {
				legacy += v
			}
		}
	}
	return capable, legacy
}
