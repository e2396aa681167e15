package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cilium/ebpf/link"

	"github.com/anysched/anysched/internal/testbed"
)

// Env is what scenarios share: the bed, the router binary, a scratch
// directory.
type Env struct {
	Bed *Bed
	// Anysched is the path of the built `anysched` binary.
	Anysched string
	// Dir holds config files and router logs.
	Dir string
	// Flows is the generator's flow count (the router's pin table is sized
	// for it).
	Flows int
}

// Scenario is one way of running the router namespace for packets: it is
// measured by sending every workload at the router with the generator and
// counting what reaches the nodes (Measure). Connection-level front ends
// are ConnScenarios (conn.go).
type Scenario interface {
	// Name is the short name used in the report, plots and JSON.
	Name() string
	// About says in one line what runs.
	About() string
	// Start sets the router namespace up.
	Start(e *Env) error
	// BeforeBurst runs before each measured burst (e.g. empty conntrack).
	BeforeBurst(e *Env) error
	// Extra reads the scenario's own counters after a burst (drops by
	// reason, state entries); nil when it has none.
	Extra(e *Env) (map[string]float64, error)
	// Stop undoes Start.
	Stop(e *Env) error
}

// counting is implemented by scenarios that count delivered frames
// themselves instead of at the nodes (the generator's ceiling).
type counting interface {
	Counted() (uint64, error)
}

// PacketScenarios are the packet-level scenarios, in the order they
// are interleaved, after the generator's ceiling.
func PacketScenarios() []Scenario {
	return []Scenario{
		&ceiling{},
		&routerProcess{mode: "reflect"},
		&routerProcess{mode: "forward"},
		&linuxForward{},
		&nftDNAT{},
	}
}

// Scenario names.
const (
	NameCeiling   = "ceiling"
	NameReflector = "reflector"
	NameAnysched  = "anysched"
	NameLinuxFwd  = "linux-fwd"
	NameNftDNAT   = "nft-dnat"
)

// ceiling: the counting program on the router's eth0 counts and drops the
// generator's frames: the generator's own rate into a veth, and the bed's
// receive limit.
type ceiling struct {
	c *Counter
	l link.Link
}

func (s *ceiling) Name() string { return NameCeiling }
func (s *ceiling) About() string {
	return "generator ceiling: an XDP program on the router's eth0 counts and drops the generator's frames"
}

func (s *ceiling) Start(e *Env) error {
	c, err := LoadCounter(e.Bed.TB.Router.MAC)
	if err != nil {
		return err
	}
	l, err := attachXDP(e.Bed.TB.Router, c.prog)
	if err != nil {
		c.Close()
		return err
	}
	s.c, s.l = c, l
	return nil
}

func (s *ceiling) BeforeBurst(*Env) error                 { return nil }
func (s *ceiling) Extra(*Env) (map[string]float64, error) { return nil, nil }

func (s *ceiling) Counted() (uint64, error) {
	p, _, err := s.c.Read()
	return p, err
}

func (s *ceiling) Stop(*Env) error {
	if s.l != nil {
		s.l.Close()
		s.c.Close()
		s.l, s.c = nil, nil
	}
	return nil
}

// routerProcess runs `anysched run` on the router's eth0 (AF_XDP, copy
// mode on veth), pinned with taskset and --cpus to the router CPU: mode
// "reflect" is the bare AF_XDP reflector (MACs swapped, no parsing),
// "forward" the router.
type routerProcess struct {
	mode    string
	cmd     *exec.Cmd
	exited  chan error
	logs    *lockedBuffer
	metrics string
}

func (s *routerProcess) Name() string {
	if s.mode == "reflect" {
		return NameReflector
	}
	return NameAnysched
}

func (s *routerProcess) About() string {
	if s.mode == "reflect" {
		return "bare AF_XDP reflector (`anysched run --mode reflect`): every frame back out with MACs swapped; the generator's source MAC is node1's, so it is counted there"
	}
	return "anysched (`anysched run`, AF_XDP copy mode): parse, schedule (Maglev + pins), rewrite MACs and TTL, transmit to the node"
}

// routerConfig is the router's configuration on the bed: the VIP, both
// nodes with their MACs (no neighbour resolution in the measurement), no
// probes, a pin table as large as the generator's flow count.
func routerConfig(e *Env) string {
	tb := e.Bed.TB
	n1, n2 := tb.Nodes[0], tb.Nodes[1]
	pins := 1024
	for pins < e.Flows && pins < 1<<22 {
		pins *= 2
	}
	return fmt.Sprintf(`vips:
  - address: %s
    port: 443
    tls: true
pools:
  - name: bench
    nodes:
      - name: node1
        address: %s
        mac: "%s"
      - name: node2
        address: %s
        mac: "%s"
table:
  size: 1009
  seed: "62656e63686d61726b2d73656564210a"
grace_period: 5s
pins:
  capacity: %d
  idle_timeout: 5m
`, tb.VIP4, n1.Addr4, net.HardwareAddr(n1.MAC[:]), n2.Addr4, net.HardwareAddr(n2.MAC[:]), pins)
}

func (s *routerProcess) Start(e *Env) error {
	cfg := filepath.Join(e.Dir, "router.yaml")
	if err := os.WriteFile(cfg, []byte(routerConfig(e)), 0o644); err != nil {
		return err
	}
	r := e.Bed.TB.Router
	s.metrics = netip.AddrPortFrom(r.Addr4, 9300).String()
	cpu := strconv.Itoa(e.Bed.RouterCPU)
	s.logs = &lockedBuffer{}
	s.cmd = exec.Command("ip", "netns", "exec", r.NS, "taskset", "-c", cpu, e.Anysched, "run",
		"--config", cfg, "--iface", r.Iface, "--mode", s.mode, "--cpus", cpu,
		"--xdp-mode", "native", "--metrics-addr", s.metrics, "--log-level", "warn")
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("bench: start %s: %w", e.Anysched, err)
	}
	s.exited = make(chan error, 1)
	go func() { s.exited <- s.cmd.Wait() }()
	err := testbed.WaitFor(time.Now().Add(30*time.Second), func() error {
		select {
		case err := <-s.exited:
			s.exited <- err
			return nil
		default:
		}
		_, err := s.get(e, "/ready")
		return err
	})
	select {
	case err := <-s.exited:
		s.cmd = nil
		return fmt.Errorf("bench: anysched run --mode %s exited: %v\n%s", s.mode, err, s.logs.String())
	default:
	}
	if err != nil {
		s.Stop(e)
		return fmt.Errorf("bench: anysched run --mode %s not ready: %w\n%s", s.mode, err, s.logs.String())
	}
	return nil
}

func (s *routerProcess) get(e *Env, path string) (string, error) {
	r := e.Bed.TB.Router
	// The transport dials on its own goroutines: dial in the namespace.
	c := http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return r.Dial(ctx, network, addr)
		}}}
	resp, err := c.Get("http://" + s.metrics + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return string(body), nil
}

func (s *routerProcess) BeforeBurst(*Env) error { return nil }

// Extra reads the router's packet counters from its metrics: received,
// transmitted, and every dropped_total series, summed and by reason.
func (s *routerProcess) Extra(e *Env) (map[string]float64, error) {
	text, err := s.get(e, "/metrics")
	if err != nil {
		return nil, err
	}
	return routerMetrics(text), nil
}

// routerMetrics picks the anysched_packets_* series out of a Prometheus
// text exposition: received, transmitted, dropped (total) and
// dropped:<reason>.
func routerMetrics(text string) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "anysched_packets_") {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		name, labels, _ := strings.Cut(series, "{")
		switch name {
		case "anysched_packets_received_total":
			out["router_received"] += v
		case "anysched_packets_transmitted_total":
			out["router_transmitted"] += v
		case "anysched_packets_dropped_total":
			out["router_dropped"] += v
			if _, r, ok := strings.Cut(labels, `reason="`); ok {
				if reason, _, ok := strings.Cut(r, `"`); ok {
					out["router_dropped:"+reason] += v
				}
			}
		}
	}
	return out
}

func (s *routerProcess) Stop(*Env) error {
	if s.cmd == nil {
		return nil
	}
	defer func() { s.cmd = nil }()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exited:
		if err != nil {
			return fmt.Errorf("bench: anysched run --mode %s: %v\n%s", s.mode, err, s.logs.String())
		}
		return nil
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
		return fmt.Errorf("bench: anysched run --mode %s did not stop within 20s of SIGTERM", s.mode)
	}
}

// staticNeighbours gives the router's kernel permanent entries for the
// nodes, so the kernel baselines, like anysched, resolve no MAC while
// measured.
func staticNeighbours(e *Env) error {
	r := e.Bed.TB.Router
	for _, n := range e.Bed.TB.Nodes {
		if out, err := r.Exec("ip", "neigh", "replace", n.Addr4.String(), "lladdr",
			net.HardwareAddr(n.MAC[:]).String(), "dev", r.Iface, "nud", "permanent"); err != nil {
			return fmt.Errorf("bench: static neighbour %s: %v: %s", n.Addr4, err, out)
		}
	}
	return nil
}

func forwarding(e *Env, on bool) error {
	v := "0"
	if on {
		v = "1"
	}
	return e.Bed.TB.Router.Sysctl("net.ipv4.ip_forward=" + v)
}

// linuxForward is the router's kernel forwarding with a static route for
// the VIP to node1.
type linuxForward struct{}

func (linuxForward) Name() string { return NameLinuxFwd }
func (linuxForward) About() string {
	return "Linux IP forwarding: a static route for the VIP via node1 (no netfilter rules)"
}

func (linuxForward) Start(e *Env) error {
	if err := staticNeighbours(e); err != nil {
		return err
	}
	if err := forwarding(e, true); err != nil {
		return err
	}
	r := e.Bed.TB.Router
	vip := netip.PrefixFrom(e.Bed.TB.VIP4, 32).String()
	if out, err := r.Exec("ip", "route", "replace", vip, "via", e.Bed.TB.Nodes[0].Addr4.String()); err != nil {
		return fmt.Errorf("bench: route %s: %v: %s", vip, err, out)
	}
	return nil
}

func (linuxForward) BeforeBurst(*Env) error                 { return nil }
func (linuxForward) Extra(*Env) (map[string]float64, error) { return nil, nil }

func (linuxForward) Stop(e *Env) error {
	r := e.Bed.TB.Router
	vip := netip.PrefixFrom(e.Bed.TB.VIP4, 32).String()
	out, err := r.Exec("ip", "route", "del", vip)
	if err != nil {
		return fmt.Errorf("bench: remove route %s: %v: %s", vip, err, out)
	}
	return forwarding(e, false)
}

// nftDNAT is the stateful load balancer the seed replaces: nftables DNAT
// of the VIP to a node chosen by a jhash of the client's address and port,
// with conntrack keeping every flow's translation.
//
// port, when not 0, is the nodes' port the DNAT points at (the connection
// scenario's); 0 keeps the VIP's port (the packet scenario's).
type nftDNAT struct{ port uint16 }

const nftTable = "anybench"

func (nftDNAT) Name() string { return NameNftDNAT }
func (nftDNAT) About() string {
	return "nftables DNAT with conntrack: `dnat to jhash ip saddr . tcp sport mod 2 map { node1, node2 }`, conntrack emptied before each burst"
}

func (s nftDNAT) ruleset(e *Env) string {
	tb := e.Bed.TB
	port := ""
	if s.port != 0 {
		port = fmt.Sprintf(" : %d", s.port)
	}
	return fmt.Sprintf(`table ip %s {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr %s tcp dport 443 dnat to jhash ip saddr . tcp sport mod 2 seed 0x5eed map { 0 : %s, 1 : %s }%s
	}
}
`, nftTable, tb.VIP4, tb.Nodes[0].Addr4, tb.Nodes[1].Addr4, port)
}

func (s nftDNAT) Start(e *Env) error {
	if err := staticNeighbours(e); err != nil {
		return err
	}
	if err := forwarding(e, true); err != nil {
		return err
	}
	path := filepath.Join(e.Dir, "dnat.nft")
	if err := os.WriteFile(path, []byte(s.ruleset(e)), 0o644); err != nil {
		return err
	}
	if out, err := e.Bed.TB.Router.Exec("nft", "-f", path); err != nil {
		return fmt.Errorf("bench: nft -f: %v: %s", err, out)
	}
	return nil
}

func (nftDNAT) BeforeBurst(e *Env) error {
	out, err := e.Bed.TB.Router.Exec("conntrack", "-F")
	if err != nil {
		return fmt.Errorf("bench: conntrack -F: %v: %s", err, out)
	}
	return nil
}

// Extra reads the conntrack entry count and conntrack's drop counters.
func (nftDNAT) Extra(e *Env) (map[string]float64, error) {
	out := map[string]float64{}
	count, err := e.Bed.TB.Router.Exec("cat", "/proc/sys/net/netfilter/nf_conntrack_count")
	if err != nil {
		return nil, fmt.Errorf("bench: conntrack count: %v: %s", err, count)
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(count), 64)
	if err != nil {
		return nil, fmt.Errorf("bench: conntrack count %q: %w", count, err)
	}
	out["conntrack_entries"] = n
	stats, err := e.Bed.TB.Router.Exec("conntrack", "-S")
	if err != nil {
		return nil, fmt.Errorf("bench: conntrack -S: %v: %s", err, stats)
	}
	for k, v := range conntrackStats(stats) {
		out["conntrack_"+k] = v
	}
	return out, nil
}

// conntrackStats sums `conntrack -S` fields (per CPU lines of key=value)
// that count trouble: drop, early_drop, insert_failed, invalid.
func conntrackStats(text string) map[string]float64 {
	out := map[string]float64{}
	for _, f := range strings.Fields(text) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		switch k {
		case "drop", "early_drop", "insert_failed", "invalid":
			if n, err := strconv.ParseFloat(v, 64); err == nil && !math.IsNaN(n) && !math.IsInf(n, 0) {
				out[k] += n
			}
		}
	}
	return out
}

func (nftDNAT) Stop(e *Env) error {
	r := e.Bed.TB.Router
	var errs []error
	if out, err := r.Exec("nft", "delete", "table", "ip", nftTable); err != nil {
		errs = append(errs, fmt.Errorf("bench: nft delete table: %v: %s", err, out))
	}
	if out, err := r.Exec("conntrack", "-F"); err != nil {
		errs = append(errs, fmt.Errorf("bench: conntrack -F: %v: %s", err, out))
	}
	errs = append(errs, forwarding(e, false))
	return errors.Join(errs...)
}

// Sample is one measured burst of one workload in one scenario.
type Sample struct {
	Rep      int    `json:"rep"`
	Scenario string `json:"scenario"`
	Workload string `json:"workload"`
	// Offered is what the generator sent; RouterRX what the router's eth0
	// received (the rest was dropped at the veth: its NAPI did not keep
	// up); Delivered what the nodes counted (or the ceiling's counter).
	Offered   uint64 `json:"offered"`
	RouterRX  uint64 `json:"router_rx"`
	Delivered uint64 `json:"delivered"`
	// PerNode is what each node counted (also for the ceiling, where it
	// should be nothing).
	PerNode []uint64 `json:"per_node"`
	Seconds float64  `json:"seconds"`
	// OfferedPPS and PPS (delivered) are per generator second.
	OfferedPPS float64            `json:"offered_pps"`
	PPS        float64            `json:"pps"`
	Extra      map[string]float64 `json:"extra,omitempty"`
	// Load1 is the 1-minute load average when the burst ended.
	Load1 float64 `json:"load1"`
}

// Loss is the share of offered frames that were not delivered.
func (s Sample) Loss() float64 {
	if s.Offered == 0 {
		return 0
	}
	return 1 - float64(min(s.Delivered, s.Offered))/float64(s.Offered)
}

// How Measure waits for frames in flight after a burst.
const (
	settleQuiet = 200 * time.Millisecond
	settleMax   = 3 * time.Second
)

// Measure sends w at the router for d and counts what arrived. The
// scenario must be started.
func Measure(ctx context.Context, e *Env, gen *Generator, sc Scenario, w Workload, d time.Duration) (Sample, error) {
	if err := sc.BeforeBurst(e); err != nil {
		return Sample{}, err
	}
	counted := func() (uint64, error) {
		if c, ok := sc.(counting); ok {
			return c.Counted()
		}
		p, _, err := e.Bed.Delivered()
		return p, err
	}
	before, err := sc.Extra(e)
	if err != nil {
		return Sample{}, err
	}
	d0, err := counted()
	if err != nil {
		return Sample{}, err
	}
	n0, err := e.Bed.PerNode()
	if err != nil {
		return Sample{}, err
	}
	rx0, _, err := e.Bed.TB.Router.LinkStats()
	if err != nil {
		return Sample{}, err
	}
	var burst Burst
	if err := testbed.DoIn(e.Bed.TB.Fabric, func() (err error) {
		burst, err = gen.Run(ctx, w, e.Bed.PortIndex, e.Bed.SenderCPU, d)
		return err
	}); err != nil {
		return Sample{}, err
	}
	// Frames in flight (rings, backlogs, a router thread waiting for a
	// CPU) arrive within moments: count until the count has not grown for
	// settleQuiet, for at most settleMax.
	var got uint64
	changed := time.Now()
	err = testbed.WaitFor(time.Now().Add(settleMax), func() error {
		n, err := counted()
		if err != nil {
			return err
		}
		if n != got {
			got, changed = n, time.Now()
		}
		if got > d0 && time.Since(changed) >= settleQuiet {
			return nil
		}
		return errors.New("still counting")
	})
	if got == d0 {
		return Sample{}, fmt.Errorf("bench: %s/%s: nothing arrived (%d offered)", sc.Name(), w.Name, burst.Sent)
	}
	_ = err // the count never settled within settleMax: take the last one
	rx1, _, err := e.Bed.TB.Router.LinkStats()
	if err != nil {
		return Sample{}, err
	}
	after, err := sc.Extra(e)
	if err != nil {
		return Sample{}, err
	}
	n1, err := e.Bed.PerNode()
	if err != nil {
		return Sample{}, err
	}
	perNode := make([]uint64, len(n1))
	var nodeSum uint64
	for i := range n1 {
		perNode[i] = n1[i] - n0[i]
		nodeSum += perNode[i]
	}
	if _, ok := sc.(counting); !ok {
		got = d0 + nodeSum // the latest count, consistent with PerNode
	}
	s := Sample{PerNode: perNode,
		Scenario: sc.Name(), Workload: w.Name,
		Offered: burst.Sent, RouterRX: rx1 - rx0, Delivered: got - d0,
		Seconds: burst.Elapsed.Seconds(), OfferedPPS: burst.PPS(),
	}
	s.PPS = float64(s.Delivered) / max(s.Seconds, 1e-9)
	s.Load1 = LoadAverage()[0]
	if len(after) > 0 {
		s.Extra = map[string]float64{}
		for k, v := range after {
			if strings.HasPrefix(k, "conntrack_entries") {
				s.Extra[k] = v // a level, not a counter
				continue
			}
			if d := v - before[k]; d != 0 || !strings.Contains(k, ":") {
				s.Extra[k] = d // reasons that did not occur are left out
			}
		}
	}
	return s, nil
}

// lockedBuffer collects a child's output from two pipes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 1<<20 {
		return len(p), nil // keep the first MiB
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
