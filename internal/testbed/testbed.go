// Package testbed builds, for root integration tests, the veth test bed
// (a client, a router on a stick and pools of nodes on one L2 fabric) out
// of network namespaces, and tears it down afterwards.
//
//	                      fabric namespace: bridge br0
//	    +-------------------+-------------------+-------------------+
//	    | pc                | pr                | pn1 ... pnN       (veth peers)
//	+---+-----+        +----+-----+        +----+-----+
//	| client  |        | router   |        | node i   |  lo: VIP/32, VIP6/128
//	| eth0 .1 |        | eth0 .2  |        | eth0 .10+i  arp_ignore=1
//	+---------+        +----------+        +----------+  arp_announce=2
//	route VIP via .2   ("router on a stick": frames for the VIP come in on
//	                   eth0 and go back out of eth0 with the node's MAC)
//
// Addresses: 10.99.0.0/24 and fd00:99::/64 on the fabric; the VIP is
// 10.200.0.1 and fd00:200::1 unless Options say otherwise. Nodes answer the
// client directly (direct server return): the VIP is on their lo, so they
// never answer ARP or ND for it on eth0. The router does not hold the VIP;
// the client's route to the VIP points at the router's address. rp_filter
// is off everywhere, DAD is off, and TX checksum offload is off on every
// veth: a frame that an XDP program redirects to AF_XDP keeps whatever
// checksum the sender left in it, and a veth sender leaves a partial one.
//
// Every namespace name is unique (prefix, PID, counter), so beds of
// parallel tests and test binaries do not collide; New removes everything
// in t.Cleanup. scripts/testbed.sh builds the same bed for humans.
//
// What a test gets: Host.Do runs Go code on a thread inside a namespace
// (sockets it opens stay there: Listen, Dial, afxdp.Open), Exec and Command
// run programs there, WaitTCP and WaitFor poll with a deadline, LinkStats
// reads packet counters, SetDelay delays a node's egress, RouteVIPVia turns
// the router into a plain Linux forwarder (the baseline, and what answers
// expiring TTLs), Pktgen sends TCP frames at rate from an AF_XDP socket,
// TCPFrame and PacketSocket make and catch single frames. Options.Store
// adds a host on the fabric for services every node uses (the e2e tests'
// shared Redis), Options.ClientAddrs more client addresses (Host.Extra4,
// Extra6), and Bed.Pools and SetDelays treat consecutive nodes as pools.
//
// Per-node delay: the kernels this runs on may lack sch_netem (the CI's
// does), so a delayed node's veth peer is taken off the bridge and a
// userspace delay line (two AF_PACKET sockets in the fabric namespace)
// holds the node's egress frames for the delay; see Options.DelayLine.
//
// Reachability probes are Go's own (Host.Ping: ICMP on a raw socket;
// WaitTCP) and offloads are set with the ethtool ioctl, so the bed needs
// root and ip (iproute2) only. cmd/testbed builds the same bed for humans
// (scripts/testbed.sh); Open finds a bed by its prefix again.
package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Options shape a bed. Zero values take the defaults.
type Options struct {
	// Nodes is the number of service nodes (default 2).
	Nodes int
	// VIP4 and VIP6 are the anycast addresses on the nodes' lo.
	VIP4, VIP6 netip.Addr
	// NodeDelay delays node i's (0-based) egress with a delay line (setting
	// it implies DelayLine). SetDelay changes it later.
	NodeDelay []time.Duration
	// RouterQueues is the number of RX/TX queues of the router's veth
	// (default 1).
	RouterQueues int
	// KeepOffloads leaves TX checksum offload on (see the package doc).
	KeepOffloads bool
	// DelayLine puts a userspace delay line between every node and the
	// bridge, so SetDelay works (on kernels without netem too). It costs
	// two system calls per frame to and from the node. The delay lines
	// run in this process: they stop when it exits.
	DelayLine bool
	// Prefix names the bed's namespaces (<Prefix>-fabric, -client, ...);
	// empty: a unique one (PID and counter), as tests want.
	Prefix string
	// Store adds a "store" host on the fabric (<Prefix>-store, .3 and
	// ::3): a place for a service every node reaches on its unicast
	// address, such as the pool's shared Redis replay store. Its traffic
	// does not pass the router.
	Store bool
	// ClientAddrs adds that many extra addresses to the client's eth0
	// (Host.Extra4 and Extra6: .201, .202, ... and ::c9, ::ca, ...), so
	// tests can open flows from several client addresses. At most
	// MaxClientAddrs.
	ClientAddrs int
}

// MaxClientAddrs bounds Options.ClientAddrs (the addresses .201...254).
const MaxClientAddrs = 54

// Host is one namespace of the bed with its fabric interface.
type Host struct {
	Role  string // "client", "router", "node1", ...
	NS    string // network namespace name (ip netns)
	Iface string // its interface into the fabric ("eth0")
	Port  string // the veth peer on the bridge, in the fabric namespace
	Addr4 netip.Addr
	Addr6 netip.Addr
	// Extra4 and Extra6 are further addresses on Iface (the client's,
	// with Options.ClientAddrs); empty otherwise.
	Extra4, Extra6 []netip.Addr
	MAC            [6]byte
	// Index is the interface index of Iface inside NS.
	Index int

	delay *delayLine // nil: SetDelay uses netem
}

// Bed is a built test bed.
type Bed struct {
	Prefix string
	Fabric string // the bridge's namespace
	Client *Host
	Router *Host
	Nodes  []*Host
	// Store is the store host (Options.Store); nil without it.
	Store *Host
	VIP4  netip.Addr
	VIP6  netip.Addr

	namespaces []string
	delayLines []*delayLine
}

// Fabric addressing.
var (
	Subnet4 = netip.MustParsePrefix("10.99.0.0/24")
	Subnet6 = netip.MustParsePrefix("fd00:99::/64")
	// DefaultVIP4 and DefaultVIP6 are the VIPs when Options leave them out.
	DefaultVIP4 = netip.MustParseAddr("10.200.0.1")
	DefaultVIP6 = netip.MustParseAddr("fd00:200::1")
)

var bedCounter atomic.Uint64

// RequireRoot skips the test unless it runs as root with ip(8) available.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip(8) from iproute2")
	}
}

// New builds a bed and removes it when the test ends. It skips the test
// when not root.
func New(t testing.TB, opts Options) *Bed {
	t.Helper()
	RequireRoot(t)
	b, err := Build(opts)
	if b != nil {
		t.Cleanup(func() {
			if err := b.Close(); err != nil {
				t.Errorf("testbed cleanup: %v", err)
			}
		})
	}
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	return b
}

// Build creates a bed. On error, what was built is still returned so the
// caller can Close it (New does).
func Build(opts Options) (*Bed, error) {
	if opts.Nodes == 0 {
		opts.Nodes = 2
	}
	if opts.Nodes < 0 || opts.Nodes > 200 {
		return nil, fmt.Errorf("testbed: Nodes = %d: want 1..200", opts.Nodes)
	}
	if !opts.VIP4.IsValid() {
		opts.VIP4 = DefaultVIP4
	}
	if !opts.VIP6.IsValid() {
		opts.VIP6 = DefaultVIP6
	}
	if !opts.VIP4.Is4() || !opts.VIP6.Is6() || opts.VIP6.Is4In6() {
		return nil, errors.New("testbed: VIP4 must be IPv4 and VIP6 IPv6")
	}
	if opts.RouterQueues == 0 {
		opts.RouterQueues = 1
	}
	if opts.ClientAddrs < 0 || opts.ClientAddrs > MaxClientAddrs {
		return nil, fmt.Errorf("testbed: ClientAddrs = %d: want 0..%d", opts.ClientAddrs, MaxClientAddrs)
	}
	prefix := opts.Prefix
	if prefix == "" {
		prefix = fmt.Sprintf("asb%d-%d", os.Getpid(), bedCounter.Add(1))
	} else if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	b := &Bed{Prefix: prefix, Fabric: prefix + "-fabric", VIP4: opts.VIP4, VIP6: opts.VIP6}
	host := func(role string, port string, last byte) *Host {
		a4 := Subnet4.Addr().As4()
		a4[3] = last
		a6 := Subnet6.Addr().As16()
		a6[15] = last
		return &Host{Role: role, NS: prefix + "-" + role, Iface: "eth0", Port: port,
			Addr4: netip.AddrFrom4(a4), Addr6: netip.AddrFrom16(a6)}
	}
	b.Client = host("client", "pc", 1)
	b.Router = host("router", "pr", 2)
	if opts.Store {
		b.Store = host("store", "ps", 3)
	}
	for i := 0; i < opts.ClientAddrs; i++ {
		b.Client.Extra4 = append(b.Client.Extra4, host("", "", byte(201+i)).Addr4)
		b.Client.Extra6 = append(b.Client.Extra6, host("", "", byte(201+i)).Addr6)
	}
	for i := 0; i < opts.Nodes; i++ {
		b.Nodes = append(b.Nodes, host(fmt.Sprintf("node%d", i+1), fmt.Sprintf("pn%d", i+1), byte(10+i+1)))
	}
	if len(opts.NodeDelay) > 0 {
		opts.DelayLine = true
	}
	if err := b.build(opts); err != nil {
		return b, err
	}
	return b, nil
}

// Hosts lists client, router, the store (when there is one) and nodes.
func (b *Bed) Hosts() []*Host {
	hs := []*Host{b.Client, b.Router}
	if b.Store != nil {
		hs = append(hs, b.Store)
	}
	return append(hs, b.Nodes...)
}

func (b *Bed) addNS(name string) error {
	if _, err := run("ip", "netns", "add", name); err != nil {
		return err
	}
	b.namespaces = append(b.namespaces, name)
	// Before any interface exists, so new interfaces inherit it.
	return sysctl(name, "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0",
		"net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
}

func (b *Bed) build(opts Options) error {
	if err := b.addNS(b.Fabric); err != nil {
		return err
	}
	if _, err := run("ip", "-n", b.Fabric, "link", "add", "br0", "type", "bridge",
		"stp_state", "0", "forward_delay", "0", "mcast_snooping", "0"); err != nil {
		return err
	}
	if _, err := run("ip", "-n", b.Fabric, "link", "set", "br0", "up"); err != nil {
		return err
	}
	for _, h := range b.Hosts() {
		if err := b.addNS(h.NS); err != nil {
			return err
		}
		args := []string{"-n", b.Fabric, "link", "add", h.Port}
		if h == b.Router && opts.RouterQueues > 1 {
			q := fmt.Sprint(opts.RouterQueues)
			args = append(args, "numtxqueues", q, "numrxqueues", q, "type", "veth", "peer", "name", h.Iface,
				"netns", h.NS, "numtxqueues", q, "numrxqueues", q)
		} else {
			args = append(args, "type", "veth", "peer", "name", h.Iface, "netns", h.NS)
		}
		if _, err := run("ip", args...); err != nil {
			return err
		}
		if opts.DelayLine && strings.HasPrefix(h.Role, "node") {
			// node eth0 — pnI ⇄ delay line ⇄ rnI — qnI — br0
			line, bridged := "r"+h.Port[1:], "q"+h.Port[1:]
			cmds := [][]string{
				{"-n", b.Fabric, "link", "add", bridged, "type", "veth", "peer", "name", line},
				{"-n", b.Fabric, "link", "set", bridged, "master", "br0", "up"},
				{"-n", b.Fabric, "link", "set", line, "up"},
				{"-n", b.Fabric, "link", "set", h.Port, "up"},
			}
			for _, c := range cmds {
				if _, err := run("ip", c...); err != nil {
					return err
				}
			}
			for _, l := range []string{line, h.Port} {
				if err := sysctl(b.Fabric, "net.ipv6.conf."+l+".disable_ipv6=1"); err != nil {
					return err
				}
				if !opts.KeepOffloads {
					if err := b.setTxChecksum(b.Fabric, l, false); err != nil {
						return err
					}
				}
			}
			if !opts.KeepOffloads {
				if err := b.setTxChecksum(b.Fabric, bridged, false); err != nil {
					return err
				}
			}
			d, err := startDelayLine(b.Fabric, h.Port, line)
			if err != nil {
				return err
			}
			h.delay = d
			b.delayLines = append(b.delayLines, d)
		}
		cmds := [][]string{
			{"-n", b.Fabric, "link", "set", h.Port, "master", "br0", "up"},
			{"-n", h.NS, "link", "set", "lo", "up"},
			{"-n", h.NS, "link", "set", h.Iface, "up"},
			{"-n", h.NS, "addr", "add", netip.PrefixFrom(h.Addr4, Subnet4.Bits()).String(), "dev", h.Iface},
			{"-n", h.NS, "addr", "add", netip.PrefixFrom(h.Addr6, Subnet6.Bits()).String(), "dev", h.Iface, "nodad"},
		}
		for i := range h.Extra4 {
			cmds = append(cmds,
				[]string{"-n", h.NS, "addr", "add", netip.PrefixFrom(h.Extra4[i], Subnet4.Bits()).String(), "dev", h.Iface},
				[]string{"-n", h.NS, "addr", "add", netip.PrefixFrom(h.Extra6[i], Subnet6.Bits()).String(), "dev", h.Iface, "nodad"})
		}
		if h.delay != nil {
			cmds = cmds[1:] // its port is on the delay line, not the bridge
		}
		for _, c := range cmds {
			if _, err := run("ip", c...); err != nil {
				return err
			}
		}
		if err := sysctl(h.NS, "net.ipv4.conf."+h.Iface+".rp_filter=0"); err != nil {
			return err
		}
		if !opts.KeepOffloads {
			if err := b.setTxChecksum(b.Fabric, h.Port, false); err != nil {
				return err
			}
			if err := b.setTxChecksum(h.NS, h.Iface, false); err != nil {
				return err
			}
		}
		if err := h.readLink(); err != nil {
			return err
		}
	}
	for i, n := range b.Nodes {
		cmds := [][]string{
			{"-n", n.NS, "addr", "add", netip.PrefixFrom(b.VIP4, 32).String(), "dev", "lo"},
			{"-n", n.NS, "addr", "add", netip.PrefixFrom(b.VIP6, 128).String(), "dev", "lo", "nodad"},
		}
		for _, c := range cmds {
			if _, err := run("ip", c...); err != nil {
				return err
			}
		}
		if err := sysctl(n.NS, "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2",
			"net.ipv4.conf."+n.Iface+".arp_ignore=1", "net.ipv4.conf."+n.Iface+".arp_announce=2"); err != nil {
			return err
		}
		if i < len(opts.NodeDelay) && opts.NodeDelay[i] > 0 {
			if err := n.SetDelay(opts.NodeDelay[i]); err != nil {
				return err
			}
		}
	}
	// A router that forwards out of the interface a frame came in on sends
	// ICMP redirects ("go straight to the node"); the client must not
	// follow them, or it would bypass the router.
	if err := sysctl(b.Client.NS, "net.ipv4.conf.all.accept_redirects=0", "net.ipv4.conf."+b.Client.Iface+".accept_redirects=0",
		"net.ipv6.conf.all.accept_redirects=0", "net.ipv6.conf."+b.Client.Iface+".accept_redirects=0"); err != nil {
		return err
	}
	if err := sysctl(b.Router.NS, "net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf."+b.Router.Iface+".send_redirects=0"); err != nil {
		return err
	}
	cmds := [][]string{
		{"-n", b.Client.NS, "route", "add", netip.PrefixFrom(b.VIP4, 32).String(), "via", b.Router.Addr4.String()},
		{"-n", b.Client.NS, "-6", "route", "add", netip.PrefixFrom(b.VIP6, 128).String(), "via", b.Router.Addr6.String()},
	}
	for _, c := range cmds {
		if _, err := run("ip", c...); err != nil {
			return err
		}
	}
	return nil
}

// RouteVIPVia makes the router's kernel forward VIP traffic to node n
// (IPv4 and IPv6 forwarding on, VIP routes via n's unicast addresses): the
// "Linux IP forwarding" baseline, and what lets the router's kernel answer
// frames whose TTL expires with ICMP time exceeded. Frames an XDP program
// redirects to AF_XDP never reach this path.
func (b *Bed) RouteVIPVia(n *Host) error {
	if err := sysctl(b.Router.NS, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"); err != nil {
		return err
	}
	cmds := [][]string{
		{"-n", b.Router.NS, "route", "replace", netip.PrefixFrom(b.VIP4, 32).String(), "via", n.Addr4.String()},
		{"-n", b.Router.NS, "-6", "route", "replace", netip.PrefixFrom(b.VIP6, 128).String(), "via", n.Addr6.String()},
	}
	for _, c := range cmds {
		if _, err := run("ip", c...); err != nil {
			return err
		}
	}
	return nil
}

// readLink records the interface's index and MAC.
func (h *Host) readLink() error {
	return h.Do(func() error {
		ifi, err := net.InterfaceByName(h.Iface)
		if err != nil {
			return err
		}
		h.Index = ifi.Index
		copy(h.MAC[:], ifi.HardwareAddr)
		return nil
	})
}

// Close deletes every namespace of the bed (and with them the links).
func (b *Bed) Close() error {
	for _, d := range b.delayLines {
		d.close()
	}
	b.delayLines = nil
	var errs []error
	for i := len(b.namespaces) - 1; i >= 0; i-- {
		if _, err := run("ip", "netns", "del", b.namespaces[i]); err != nil {
			errs = append(errs, err)
		}
	}
	b.namespaces = nil
	return errors.Join(errs...)
}

// Exec runs a command inside the host's namespace and returns its
// combined output.
func (h *Host) Exec(args ...string) (string, error) {
	return Exec(h.NS, args...)
}

// Command prepares a command to run inside the host's namespace (a daemon
// the test starts and stops itself, e.g. `anysched run` on the router).
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
}

// Exec runs a command inside namespace ns and returns its combined output.
func Exec(ns string, args ...string) (string, error) {
	return run("ip", append([]string{"netns", "exec", ns}, args...)...)
}

// Do runs fn on an OS thread that has entered the host's network
// namespace; sockets fn creates stay in that namespace for their life.
// Goroutines that fn starts run in the caller's namespace.
func (h *Host) Do(fn func() error) error {
	return DoIn(h.NS, fn)
}

// DoIn runs fn on an OS thread inside namespace ns.
func DoIn(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		target, err := netns.GetFromName(ns)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("testbed: namespace %s: %w", ns, err)
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("testbed: enter %s: %w", ns, err)
			return
		}
		var fnErr error
		func() {
			defer func() {
				if p := recover(); p != nil {
					fnErr = fmt.Errorf("testbed: panic in namespace %s: %v", ns, p)
				}
			}()
			fnErr = fn()
		}()
		// A thread that cannot go back stays locked and dies with the goroutine.
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- fnErr
	}()
	return <-errc
}

// Listen opens a listener inside the host's namespace.
func (h *Host) Listen(network, address string) (net.Listener, error) {
	var l net.Listener
	err := h.Do(func() (err error) {
		l, err = net.Listen(network, address)
		return err
	})
	return l, err
}

// Dial connects from inside the host's namespace.
func (h *Host) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	var c net.Conn
	err := h.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// WaitTCP polls, from inside the host's namespace, until a TCP connection
// to addr is accepted or the deadline passes.
func (h *Host) WaitTCP(addr netip.AddrPort, deadline time.Time) error {
	return poll(deadline, func() error {
		ctx, cancel := context.WithDeadline(context.Background(), minTime(deadline, time.Now().Add(time.Second)))
		defer cancel()
		c, err := h.Dial(ctx, "tcp", addr.String())
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// WaitFor polls cond until it returns nil or the deadline passes; the
// error is cond's last one.
func WaitFor(deadline time.Time, cond func() error) error { return poll(deadline, cond) }

func poll(deadline time.Time, cond func() error) error {
	delay := 5 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testbed: deadline passed: %w", err)
		}
		time.Sleep(delay) // polling interval, not a readiness guess
		delay = min(2*delay, 100*time.Millisecond)
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// SetDelay delays the host's egress by d (0 removes the delay) with its
// delay line.
func (h *Host) SetDelay(d time.Duration) error {
	if h.delay == nil {
		return fmt.Errorf("%w: %s", ErrNoDelayLine, h.Role)
	}
	h.delay.set(max(d, 0))
	return nil
}

// ErrNoDelayLine is SetDelay's error on a host without a delay line (a
// bed built without Options.DelayLine or NodeDelay, or found by Open).
var ErrNoDelayLine = errors.New("testbed: no delay line (build the bed with Options.DelayLine)")

// Sysctl sets net.* sysctls inside the host's namespace ("key=value").
func (h *Host) Sysctl(kv ...string) error { return sysctl(h.NS, kv...) }

// LinkStats reads the interface's packet counters inside the host's
// namespace.
func (h *Host) LinkStats() (rxPackets, txPackets uint64, err error) {
	err = h.Do(func() error {
		// /proc/net follows the main thread; thread-self follows this one.
		rx, e := os.ReadFile("/proc/thread-self/net/dev")
		if e != nil {
			return e
		}
		for _, line := range strings.Split(string(rx), "\n") {
			name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
			if !ok || name != h.Iface {
				continue
			}
			f := strings.Fields(rest)
			if len(f) < 10 {
				return fmt.Errorf("testbed: net/dev line %q", line)
			}
			_, e1 := fmt.Sscan(f[1], &rxPackets)
			_, e2 := fmt.Sscan(f[9], &txPackets)
			return errors.Join(e1, e2)
		}
		return fmt.Errorf("testbed: %s not in /proc/thread-self/net/dev", h.Iface)
	})
	return rxPackets, txPackets, err
}

func sysctl(ns string, kv ...string) error {
	for _, s := range kv {
		k, v, ok := strings.Cut(s, "=")
		if !ok || strings.Contains(k, "/") || strings.Contains(k, "..") {
			return fmt.Errorf("testbed: sysctl %q", s)
		}
		path := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
		if err := DoIn(ns, func() error { return os.WriteFile(path, []byte(v), 0) }); err != nil {
			return fmt.Errorf("testbed: sysctl %s in %s: %w", s, ns, err)
		}
	}
	return nil
}

// Offload commands of the legacy ethtool ioctl that the bed and the
// benchmarks set (linux/ethtool.h).
const (
	EthtoolSetTxChecksum uint32 = 0x17 // ETHTOOL_STXCSUM
	EthtoolSetGRO        uint32 = 0x2c // ETHTOOL_SGRO
)

// SetOffload turns one offload (an Ethtool* command) on or off for
// ifname inside namespace ns with the SIOCETHTOOL ioctl, so nothing here
// needs the ethtool binary.
func SetOffload(ns, ifname string, cmd uint32, on bool) error {
	return DoIn(ns, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		val := struct{ cmd, data uint32 }{cmd: cmd}
		if on {
			val.data = 1
		}
		var ifr struct {
			name [unix.IFNAMSIZ]byte
			data unsafe.Pointer
			_    [16]byte
		}
		copy(ifr.name[:], ifname)
		ifr.data = unsafe.Pointer(&val)
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
		runtime.KeepAlive(&val)
		if errno != 0 {
			return fmt.Errorf("testbed: ethtool command %#x %s on %s: %w", cmd, map[bool]string{true: "on", false: "off"}[on], ifname, errno)
		}
		return nil
	})
}

// setTxChecksum turns TX checksum offload on or off: frames sent with it
// on reach AF_XDP with partial checksums, which the nodes would drop.
func (b *Bed) setTxChecksum(ns, ifname string, on bool) error {
	return SetOffload(ns, ifname, EthtoolSetTxChecksum, on)
}

func run(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}
