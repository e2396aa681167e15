package migration

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anysched/anysched/tls13"
)

// The seed's five steps over real sockets: (1) ClientHello with
// migration_support to the VIP, (2) full handshake, (3) NewSessionTicket
// with a token, (4) resumption with the token at the unicast listener,
// (5) the application's session continues there; the VIP conn closes.
func TestSeedFiveStepsRendezvous(t *testing.T) {
	cp := DefaultCodePoints()
	var mu sync.Mutex
	var hellos []tls13.ClientHelloInfo
	var local []string
	node := startNode(t, nodeOpts{onHello: func(info *tls13.ClientHelloInfo) {
		mu.Lock()
		hellos = append(hellos, *info)
		local = append(local, info.Conn.LocalAddr().String())
		mu.Unlock()
	}})
	d := newDialer(t, PolicyRendezvous)
	var ticketsWithToken int
	d.TLS.OnNewSessionTicket = func(_ *tls13.Conn, s *tls13.ClientSession) {
		for _, e := range s.Extensions {
			if e.Type == cp.Token {
				mu.Lock()
				ticketsWithToken++
				mu.Unlock()
			}
		}
	}
	c := dial(t, d, node.vipAddr())

	info := c.Info()
	if !info.Migrated || !info.Resumed || info.Fallback != "" || info.Moves != 1 {
		t.Fatalf("Info %+v, want migrated and resumed without fallback", info)
	}
	if info.Remote != node.uniAddr() || info.Anycast != node.vipAddr() {
		t.Fatalf("Info remote %s anycast %s, want %s and %s", info.Remote, info.Anycast, node.uniAddr(), node.vipAddr())
	}
	if !c.ConnectionState().DidResume {
		t.Fatal("the unicast connection did not resume")
	}
	mu.Lock()
	if ticketsWithToken == 0 {
		t.Error("no NewSessionTicket carried a migration_token")
	}
	if len(hellos) != 2 {
		t.Fatalf("server saw %d ClientHellos, want 2", len(hellos))
	}
	if !hasExt(hellos[0].Extensions, cp.Support) || hasExt(hellos[0].Extensions, cp.Token) || local[0] != node.vipAddr() {
		t.Errorf("first hello at %s: support %v token %v", local[0], hasExt(hellos[0].Extensions, cp.Support), hasExt(hellos[0].Extensions, cp.Token))
	}
	if !hasExt(hellos[1].Extensions, cp.Support) || !hasExt(hellos[1].Extensions, cp.Token) || hellos[1].Resumption == nil || local[1] != node.uniAddr() {
		t.Errorf("resuming hello at %s lacks the token or the ticket", local[1])
	}
	mu.Unlock()

	body := httpGet(t, c, bufio.NewReader(c))
	if body != "node unicast resumed=true" {
		t.Fatalf("application request answered %q, want it on the resumed unicast conn", body)
	}
	node.waitClosed(t, KindAnycast)
	st := node.srv.Stats()
	if st.TokensAccepted != 1 || st.TokensIssued < 2 || st.HandshakesFull != 1 || st.HandshakesResumed != 1 {
		t.Errorf("stats %+v", st)
	}
	if st.Active[KindAnycast] != 0 || st.Active[KindUnicast] != 1 || st.ActiveCapable != 1 {
		t.Errorf("active %v capable %d, want only the unicast conn", st.Active, st.ActiveCapable)
	}
	for r, n := range st.TokensRejected {
		if n != 0 {
			t.Errorf("rejected %s = %d", r, n)
		}
	}
}

func hasExt(exts []tls13.Extension, typ uint16) bool {
	for _, e := range exts {
		if e.Type == typ {
			return true
		}
	}
	return false
}

func TestRendezvousFallbacks(t *testing.T) {
	t.Run("no token", func(t *testing.T) {
		node := startNode(t, nodeOpts{tickets: -1})
		d := newDialer(t, PolicyRendezvous)
		d.TokenWait = 100 * time.Millisecond
		c := dial(t, d, node.vipAddr())
		if info := c.Info(); info.Migrated || info.Fallback != FallbackNoToken || info.Remote != node.vipAddr() {
			t.Fatalf("Info %+v", info)
		}
		if body := httpGet(t, c, bufio.NewReader(c)); body != "node anycast resumed=false" {
			t.Fatalf("body %q", body)
		}
	})
	t.Run("anycast closes before a token", func(t *testing.T) {
		l := listen(t)
		keys, _ := tls13.NewRandomTicketKeys()
		scfg := &tls13.Config{Certificates: []tls.Certificate{getPKI(t).cert}, TicketKeys: keys, TicketsPerHandshake: -1}
		go func() {
			raw, err := l.Accept()
			if err != nil {
				return
			}
			sc := tls13.Server(raw, scfg)
			sc.Handshake()
			sc.Close()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if c, err := newDialer(t, PolicyRendezvous).DialContext(ctx, "tcp", l.Addr().String()); err == nil {
			c.Close()
			t.Fatal("a dial whose only connection closed before a token succeeded")
		}
	})
	t.Run("target unreachable", func(t *testing.T) {
		closed := listen(t)
		dead := addrOf(closed)
		closed.Close()
		node := startNode(t, nodeOpts{unicastAddr: dead})
		c := dial(t, newDialer(t, PolicyRendezvous), node.vipAddr())
		info := c.Info()
		if info.Migrated || !strings.Contains(info.Fallback, "unreachable") || info.Remote != node.vipAddr() {
			t.Fatalf("Info %+v", info)
		}
		if body := httpGet(t, c, bufio.NewReader(c)); body != "node anycast resumed=false" {
			t.Fatalf("body %q", body)
		}
	})
	t.Run("full handshake at target", func(t *testing.T) {
		// The target belongs to the same service but not to the ticket-key
		// pool: it cannot resume, the client still lands there.
		target := startNode(t, nodeOpts{name: "other", noAnycast: true})
		node := startNode(t, nodeOpts{unicastAddr: addrOf(target.uni)})
		c := dial(t, newDialer(t, PolicyRendezvous), node.vipAddr())
		info := c.Info()
		if !info.Migrated || info.Resumed || info.Fallback != FallbackFullHandshake || info.Remote != target.uniAddr() {
			t.Fatalf("Info %+v", info)
		}
		if body := httpGet(t, c, bufio.NewReader(c)); body != "other unicast resumed=false" {
			t.Fatalf("body %q", body)
		}
		if n := target.srv.Stats().TokensRejected[ReasonNoTicket]; n != 1 {
			t.Errorf("target counted no_ticket %d times, want 1", n)
		}
		node.waitClosed(t, KindAnycast)
	})
	t.Run("target is another service", func(t *testing.T) {
		// A target whose certificate is not for the original name is not
		// the same server: the client stays on the VIP.
		other := getPKI(t).leaf(t, "evil.test")
		target := startNode(t, nodeOpts{name: "evil", noAnycast: true, cert: &other})
		node := startNode(t, nodeOpts{unicastAddr: addrOf(target.uni)})
		c := dial(t, newDialer(t, PolicyRendezvous), node.vipAddr())
		info := c.Info()
		if info.Migrated || !strings.Contains(info.Fallback, "unreachable") || info.Remote != node.vipAddr() {
			t.Fatalf("Info %+v", info)
		}
		if body := httpGet(t, c, bufio.NewReader(c)); body != "node anycast resumed=false" {
			t.Fatalf("body %q", body)
		}
	})
}

// A Never client registers neither element: a migrate_request is an
// unexpected_message and alert 240 is fatal, as for any stock stack. A
// capable client takes both in its stride.
func TestNeverClientTreatsMigrationMessagesAsFatal(t *testing.T) {
	cp := DefaultCodePoints()
	cases := []struct {
		name string
		send func(*tls13.Conn) error
		want tls13.Alert
		recv bool
	}{
		{"migrate_request", func(c *tls13.Conn) error {
			body, _ := (&MigrateRequest{Target: "127.0.0.1:1"}).Marshal()
			return c.SendHandshakeMessage(cp.Request, body)
		}, tls13.AlertUnexpectedMessage, false},
		{"migrate_notify", func(c *tls13.Conn) error { return c.SendNotification(cp.Notify) }, tls13.Alert(cp.Notify), true},
	}
	for _, tc := range cases {
		for _, p := range []Policy{PolicyNever, PolicyBackground} {
			t.Run(tc.name+"/"+p.String(), func(t *testing.T) {
				l := listen(t)
				keys, _ := tls13.NewRandomTicketKeys()
				scfg := &tls13.Config{Certificates: []tls.Certificate{getPKI(t).cert}, TicketKeys: keys,
					NotificationAlerts: []uint8{cp.Notify}, HandshakeMessageTypes: []uint8{cp.Request}}
				sent := make(chan error, 1)
				go func() {
					raw, err := l.Accept()
					if err != nil {
						sent <- err
						return
					}
					sc := tls13.Server(raw, scfg)
					defer sc.Close()
					if err := sc.Handshake(); err != nil {
						sent <- err
						return
					}
					err = tc.send(sc)
					if err == nil {
						_, err = sc.Write([]byte("after"))
					}
					sent <- err
					hold := make([]byte, 1)
					sc.Read(hold) // keep the conn until the client is done
				}()
				c := dial(t, newDialer(t, p), l.Addr().String())
				if err := <-sent; err != nil {
					t.Fatalf("server: %v", err)
				}
				c.SetReadDeadline(time.Now().Add(waitLimit))
				buf := make([]byte, 5)
				n, err := c.Read(buf)
				if p != PolicyNever {
					if err != nil || string(buf[:n]) != "after" {
						t.Fatalf("capable client: read %q, %v", buf[:n], err)
					}
					return
				}
				var ae *tls13.AlertError
				if !errors.As(err, &ae) || ae.Alert != tc.want || ae.Received != tc.recv {
					t.Fatalf("Never client read %q, err %v; want alert %v (received %v)", buf[:n], err, tc.want, tc.recv)
				}
			})
		}
	}
}

// Background: the VIP conn is used at once; the move happens in the
// background and takes effect at SwitchIfReady.
func TestBackgroundSwitchIfReady(t *testing.T) {
	node := startNode(t, nodeOpts{})
	c := dial(t, newDialer(t, PolicyBackground), node.vipAddr())
	if info := c.Info(); info.Migrated || info.Remote != node.vipAddr() {
		t.Fatalf("Info %+v, want the VIP conn at once", info)
	}
	br := bufio.NewReader(c)
	if body := httpGet(t, c, br); body != "node anycast resumed=false" {
		t.Fatalf("first request: %q", body)
	}
	waitReady(t, c)
	if !c.MigrationPending() {
		t.Fatal("a ready move is not reported pending")
	}
	switched, err := c.SwitchIfReady()
	if err != nil || !switched {
		t.Fatalf("SwitchIfReady = %v, %v", switched, err)
	}
	if info := c.Info(); !info.Migrated || !info.Resumed || info.Moves != 1 || info.Remote != node.uniAddr() {
		t.Fatalf("Info after switch %+v", info)
	}
	if body := httpGet(t, c, br); body != "node unicast resumed=true" {
		t.Fatalf("request after switch: %q", body)
	}
	node.waitClosed(t, KindAnycast)
	if c.MigrationPending() {
		t.Fatal("a migrated conn whose tickets name itself reports a pending move")
	}
	if again, _ := c.SwitchIfReady(); again {
		t.Fatal("switched twice")
	}
}

func TestDialerConfigErrors(t *testing.T) {
	ctx := context.Background()
	for _, d := range []*Dialer{{}, {TLS: clientTLS(t), Policy: 9}, {TLS: clientTLS(t), TokenWait: -1}} {
		if _, err := d.DialContext(ctx, "tcp", "127.0.0.1:1"); err == nil {
			t.Errorf("%+v: no error", d)
		}
	}
	if _, err := newDialer(t, PolicyNever).DialContext(ctx, "tcp", "no-port"); err == nil {
		t.Error("address without port accepted")
	}
}

// waitReady waits until c has a background move ready.
func waitReady(t testing.TB, c *Conn) {
	t.Helper()
	ready := make(chan struct{})
	var once sync.Once
	c.setOnReady(func() { once.Do(func() { close(ready) }) })
	if c.ready() {
		once.Do(func() { close(ready) })
	}
	select {
	case <-ready:
	case <-time.After(waitLimit):
		t.Fatal("background move never became ready")
	}
	c.setOnReady(nil)
}

// The token names an IPv6 target as well (address type ipv6).
func TestRendezvousIPv6(t *testing.T) {
	node := startNode(t, nodeOpts{ipv6: true})
	c := dial(t, newDialer(t, PolicyRendezvous), node.vipAddr())
	if info := c.Info(); !info.Migrated || !info.Resumed || info.Remote != node.uniAddr() || !strings.HasPrefix(info.Remote, "[::1]:") {
		t.Fatalf("Info %+v", info)
	}
	if body := httpGet(t, c, bufio.NewReader(c)); body != "node unicast resumed=true" {
		t.Fatalf("body %q", body)
	}
}

// A move prepared while the application sits in Read (nothing in flight)
// switches under it: the blocked Read continues on the new connection.
func TestSwitchUnderABlockedRead(t *testing.T) {
	node := startNode(t, nodeOpts{})
	c := dial(t, newDialer(t, PolicyBackground), node.vipAddr())
	got := make(chan string, 1)
	go func() {
		buf := make([]byte, 4096)
		n, err := c.Read(buf) // blocks: nothing was asked yet
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		got <- string(buf[:n])
	}()
	waitReady(t, c)
	if ok, err := c.SwitchIfReady(); !ok || err != nil {
		t.Fatalf("SwitchIfReady %v %v", ok, err)
	}
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: " + testServerName + "\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if !strings.HasPrefix(s, "HTTP/1.1 200") || !strings.HasSuffix(s, "node unicast resumed=true") {
			t.Fatalf("blocked Read returned %q", s)
		}
	case <-time.After(waitLimit):
		t.Fatal("blocked Read never returned")
	}
}

// A read deadline interrupts a blocked Read with a timeout; the
// connection stays usable (net/http's pattern).
func TestConnReadDeadline(t *testing.T) {
	node := startNode(t, nodeOpts{})
	c := dial(t, newDialer(t, PolicyRendezvous), node.vipAddr())
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	var buf [16]byte
	_, err := c.Read(buf[:])
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read past the deadline: %v", err)
	}
	c.SetReadDeadline(time.Time{})
	if body := httpGet(t, c, bufio.NewReader(c)); body != "node unicast resumed=true" {
		t.Fatalf("after the timeout: %q", body)
	}
	if c.LocalAddr() == nil || c.RemoteAddr().String() != node.uniAddr() {
		t.Errorf("addresses %v → %v", c.LocalAddr(), c.RemoteAddr())
	}
	c.Close()
	if _, err := c.Read(buf[:]); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}
	if _, err := c.Write(buf[:]); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close: %v", err)
	}
	if _, err := c.SwitchIfReady(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("SwitchIfReady after Close: %v", err)
	}
}

// readyChan is closed once c has a background move ready (any move that
// completes after this call, or one already prepared).
func readyChan(c *Conn) <-chan struct{} {
	ready := make(chan struct{})
	var once sync.Once
	c.setOnReady(func() { once.Do(func() { close(ready) }) })
	if c.ready() {
		once.Do(func() { close(ready) })
	}
	return ready
}

// A migrate_notify with a re-targeting ticket on a prepared leg that the
// application has not switched to yet (a drain tells it while the
// Transport is between requests) is followed at once, make-before-break:
// when the old node goes away the switch lands on the new target instead
// of leaving the client on a dead VIP connection.
func TestBackgroundFollowsNotifyOnPreparedLeg(t *testing.T) {
	keys, _ := tls13.NewRandomTicketKeys()
	replay := NewMemoryReplayStore(1024)
	a := startNode(t, nodeOpts{name: "a", keys: keys, replay: replay})
	b := startNode(t, nodeOpts{name: "b", keys: keys, replay: replay})
	c := dial(t, newDialer(t, PolicyBackground), a.vipAddr())
	br := bufio.NewReader(c)
	if body := httpGet(t, c, br); body != "a anycast resumed=false" {
		t.Fatalf("first request: %q", body)
	}
	waitReady(t, c) // prepared on a's unicast address, not switched to
	a.waitHandshake(t, KindUnicast)
	var prepared *ServerConn
	for _, sc := range a.srv.snapshot() {
		if sc.Kind() == KindUnicast {
			prepared = sc
		}
	}
	if prepared == nil {
		t.Fatal("no unicast connection at a")
	}
	moved := make(chan struct{})
	var once sync.Once
	c.setOnReady(func() { once.Do(func() { close(moved) }) })
	if err := prepared.Migrate(addrOf(b.uni)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-moved:
	case <-time.After(waitLimit):
		t.Fatal("the notify on the prepared leg was not followed")
	}
	c.setOnReady(nil)
	for _, sc := range a.srv.snapshot() { // node a exits
		sc.Close()
	}
	if ok, err := c.SwitchIfReady(); !ok || err != nil {
		t.Fatalf("SwitchIfReady = %v, %v after a went away", ok, err)
	}
	if body := httpGet(t, c, br); body != "b unicast resumed=true" {
		t.Fatalf("after the switch: %q", body)
	}
	if info := c.Info(); info.Remote != b.uniAddr() || !info.Migrated || !info.Resumed {
		t.Errorf("Info %+v", info)
	}
}
