package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/anysched/anysched/internal/loadreport"
	"github.com/anysched/anysched/internal/testbed"
	"github.com/anysched/anysched/lookup"
)

// Connection scenario names. The state sweep names its front ends
// NameAnysched, NameNftDNAT and NameHAProxy.
const (
	NameDirect         = "direct"
	NameAnyschedMig    = "anysched-mig"
	NameAnyschedLegacy = "anysched-legacy"
	NameHAProxy        = "haproxy"
)

// ConnConfig sizes a connection run.
type ConnConfig struct {
	// Reps is how many times the connections/s sequence is repeated.
	Reps int `json:"reps"`
	// Duration is how long each connections/s run opens connections.
	Duration time.Duration `json:"duration_ns"`
	// Concurrency is the connections the client keeps open at once in a
	// connections/s run (closed loop: the next opens when one is done).
	Concurrency int `json:"concurrency"`
	// Hold is the live connections the state sweep holds open.
	Hold int `json:"hold"`
	// HoldRate is the rate (connections/s) at which they are opened.
	HoldRate float64 `json:"hold_rate"`
	// Shares are the state sweep's migration-capable shares, in percent.
	Shares []int `json:"shares"`
	// The built binaries.
	Anysched  string `json:"anysched"`
	Anynode   string `json:"anynode"`
	Anyclient string `json:"anyclient"`
	// Dir is scratch space for configs, keys, certificates and logs.
	Dir string `json:"-"`
	// ClientCPU runs the client and the nodes; RouterCPU every front end
	// (and the router's receive path).
	ClientCPU int `json:"client_cpu"`
	RouterCPU int `json:"router_cpu"`
}

// maxHold keeps HAProxy's two descriptors per connection within the
// default descriptor limit (20000 here) it may not raise.
const maxHold = 9000

// Check validates the configuration; errors name the field.
func (c ConnConfig) Check() error {
	switch {
	case c.Reps < 1 || c.Reps > 1000:
		return fmt.Errorf("conn-reps %d: want 1..1000", c.Reps)
	case c.Duration < 100*time.Millisecond || c.Duration > 10*time.Minute:
		return fmt.Errorf("conn-duration %v: want 100ms..10m", c.Duration)
	case c.Concurrency < 1 || c.Concurrency > 10000:
		return fmt.Errorf("conn-concurrency %d: want 1..10000", c.Concurrency)
	case c.Hold < 2 || c.Hold > maxHold:
		return fmt.Errorf("hold %d: want 2..%d", c.Hold, maxHold)
	case c.HoldRate < 1 || c.HoldRate > 100000 || math.IsNaN(c.HoldRate):
		return fmt.Errorf("hold-rate %v: want 1..100000 per second", c.HoldRate)
	case len(c.Shares) == 0:
		return errors.New("shares: want at least one percentage")
	case c.ClientCPU < 0 || c.RouterCPU < 0 || c.ClientCPU == c.RouterCPU:
		return fmt.Errorf("cpus %d,%d: want two different CPUs", c.ClientCPU, c.RouterCPU)
	}
	for _, s := range c.Shares {
		if s < 0 || s > 100 {
			return fmt.Errorf("shares: %d is not a percentage (0..100)", s)
		}
	}
	for _, b := range []struct{ flag, path string }{{"anysched", c.Anysched}, {"anynode", c.Anynode}, {"anyclient", c.Anyclient}} {
		if b.path == "" {
			return fmt.Errorf("%s: the binary is required", b.flag)
		}
		if _, err := os.Stat(b.path); err != nil {
			return fmt.Errorf("%s: %w", b.flag, err)
		}
	}
	if _, err := exec.LookPath("haproxy"); err != nil {
		return fmt.Errorf("haproxy: the HAProxy scenario needs it (Debian package haproxy, make deps): %w", err)
	}
	return nil
}

// FrontState is what a front end keeps for the connections it carries.
type FrontState struct {
	// Entries are pins and transition records (anysched) or conntrack
	// entries; zero for HAProxy, whose state is its memory.
	Entries float64 `json:"entries"`
	// Bytes is Entries times the bytes per entry, or HAProxy's RSS.
	Bytes  float64            `json:"bytes"`
	Detail map[string]float64 `json:"detail,omitempty"`
}

// ConnScenario is a front end in the router namespace in front of the
// bed's anynode nodes, measured with real TLS connections from the
// client namespace.
type ConnScenario interface {
	Name() string
	About() string
	// Policy is the clients' migration policy in the connections/s runs.
	Policy() string
	Start(e *Env) error
	Stop(e *Env) error
	// State reads the front end's state now.
	State(e *Env) (FrontState, error)
}

// ConnScenarios are the connections/s scenarios in interleaving order.
func ConnScenarios() []ConnScenario {
	return []ConnScenario{
		direct{},
		&anyschedFront{name: NameAnyschedMig, policy: "rendezvous"},
		&anyschedFront{name: NameAnyschedLegacy, policy: "never"},
		newNftFront(),
		&haproxyFront{},
	}
}

// StateFronts are the front ends of the state sweep.
func StateFronts() []ConnScenario {
	return []ConnScenario{&anyschedFront{name: NameAnysched}, newNftFront(), &haproxyFront{}}
}

// targeted is a scenario whose clients connect somewhere other than the
// VIP.
type targeted interface {
	Target(e *Env) netip.AddrPort
}

// direct is the ceiling: legacy clients straight to node1's unicast
// address, no front end: what the client and the nodes manage on their
// CPU, the most any front end can pass.
type direct struct{}

func (direct) Name() string                   { return NameDirect }
func (direct) Policy() string                 { return "never" }
func (direct) Start(*Env) error               { return nil }
func (direct) Stop(*Env) error                { return nil }
func (direct) State(*Env) (FrontState, error) { return FrontState{}, nil }
func (direct) Target(e *Env) netip.AddrPort   { return netip.AddrPortFrom(e.Bed.TB.Nodes[0].Addr4, 443) }
func (direct) About() string {
	return "ceiling: legacy clients straight to node1's unicast address, no front end (the client's and the nodes' CPU is the limit)"
}

// PinEntryBytes is what one pin or transition record occupies in
// lookup's flow table: lookup.EntryBytes (the entry and its 32-bit bucket
// tag) and its share of the bucket occupancy bitmap (one bit per bucket of
// 8 entries). The table is preallocated at its capacity; this is the cost
// of each entry in use.
var PinEntryBytes = float64(lookup.EntryBytes) + 1.0/64

// anyschedFront is `anysched run` (the packet scenarios' router) in front
// of the nodes; its clients migrate (rendezvous) or are legacy (never).
type anyschedFront struct {
	name   string
	policy string
	r      routerProcess
}

func (s *anyschedFront) Name() string   { return s.name }
func (s *anyschedFront) Policy() string { return s.policy }
func (s *anyschedFront) About() string {
	switch s.policy {
	case "rendezvous":
		return "anysched (`anysched run`, AF_XDP) with migrating clients (`anyclient --policy rendezvous`): the handshake on the VIP, then a resumption at the node's unicast address with its token; the VIP connection is closed"
	case "never":
		return "anysched with legacy clients (`anyclient --policy never`): every connection stays on the VIP, pinned at its ClientHello"
	}
	return "anysched (`anysched run`, AF_XDP): pin table and transition records, by client mix"
}

func (s *anyschedFront) Start(e *Env) error {
	s.r = routerProcess{mode: "forward"}
	return s.r.Start(e)
}

func (s *anyschedFront) Stop(e *Env) error { return s.r.Stop(e) }

func (s *anyschedFront) State(e *Env) (FrontState, error) {
	text, err := s.r.get(e, "/metrics")
	if err != nil {
		return FrontState{}, err
	}
	g := gauges(text, "anysched_pins", "anysched_transition_entries", "anysched_reassembly_in_use")
	pins, trans := g["anysched_pins"], g["anysched_transition_entries"]
	return FrontState{Entries: pins + trans, Bytes: (pins + trans) * PinEntryBytes,
		Detail: map[string]float64{"pins": pins, "transition_entries": trans, "reassembly_in_use": g["anysched_reassembly_in_use"]}}, nil
}

// gauges picks label-less series out of a Prometheus text exposition.
func gauges(text string, names ...string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		name, value, ok := strings.Cut(line, " ")
		if !ok || !contains(names, name) {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil && !math.IsNaN(v) && !math.IsInf(v, 0) {
			out[name] = v
		}
	}
	return out
}

// dnatPort is where the nodes also serve TLS for the nftables front end:
// the DNAT points there, so the nodes can send those connections' replies
// back through the router (which must undo the translation) by a policy
// rule on the source port, while a migrated client's connection to the
// node's unicast port 443 stays direct, as with every other front end.
const dnatPort = 8443

// dnatReplyTable is the nodes' routing table for the DNAT'd replies.
const dnatReplyTable = "100"

// nftFront is the packet scenarios' nftables DNAT with conntrack, made
// able to carry connections: DNAT to the nodes' dnatPort, their replies
// from it routed via the router, and no ICMP redirects from the router
// (it forwards out of the interface it received on, which would otherwise
// teach the nodes the direct way).
type nftFront struct{ nftDNAT }

func newNftFront() *nftFront { return &nftFront{nftDNAT{port: dnatPort}} }

func (nftFront) Policy() string { return "never" }
func (nftFront) About() string {
	return fmt.Sprintf("nftables DNAT with conntrack (the packet scenario's jhash map, to the nodes' port %d), the nodes' replies from that port routed back via the router, ICMP redirects off; legacy clients", dnatPort)
}

func (s nftFront) Start(e *Env) error {
	tb := e.Bed.TB
	if err := tb.Router.Sysctl("net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf."+tb.Router.Iface+".send_redirects=0"); err != nil {
		return err
	}
	client := netip.PrefixFrom(tb.Client.Addr4, 32).String()
	port := strconv.Itoa(dnatPort)
	for _, n := range tb.Nodes {
		if err := n.Sysctl("net.ipv4.conf.all.accept_redirects=0", "net.ipv4.conf."+n.Iface+".accept_redirects=0"); err != nil {
			return err
		}
		for _, args := range [][]string{
			{"ip", "route", "replace", client, "via", tb.Router.Addr4.String(), "table", dnatReplyTable},
			// ipproto 6, not tcp: iproute2 looks names up in
			// /etc/protocols, which a minimal Debian does not have.
			{"ip", "rule", "add", "ipproto", "6", "sport", port, "table", dnatReplyTable},
		} {
			if out, err := n.Exec(args...); err != nil {
				return fmt.Errorf("bench: %s: %s: %v: %s", n.Role, strings.Join(args, " "), err, out)
			}
		}
	}
	if err := s.nftDNAT.Start(e); err != nil {
		return err
	}
	return s.BeforeBurst(e)
}

func (s nftFront) Stop(e *Env) error {
	tb := e.Bed.TB
	errs := []error{s.nftDNAT.Stop(e)}
	for _, n := range tb.Nodes {
		for _, args := range [][]string{
			{"ip", "rule", "del", "ipproto", "6", "sport", strconv.Itoa(dnatPort), "table", dnatReplyTable},
			{"ip", "route", "flush", "table", dnatReplyTable},
		} {
			if out, err := n.Exec(args...); err != nil {
				errs = append(errs, fmt.Errorf("bench: %s: %s: %v: %s", n.Role, strings.Join(args, " "), err, out))
			}
		}
		errs = append(errs, n.Sysctl("net.ipv4.conf.all.accept_redirects=1", "net.ipv4.conf."+n.Iface+".accept_redirects=1"))
	}
	errs = append(errs, tb.Router.Sysctl("net.ipv4.conf.all.send_redirects=1", "net.ipv4.conf."+tb.Router.Iface+".send_redirects=1"))
	return errors.Join(errs...)
}

func (s nftFront) State(e *Env) (FrontState, error) {
	x, err := s.Extra(e)
	if err != nil {
		return FrontState{}, err
	}
	size, err := ConntrackObjectSize()
	if err != nil {
		return FrontState{}, err
	}
	n := x["conntrack_entries"]
	return FrontState{Entries: n, Bytes: n * size, Detail: map[string]float64{"object_size": size}}, nil
}

// ConntrackObjectSize reads the nf_conntrack slab's object size: sysfs
// (SLUB), else /proc/slabinfo's objsize column. It is the struct nf_conn
// alone: extensions (NAT, timestamps) are allocated beside it, so entries
// × this is a lower bound of conntrack's memory.
func ConntrackObjectSize() (float64, error) {
	if b, err := os.ReadFile("/sys/kernel/slab/nf_conntrack/object_size"); err == nil {
		if v, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64); err == nil && v > 0 && !math.IsInf(v, 0) {
			return v, nil
		}
	}
	b, err := os.ReadFile("/proc/slabinfo")
	if err != nil {
		return 0, fmt.Errorf("bench: nf_conntrack object size: %w", err)
	}
	return slabObjectSize(string(b), "nf_conntrack")
}

// slabObjectSize finds a cache's objsize (the fourth column) in
// /proc/slabinfo's text.
func slabObjectSize(text, cache string) (float64, error) {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[0] == cache {
			v, err := strconv.ParseFloat(f[3], 64)
			if err != nil || !(v > 0) || math.IsInf(v, 0) {
				return 0, fmt.Errorf("bench: slabinfo %s objsize %q", cache, f[3])
			}
			return v, nil
		}
	}
	return 0, fmt.Errorf("bench: no %s cache in /proc/slabinfo (is nf_conntrack loaded?)", cache)
}

// haproxyFront is HAProxy in TCP mode on the router, bound to the VIP (on
// the router's lo while it runs), hashing each connection's source port
// consistently onto the nodes (`balance source` would send the bed's one
// client address to one node).
type haproxyFront struct {
	cmd    *exec.Cmd
	exited chan error
	logs   *lockedBuffer
}

func (*haproxyFront) Name() string   { return NameHAProxy }
func (*haproxyFront) Policy() string { return "never" }
func (*haproxyFront) About() string {
	return "HAProxy (Debian package) `mode tcp`, `balance hash src_port` + `hash-type consistent` over the nodes' unicast addresses, one thread on the router CPU; legacy clients"
}

func haproxyConfig(e *Env) string {
	tb := e.Bed.TB
	return fmt.Sprintf(`global
	maxconn %d
	nbthread 1
defaults
	mode tcp
	timeout connect 5s
	timeout client 2m
	timeout server 2m
frontend vip
	bind %s:443
	default_backend nodes
backend nodes
	balance hash src_port
	hash-type consistent
	server node1 %s:443
	server node2 %s:443
`, maxHold+100, tb.VIP4, tb.Nodes[0].Addr4, tb.Nodes[1].Addr4)
}

func (s *haproxyFront) Start(e *Env) error {
	tb := e.Bed.TB
	r := tb.Router
	vip := netip.PrefixFrom(tb.VIP4, 32).String()
	if out, err := r.Exec("ip", "addr", "replace", vip, "dev", "lo"); err != nil {
		return fmt.Errorf("bench: VIP on the router's lo: %v: %s", err, out)
	}
	cfg := filepath.Join(e.Dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(haproxyConfig(e)), 0o644); err != nil {
		return err
	}
	s.logs = &lockedBuffer{}
	// -db: stay in the foreground, so the process is HAProxy itself.
	s.cmd = r.Command("taskset", "-c", strconv.Itoa(e.Bed.RouterCPU), "haproxy", "-db", "-f", cfg)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		s.cmd = nil
		s.Stop(e)
		return fmt.Errorf("bench: start haproxy: %w", err)
	}
	s.exited = make(chan error, 1)
	go func() { s.exited <- s.cmd.Wait() }()
	err := r.WaitTCP(netip.AddrPortFrom(tb.VIP4, 443), time.Now().Add(20*time.Second))
	select {
	case err := <-s.exited:
		s.cmd = nil
		s.Stop(e) // the VIP off lo
		return fmt.Errorf("bench: haproxy exited: %v\n%s", err, s.logs.String())
	default:
	}
	if err != nil {
		s.Stop(e)
		return fmt.Errorf("bench: haproxy not listening on %s: %w", tb.VIP4, err)
	}
	return nil
}

func (s *haproxyFront) State(*Env) (FrontState, error) {
	if s.cmd == nil {
		return FrontState{}, errors.New("bench: haproxy is not running")
	}
	rss, err := processRSS(s.cmd.Process.Pid)
	if err != nil {
		return FrontState{}, err
	}
	return FrontState{Bytes: rss, Detail: map[string]float64{"rss": rss}}, nil
}

// processRSS reads VmRSS (bytes) from /proc/PID/status.
func processRSS(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseVmRSS(string(b))
}

func parseVmRSS(status string) (float64, error) {
	for _, line := range strings.Split(status, "\n") {
		v, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 2 && f[1] == "kB" {
			if n, err := strconv.ParseFloat(f[0], 64); err == nil && n >= 0 && !math.IsInf(n, 0) {
				return n * 1024, nil
			}
		}
		return 0, fmt.Errorf("bench: VmRSS line %q", line)
	}
	return 0, errors.New("bench: no VmRSS in the process status")
}

func (s *haproxyFront) Stop(e *Env) error {
	var errs []error
	if s.cmd != nil {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited: // HAProxy exits 0 or 143 on SIGTERM: either is a stop
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-s.exited
			errs = append(errs, errors.New("bench: haproxy did not stop within 10s of SIGTERM"))
		}
		s.cmd = nil
	}
	vip := netip.PrefixFrom(e.Bed.TB.VIP4, 32).String()
	if out, err := e.Bed.TB.Router.Exec("ip", "addr", "del", vip, "dev", "lo"); err != nil {
		errs = append(errs, fmt.Errorf("bench: remove the VIP from the router's lo: %v: %s", err, out))
	}
	return errors.Join(errs...)
}

// nodes are the anynode servers every connection scenario shares.
type nodes struct {
	procs []*exec.Cmd
	done  []chan error
	logs  []*lockedBuffer
	// CA is the PEM file of the nodes' self-signed certificates (the
	// clients' --ca).
	CA string
}

// startNodes runs anynode in every node namespace on ClientCPU: the VIP
// (on lo, direct server return) and the node's unicast address, port 443,
// one shared ticket key (so a pool could resume anywhere).
func startNodes(e *Env, cfg ConnConfig) (*nodes, error) {
	keys := filepath.Join(e.Dir, "ticket.keys")
	key := make([]byte, 32)
	f, err := os.Open("/dev/urandom")
	if err != nil {
		return nil, err
	}
	_, err = io.ReadFull(f, key)
	f.Close()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(keys, []byte(fmt.Sprintf("%x\n", key)), 0o600); err != nil {
		return nil, err
	}
	ns := &nodes{CA: filepath.Join(e.Dir, "ca.pem")}
	var pems []string
	for _, n := range e.Bed.TB.Nodes {
		pem := filepath.Join(e.Dir, n.Role+".pem")
		pems = append(pems, pem)
		logs := &lockedBuffer{}
		cmd := n.Command("taskset", "-c", strconv.Itoa(cfg.ClientCPU), cfg.Anynode, "--name", n.Role,
			"--vip", netip.AddrPortFrom(e.Bed.TB.VIP4, 443).String(), "--vip", netip.AddrPortFrom(n.Addr4, dnatPort).String(),
			"--unicast", netip.AddrPortFrom(n.Addr4, 443).String(),
			"--ticket-keys", keys, "--write-cert", pem, "--log-level", "warn", "--drain-timeout", "1s")
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			ns.stop()
			return nil, fmt.Errorf("bench: start anynode: %w", err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		ns.procs, ns.done, ns.logs = append(ns.procs, cmd), append(ns.done, done), append(ns.logs, logs)
	}
	for i, n := range e.Bed.TB.Nodes {
		err := n.WaitTCP(netip.AddrPortFrom(n.Addr4, 443), time.Now().Add(20*time.Second))
		if err == nil {
			_, err = os.Stat(pems[i])
		}
		if err != nil {
			ns.stop()
			return nil, fmt.Errorf("bench: %s's anynode not serving: %w\n%s", n.Role, err, ns.logs[i].String())
		}
	}
	var all []byte
	for _, p := range pems {
		b, err := os.ReadFile(p)
		if err != nil {
			ns.stop()
			return nil, err
		}
		all = append(all, b...)
	}
	if err := os.WriteFile(ns.CA, all, 0o644); err != nil {
		ns.stop()
		return nil, err
	}
	return ns, nil
}

// check fails when a node has exited.
func (ns *nodes) check() error {
	for i, d := range ns.done {
		select {
		case err := <-d:
			d <- err
			return fmt.Errorf("bench: anynode %d exited: %v\n%s", i+1, err, ns.logs[i].String())
		default:
		}
	}
	return nil
}

func (ns *nodes) stop() error {
	var errs []error
	for i, cmd := range ns.procs {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-ns.done[i]:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-ns.done[i]
			errs = append(errs, fmt.Errorf("bench: anynode %d did not stop within 15s of SIGTERM", i+1))
		}
	}
	ns.procs = nil
	return errors.Join(errs...)
}

// ClientReport is `anyclient load --json`'s report.
type ClientReport = loadreport.Report

// client is one running `anyclient load` in the client namespace.
type client struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{}
	final  ClientReport
	err    error

	mu   sync.Mutex
	last ClientReport // the latest report, final or not (--report-every)
}

// startClient runs `anyclient load --json` with args against target,
// pinned to ClientCPU.
func startClient(e *Env, cfg ConnConfig, ca string, target netip.AddrPort, args ...string) (*client, error) {
	url := "https://" + target.String() + "/"
	full := append([]string{"-c", strconv.Itoa(cfg.ClientCPU), cfg.Anyclient, "load", "--ca", ca, "--json", "--progress", "off"}, args...)
	c := &client{cmd: e.Bed.TB.Client.Command("taskset", append(full, url)...), stderr: &lockedBuffer{}, done: make(chan struct{})}
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c.cmd.Stderr = c.stderr
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start anyclient: %w", err)
	}
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		got := false
		for sc.Scan() {
			var r ClientReport
			if json.Unmarshal(sc.Bytes(), &r) != nil {
				continue
			}
			c.mu.Lock()
			c.last = r
			c.mu.Unlock()
			if r.Final {
				c.final, got = r, true
			}
		}
		err := c.cmd.Wait()
		var exit *exec.ExitError
		switch {
		case !got:
			c.err = fmt.Errorf("bench: anyclient load gave no final report (%v): %s", err, c.stderr.String())
		case err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1):
			// Exit 1 is "a connection broke": counted in the report.
			c.err = fmt.Errorf("bench: anyclient load: %v: %s", err, c.stderr.String())
		}
	}()
	return c, nil
}

// wait waits for the client to finish, for at most d (then kills it).
func (c *client) wait(d time.Duration) (ClientReport, error) {
	select {
	case <-c.done:
	case <-time.After(d):
		c.cmd.Process.Kill()
		<-c.done
		return c.final, fmt.Errorf("bench: anyclient load did not finish within %v", d)
	}
	return c.final, c.err
}

// stop kills the client and returns its latest report.
func (c *client) stop() ClientReport {
	c.cmd.Process.Kill()
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// ConnSample is one connections/s run of one scenario.
type ConnSample struct {
	Rep      int     `json:"rep"`
	Scenario string  `json:"scenario"`
	Policy   string  `json:"policy"`
	Seconds  float64 `json:"seconds"`
	// CPS is completed connections (a TLS handshake — two with migration —
	// and one request each) per second.
	CPS    float64      `json:"cps"`
	Client ClientReport `json:"client"`
	Load1  float64      `json:"load1"`
}

// measureCPS runs one closed-loop connections/s run against a started
// scenario.
func measureCPS(e *Env, cfg ConnConfig, ca string, sc ConnScenario) (ConnSample, error) {
	target := netip.AddrPortFrom(e.Bed.TB.VIP4, 443)
	if t, ok := sc.(targeted); ok {
		target = t.Target(e)
	}
	c, err := startClient(e, cfg, ca, target, "--policy", sc.Policy(), "--connections", strconv.Itoa(cfg.Concurrency),
		"--duration", cfg.Duration.String(), "--requests-per-conn", "1", "--timeout", "10s")
	if err != nil {
		return ConnSample{}, err
	}
	r, err := c.wait(cfg.Duration + time.Minute)
	if err != nil {
		return ConnSample{}, err
	}
	s := ConnSample{Scenario: sc.Name(), Policy: sc.Policy(), Seconds: r.Elapsed, Client: r, Load1: LoadAverage()[0]}
	if r.Elapsed > 0 {
		s.CPS = float64(r.Done-r.Broken) / r.Elapsed
	}
	return s, nil
}

// StatePoint is the front end's state growth at some live connection
// count, while the held connections open.
type StatePoint struct {
	Live  int     `json:"live"`
	Bytes float64 `json:"bytes"`
}

// StateSample is one hold: Held connections, Share percent of them
// migration-capable, through one front end.
type StateSample struct {
	Front string `json:"front"`
	Share int    `json:"share"`
	Held  int    `json:"held"`
	// Migrating and Legacy are the clients of each kind opened.
	Migrating int `json:"migrating"`
	Legacy    int `json:"legacy"`
	// Live, OnVIP and OnNodes are the client's established connections
	// (in all, to the VIP, to the nodes' unicast addresses) at the
	// plateau.
	Live     int        `json:"live"`
	OnVIP    int        `json:"on_vip"`
	OnNodes  int        `json:"on_nodes"`
	Baseline FrontState `json:"baseline"`
	Plateau  FrontState `json:"plateau"`
	// Curve is the growth over Baseline as the connections opened.
	Curve []StatePoint `json:"curve"`
	// Broken, Migrated, Fallbacks and the reasons sum the clients'
	// reports at the plateau.
	Broken    int            `json:"broken"`
	Migrated  int            `json:"migrated"`
	Fallbacks int            `json:"fallbacks"`
	Failures  map[string]int `json:"failures,omitempty"`
	Reasons   map[string]int `json:"fallback_reasons,omitempty"`
	Seconds   float64        `json:"seconds"`
}

// Growth is the front end's state at the plateau over its idle state.
func (s StateSample) Growth() float64 { return max(0, s.Plateau.Bytes-s.Baseline.Bytes) }

// PerConn is Growth per live connection.
func (s StateSample) PerConn() float64 {
	if s.Live == 0 {
		return 0
	}
	return s.Growth() / float64(s.Live)
}

// holdRequests is the requests each held connection makes; the think time
// between them keeps it open past the ramp.
const holdRequests = 3

// holdTiming returns the think time between a held connection's requests:
// every connection outlives the ramp by a wide margin (the clients are
// stopped at the plateau, so the margin costs no time).
func holdTiming(cfg ConnConfig) (think time.Duration) {
	ramp := time.Duration(float64(cfg.Hold) / cfg.HoldRate * float64(time.Second))
	return (3*ramp + 10*time.Second) / (holdRequests - 1)
}

// measureState holds cfg.Hold connections (share percent migrating)
// through a started front end and reads its state as they open and at
// the plateau, then stops the clients.
func measureState(e *Env, cfg ConnConfig, ca string, sc ConnScenario, share int) (StateSample, error) {
	start := time.Now()
	s := StateSample{Front: sc.Name(), Share: share, Held: cfg.Hold, Failures: map[string]int{}, Reasons: map[string]int{}}
	s.Migrating = (cfg.Hold*share + 50) / 100
	s.Legacy = cfg.Hold - s.Migrating
	base, err := sc.State(e)
	if err != nil {
		return s, err
	}
	s.Baseline = base
	think := holdTiming(cfg)
	var clients []*client
	defer func() {
		for _, c := range clients {
			c.stop()
		}
	}()
	for _, kind := range []struct {
		policy string
		n      int
	}{{"rendezvous", s.Migrating}, {"never", s.Legacy}} {
		if kind.n == 0 {
			continue
		}
		rate := cfg.HoldRate * float64(kind.n) / float64(cfg.Hold)
		c, err := startClient(e, cfg, ca, netip.AddrPortFrom(e.Bed.TB.VIP4, 443), "--policy", kind.policy, "--connections", strconv.Itoa(kind.n),
			"--total", strconv.Itoa(kind.n), "--rate", strconv.FormatFloat(rate, 'f', 3, 64), "--duration", "0",
			"--requests-per-conn", strconv.Itoa(holdRequests), "--think", think.String(), "--timeout", "30s",
			"--report-every", "250ms")
		if err != nil {
			return s, err
		}
		clients = append(clients, c)
	}
	ips := map[netip.Addr]bool{}
	for _, n := range e.Bed.TB.Nodes {
		ips[n.Addr4] = true
	}
	// The first connections end after 2 × think: the plateau must come
	// before.
	deadline := start.Add(2 * think)
	var peak StateSample
	// Every connection is open when the nodes hold the migrated ones and
	// the VIP at least the legacy ones. A connection is established before
	// its ClientHello has passed the front end, and a migrating client's
	// VIP leg overlaps its unicast connection for a moment, so sampling
	// goes on (at most settleSamples more) until the VIP holds only the
	// legacy connections and the state did not change since the last
	// sample, and for at least minSettle samples.
	const settleSamples, minSettle = 10, 3
	after := -1 // samples left after the connections were all open
	var prev FrontState
	for time.Now().Before(deadline) && after != 0 {
		vip, onNodes, err := established(e.Bed.TB.Client.NS, e.Bed.TB.VIP4, ips)
		if err != nil {
			return s, err
		}
		st, err := sc.State(e)
		if err != nil {
			return s, err
		}
		live := vip + onNodes
		s.Curve = append(s.Curve, StatePoint{Live: live, Bytes: max(0, st.Bytes-base.Bytes)})
		switch {
		case after > 0:
			after--
			peak.Live, peak.OnVIP, peak.OnNodes, peak.Plateau = live, vip, onNodes, st
			if vip <= s.Legacy && st.Entries == prev.Entries && st.Bytes == prev.Bytes && after <= settleSamples-minSettle {
				after = 0
			}
		case onNodes >= s.Migrating && vip >= s.Legacy:
			peak.Live, peak.OnVIP, peak.OnNodes, peak.Plateau = live, vip, onNodes, st
			after = settleSamples
		case live >= peak.Live:
			peak.Live, peak.OnVIP, peak.OnNodes, peak.Plateau = live, vip, onNodes, st
		}
		prev = st
		if after == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond) // the sampling period of the curve
	}
	s.Live, s.OnVIP, s.OnNodes, s.Plateau = peak.Live, peak.OnVIP, peak.OnNodes, peak.Plateau
	for _, c := range clients {
		r := c.stop()
		s.Broken += r.Broken
		s.Migrated += r.Migrated
		s.Fallbacks += r.Fallbacks
		for k, v := range r.Failures {
			s.Failures[k] += v
		}
		for k, v := range r.Reasons {
			s.Reasons[k] += v
		}
	}
	clients = nil
	// The stopped clients' connections close now: let the nodes finish
	// (their FINs pass the front end) before the next front end starts.
	err = testbed.WaitFor(time.Now().Add(15*time.Second), func() error {
		for _, n := range e.Bed.TB.Nodes {
			if k, err := unsettled(n.NS); err != nil || k > 0 {
				return fmt.Errorf("%s: %d connections still closing (%v)", n.Role, k, err)
			}
		}
		return nil
	})
	s.Seconds = time.Since(start).Seconds()
	return s, err
}

// unsettled counts the namespace's TCP sockets that are neither listening
// nor in TIME_WAIT (which sends nothing more).
func unsettled(ns string) (int, error) {
	text, err := procNetTCP(ns)
	if err != nil {
		return 0, err
	}
	k := 0
	for _, c := range parseProcNetTCP(text) {
		if c.state != tcpListen && c.state != tcpTimeWait {
			k++
		}
	}
	return k, nil
}

func procNetTCP(ns string) (string, error) {
	var text []byte
	err := testbed.DoIn(ns, func() (err error) {
		// thread-self: this thread's namespace (self is the main thread's).
		text, err = os.ReadFile("/proc/thread-self/net/tcp")
		return err
	})
	return string(text), err
}

// established counts the namespace's established TCP connections to
// port 443 of vip and of the addresses in nodes.
func established(ns string, vip netip.Addr, nodes map[netip.Addr]bool) (onVIP, onNodes int, err error) {
	text, err := procNetTCP(ns)
	if err != nil {
		return 0, 0, err
	}
	for _, c := range parseProcNetTCP(text) {
		if c.state != tcpEstablished || c.remote.Port() != 443 {
			continue
		}
		switch {
		case c.remote.Addr() == vip:
			onVIP++
		case nodes[c.remote.Addr()]:
			onNodes++
		}
	}
	return onVIP, onNodes, nil
}

// TCP states in /proc/net/tcp.
const (
	tcpEstablished = 0x01
	tcpTimeWait    = 0x06
	tcpListen      = 0x0A
)

type procTCPConn struct {
	remote netip.AddrPort
	state  int
}

// parseProcNetTCP reads /proc/net/tcp's remote address and state columns
// (IPv4 addresses are the kernel's 32-bit word in hex, in host order:
// little-endian here); malformed lines are skipped.
func parseProcNetTCP(text string) []procTCPConn {
	var out []procTCPConn
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasSuffix(f[0], ":") {
			continue
		}
		host, port, ok := strings.Cut(f[2], ":")
		if !ok || len(host) != 8 {
			continue
		}
		a, err1 := strconv.ParseUint(host, 16, 32)
		p, err2 := strconv.ParseUint(port, 16, 16)
		st, err3 := strconv.ParseUint(f[3], 16, 8)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		addr := netip.AddrFrom4([4]byte{byte(a), byte(a >> 8), byte(a >> 16), byte(a >> 24)})
		out = append(out, procTCPConn{remote: netip.AddrPortFrom(addr, uint16(p)), state: int(st)})
	}
	return out
}

// ConnRun is the outcome of RunConns.
type ConnRun struct {
	Scenarios []ScenarioInfo  `json:"scenarios"`
	Fronts    []ScenarioInfo  `json:"fronts"`
	Samples   []ConnSample    `json:"samples"`
	States    []StateSample   `json:"states"`
	Derived   ConnDerivations `json:"derived"`
}

// ConnDerivations records how the state bytes were computed.
type ConnDerivations struct {
	PinEntryBytes       float64 `json:"pin_entry_bytes"`
	ConntrackObjectSize float64 `json:"conntrack_object_size"`
	HoldThinkSeconds    float64 `json:"hold_think_seconds"`
	HoldRequests        int     `json:"hold_requests"`
}

// RunConns builds a connection bed, starts the nodes and runs the
// connections/s scenarios interleaved over reps, then the state sweep
// (every front end at every share). progress gets a line per run.
func RunConns(ctx context.Context, cfg ConnConfig, progress func(string)) (*ConnRun, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if progress == nil {
		progress = func(string) {}
	}
	bed, err := NewConnBed(cfg.ClientCPU, cfg.RouterCPU)
	if err != nil {
		return nil, err
	}
	defer bed.Close()
	// The pin table holds every held legacy connection with room to spare.
	env := &Env{Bed: bed, Anysched: cfg.Anysched, Dir: cfg.Dir, Flows: 4 * max(cfg.Hold, cfg.Concurrency)}
	ns, err := startNodes(env, cfg)
	if err != nil {
		return nil, err
	}
	defer ns.stop()
	run := &ConnRun{Derived: ConnDerivations{PinEntryBytes: PinEntryBytes, HoldThinkSeconds: holdTiming(cfg).Seconds(), HoldRequests: holdRequests}}
	if run.Derived.ConntrackObjectSize, err = ConntrackObjectSize(); err != nil {
		// nf_conntrack loads with the first DNAT rule: read it after.
		run.Derived.ConntrackObjectSize = 0
	}
	scenarios, fronts := ConnScenarios(), StateFronts()
	for _, s := range scenarios {
		run.Scenarios = append(run.Scenarios, ScenarioInfo{Name: s.Name(), About: s.About()})
	}
	for _, s := range fronts {
		run.Fronts = append(run.Fronts, ScenarioInfo{Name: s.Name(), About: s.About()})
	}
	total := cfg.Reps*len(scenarios) + len(fronts)*len(cfg.Shares)
	done := 0
	step := func(sc ConnScenario, f func() error) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := ns.check(); err != nil {
			return err
		}
		if err := sc.Start(env); err != nil {
			return fmt.Errorf("%s: %w", sc.Name(), err)
		}
		if err := bed.CheckPinning(); err != nil {
			sc.Stop(env)
			return fmt.Errorf("%s: %w", sc.Name(), err)
		}
		ferr := f()
		if err := sc.Stop(env); err != nil {
			return errors.Join(ferr, fmt.Errorf("%s: %w", sc.Name(), err))
		}
		done++
		return ferr
	}
	for rep := 1; rep <= cfg.Reps; rep++ {
		for _, sc := range scenarios {
			err := step(sc, func() error {
				s, err := measureCPS(env, cfg, ns.CA, sc)
				if err != nil {
					return fmt.Errorf("%s: %w", sc.Name(), err)
				}
				s.Rep = rep
				run.Samples = append(run.Samples, s)
				progress(fmt.Sprintf("[%3d/%d] rep %d %-15s %7.1f conn/s, ttfb p50 %6.2f ms p99 %6.2f ms, migrated %d, broken %d",
					done+1, total, rep, sc.Name(), s.CPS, s.Client.TTFBp50ms, s.Client.TTFBp99ms, s.Client.Migrated, s.Client.Broken))
				return nil
			})
			if err != nil {
				return run, err
			}
		}
	}
	for _, sc := range fronts {
		for _, share := range cfg.Shares {
			err := step(sc, func() error {
				s, err := measureState(env, cfg, ns.CA, sc, share)
				if err != nil {
					return fmt.Errorf("%s at %d %% migrating: %w", sc.Name(), share, err)
				}
				run.States = append(run.States, s)
				progress(fmt.Sprintf("[%3d/%d] state %-9s %3d %% migrating: %d live (%d on VIP, %d on nodes), +%.0f B = %.1f B/conn, broken %d%s, fallbacks %d%s",
					done+1, total, sc.Name(), share, s.Live, s.OnVIP, s.OnNodes, s.Growth(), s.PerConn(), s.Broken, reasons(s.Failures), s.Fallbacks, reasons(s.Reasons)))
				return nil
			})
			if err != nil {
				return run, err
			}
		}
	}
	if run.Derived.ConntrackObjectSize == 0 {
		run.Derived.ConntrackObjectSize, _ = ConntrackObjectSize()
	}
	return run, nil
}

// reasons formats counted reasons as " (a: 1, b: 2)", sorted.
func reasons(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
