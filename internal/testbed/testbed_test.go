package testbed

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

func TestBedConnectivity(t *testing.T) {
	b := New(t, Options{Nodes: 2})
	for _, h := range b.Hosts() {
		if h.Index == 0 || h.MAC == ([6]byte{}) {
			t.Fatalf("%s: link not read: %+v", h.Role, h)
		}
	}
	if err := b.Client.PingOK(b.Router.Addr4, 2*time.Second); err != nil {
		t.Fatalf("client -> router: %v", err)
	}
	if err := b.Client.PingOK(b.Nodes[1].Addr6, 2*time.Second); err != nil {
		t.Fatalf("client -> node2 v6: %v", err)
	}
	// A node serves on the VIP; the client reaches it through its unicast
	// address only when the VIP route is bypassed: here we only check that
	// the listener in the node's namespace is reachable on the unicast address.
	l, err := b.Nodes[0].Listen("tcp", netip.AddrPortFrom(b.Nodes[0].Addr4, 8080).String())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			io.WriteString(c, "hello")
			c.Close()
		}
	}()
	addr := netip.AddrPortFrom(b.Nodes[0].Addr4, 8080)
	if err := b.Client.WaitTCP(addr, time.Now().Add(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	// The VIP lives on the nodes' lo and nowhere else.
	out, err := b.Nodes[0].Exec("ip", "-br", "addr", "show", "dev", "lo")
	if err != nil || !strings.Contains(out, b.VIP4.String()) {
		t.Fatalf("node lo: %v %s", err, out)
	}
	out, _ = b.Router.Exec("ip", "-br", "addr")
	if strings.Contains(out, b.VIP4.String()) {
		t.Fatalf("router holds the VIP: %s", out)
	}
	// Without delay lines there is nothing to delay with.
	if err := b.Nodes[1].SetDelay(5 * time.Millisecond); !errors.Is(err, ErrNoDelayLine) {
		t.Fatalf("SetDelay without a delay line: %v, want ErrNoDelayLine", err)
	}
	rx, tx, err := b.Client.LinkStats()
	if err != nil || rx == 0 || tx == 0 {
		t.Fatalf("client link stats rx=%d tx=%d err=%v", rx, tx, err)
	}
	// Namespaces of two beds do not collide.
	b2 := New(t, Options{Nodes: 1})
	if b2.Client.NS == b.Client.NS {
		t.Fatal("namespace names repeat")
	}
	var _ net.Conn
}

func TestBuildRejectsBadOptions(t *testing.T) {
	if _, err := Build(Options{Nodes: -1}); err == nil {
		t.Error("negative node count accepted")
	}
	if _, err := Build(Options{VIP4: netip.MustParseAddr("fd00::1")}); err == nil {
		t.Error("IPv6 VIP4 accepted")
	}
}

func TestNodeDelay(t *testing.T) {
	const delay = 30 * time.Millisecond
	b := New(t, Options{Nodes: 2, NodeDelay: []time.Duration{0, delay}})
	for _, n := range b.Nodes {
		l, err := n.Listen("tcp", netip.AddrPortFrom(n.Addr4, 8080).String())
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		if err := b.Client.WaitTCP(netip.AddrPortFrom(n.Addr4, 8080), time.Now().Add(10*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	// A connect takes one round trip; the delayed node's cannot be shorter
	// than its delay (a lower bound only: a slow machine cannot fail it).
	connect := func(n *Host) time.Duration {
		start := time.Now()
		if err := b.Client.WaitTCP(netip.AddrPortFrom(n.Addr4, 8080), time.Now().Add(10*time.Second)); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}
	if d := connect(b.Nodes[1]); d < delay {
		t.Errorf("connect to the delayed node took %v, less than its %v delay", d, delay)
	}
	if err := b.Nodes[1].SetDelay(0); err != nil {
		t.Fatal(err)
	}
	if err := b.Nodes[0].SetDelay(delay); err != nil {
		t.Fatal(err)
	}
	if d := connect(b.Nodes[0]); d < delay {
		t.Errorf("after SetDelay, connect to node1 took %v, less than %v", d, delay)
	}
	// ARP, ping and IPv6 still cross the delay line.
	if err := b.Client.PingOK(b.Nodes[0].Addr6, 2*time.Second); err != nil {
		t.Fatalf("ping6 through the delay line: %v", err)
	}
}

func TestRouteVIPVia(t *testing.T) {
	b := New(t, Options{Nodes: 2})
	if err := b.RouteVIPVia(b.Nodes[1]); err != nil {
		t.Fatal(err)
	}
	l, err := b.Nodes[1].Listen("tcp", netip.AddrPortFrom(b.VIP4, 8080).String())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "node2")
			c.Close()
		}
	}()
	vip := netip.AddrPortFrom(b.VIP4, 8080)
	if err := b.Client.WaitTCP(vip, time.Now().Add(10*time.Second)); err != nil {
		t.Fatalf("client -> VIP through the router's kernel: %v", err)
	}
	// TTL 1 to the VIP: the router answers with time exceeded.
	for _, vip := range []netip.Addr{b.VIP4, b.VIP6} {
		r, err := b.Client.Ping(vip, 1, 2*time.Second)
		if err != nil || !r.TimeExceeded || r.From != b.Router.Addr4 && r.From != b.Router.Addr6 {
			t.Errorf("TTL 1 to %s: %+v %v, want time exceeded from the router", vip, r, err)
		}
		// Without the TTL limit the node behind the router answers.
		if r, err := b.Client.Ping(vip, 0, 2*time.Second); err != nil || r.TimeExceeded || r.From != vip {
			t.Errorf("ping %s: %+v %v, want the VIP's echo reply", vip, r, err)
		}
	}
}

// TestNodesDoNotClaimTheVIP: with the VIP made on-link at the client, ARP
// and ND for it go unanswered, because the nodes hold it on lo only.
func TestNodesDoNotClaimTheVIP(t *testing.T) {
	b := New(t, Options{Nodes: 2})
	for _, c := range [][]string{
		{"ip", "route", "replace", b.VIP4.String() + "/32", "dev", b.Client.Iface},
		{"ip", "-6", "route", "replace", b.VIP6.String() + "/128", "dev", b.Client.Iface},
	} {
		if out, err := b.Client.Exec(c...); err != nil {
			t.Fatalf("%v: %v %s", c, err, out)
		}
	}
	if r, err := b.Client.Ping(b.VIP4, 0, time.Second); !errors.Is(err, ErrNoReply) {
		t.Errorf("a node answered ARP for the VIP: %+v %v", r, err)
	}
	if r, err := b.Client.Ping(b.VIP6, 0, time.Second); !errors.Is(err, ErrNoReply) {
		t.Errorf("a node answered ND for the VIP: %+v %v", r, err)
	}
	// The client's command runs in its namespace.
	out, err := b.Client.Command("ip", "-br", "addr", "show", "dev", b.Client.Iface).CombinedOutput()
	if err != nil || !strings.Contains(string(out), b.Client.Addr4.String()) {
		t.Errorf("Command: %v %s", err, out)
	}
}

// TestOpenAndDown: a bed built under a chosen prefix is found again by
// another Bed value (as `testbed status` in a later process does), and
// Down removes all of it, twice without complaint.
func TestOpenAndDown(t *testing.T) {
	RequireRoot(t)
	prefix := fmt.Sprintf("asbo%d", os.Getpid())
	t.Cleanup(func() { Down(prefix) })
	built, err := Build(Options{Nodes: 3, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Build(Options{Prefix: prefix}); err == nil {
		t.Fatal("a second bed under the same prefix was built")
	}
	b, err := Open(prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Nodes) != 3 || b.VIP4 != built.VIP4 || b.VIP6 != built.VIP6 {
		t.Fatalf("opened %d nodes, VIPs %s %s", len(b.Nodes), b.VIP4, b.VIP6)
	}
	for i, h := range b.Hosts() {
		w := built.Hosts()[i]
		if h.NS != w.NS || h.Port != w.Port || h.Addr4 != w.Addr4 || h.Addr6 != w.Addr6 || h.MAC != w.MAC || h.Index != w.Index {
			t.Errorf("opened %+v, built %+v", h, w)
		}
	}
	// A process left inside the bed does not keep a namespace alive.
	sleeper := b.Nodes[0].Command("sleep", "1000")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	if err := Down(prefix); err != nil {
		t.Fatal(err)
	}
	if err := sleeper.Wait(); err == nil {
		t.Error("the process inside the bed was not stopped")
	}
	if names, err := bedNamespaces(prefix); err != nil || len(names) != 0 {
		t.Fatalf("after Down: %v %v", names, err)
	}
	if err := Down(prefix); err != nil {
		t.Fatalf("second Down: %v", err)
	}
	if _, err := Open(prefix); err == nil {
		t.Fatal("Open found a bed after Down")
	}
	for _, bad := range []string{"-x", "a/b", strings.Repeat("x", 41)} {
		if _, err := Build(Options{Prefix: bad}); err == nil {
			t.Errorf("prefix %q accepted", bad)
		}
	}
}

func TestStoreClientAddrsAndPools(t *testing.T) {
	b := New(t, Options{Nodes: 3, Store: true, ClientAddrs: 2, DelayLine: true})
	if b.Store == nil || b.Store.Addr4 != netip.MustParseAddr("10.99.0.3") {
		t.Fatalf("store host: %+v", b.Store)
	}
	if len(b.Client.Extra4) != 2 || b.Client.Extra4[1] != netip.MustParseAddr("10.99.0.202") ||
		len(b.Client.Extra6) != 2 || b.Client.Extra6[0] != netip.MustParseAddr("fd00:99::c9") {
		t.Fatalf("client extra addresses: %v %v", b.Client.Extra4, b.Client.Extra6)
	}
	// A node reaches the store on its unicast address, and an extra client
	// address answers from the fabric.
	l, err := b.Store.Listen("tcp", netip.AddrPortFrom(b.Store.Addr4, 6379).String())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if err := b.Nodes[2].WaitTCP(netip.AddrPortFrom(b.Store.Addr4, 6379), time.Now().Add(10*time.Second)); err != nil {
		t.Fatalf("node3 -> store: %v", err)
	}
	for _, a := range []netip.Addr{b.Client.Extra4[1], b.Client.Extra6[0]} {
		if err := b.Nodes[0].PingOK(a, 2*time.Second); err != nil {
			t.Fatalf("node1 -> client %v: %v", a, err)
		}
	}
	pools, err := b.Pools(2)
	if err != nil || len(pools) != 2 || len(pools[0]) != 2 || len(pools[1]) != 1 || pools[1][0] != b.Nodes[2] {
		t.Fatalf("Pools(2) of 3 nodes: %v, %v", pools, err)
	}
	if _, err := b.Pools(4); err == nil {
		t.Error("4 pools of 3 nodes accepted")
	}
	if err := SetDelays(pools[0], 3*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := SetDelays([]*Host{b.Client}, time.Millisecond); !errors.Is(err, ErrNoDelayLine) {
		t.Errorf("SetDelays on the client: %v, want ErrNoDelayLine", err)
	}
	// Open finds the store again, and the nodes in order.
	o, err := Open(b.Prefix)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if o.Store == nil || o.Store.Addr4 != b.Store.Addr4 || len(o.Nodes) != 3 || o.Nodes[2].NS != b.Nodes[2].NS {
		t.Fatalf("Open: store %+v, nodes %d", o.Store, len(o.Nodes))
	}
	if _, err := Build(Options{ClientAddrs: MaxClientAddrs + 1}); err == nil {
		t.Error("too many client addresses accepted")
	}
}
