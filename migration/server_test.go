package migration

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anysched/anysched/internal/redistest"
	"github.com/anysched/anysched/tls13"
	"github.com/redis/go-redis/v9"
)

// resumeWith offers session at addr with a hand-made migration_token and
// checks that the connection works; it returns whether it resumed.
func resumeWith(t *testing.T, addr string, session *tls13.ClientSession, token []byte) bool {
	t.Helper()
	var extra []tls13.Extension
	if token != nil {
		extra = []tls13.Extension{{Type: DefaultCodePoints().Token, Data: token}}
	}
	rs := rawDial(t, addr, session, extra, false)
	if !strings.HasPrefix(rs.body, "node unicast") {
		t.Fatalf("request after the token answered %q", rs.body)
	}
	return rs.conn.ConnectionState().DidResume
}

// wantRejected checks that exactly one token was rejected, for reason.
func wantRejected(t *testing.T, srv *Server, before Stats, reason Reason) {
	t.Helper()
	after := srv.Stats()
	for _, r := range Reasons {
		want := before.TokensRejected[r]
		if r == reason {
			want++
		}
		if got := after.TokensRejected[r]; got != want {
			t.Errorf("rejected[%s] = %d, want %d", r, got, want)
		}
	}
	if after.TokensAccepted != before.TokensAccepted {
		t.Errorf("a rejected token was also counted accepted")
	}
}

// Every attack on the token ends in a working full-handshake connection
// and is counted by its reason.
func TestTokenAttacksRejectedByReason(t *testing.T) {
	var offset atomic.Int64 // fake clock for the expiry case
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	uni := listen(t)
	node := startNode(t, nodeOpts{unicast: uni, clock: clock})
	wrong := listen(t)
	go serveHTTP(node, node.srv.Listen(wrong, KindUnicast))

	fresh := func() (*tls13.ClientSession, []byte) {
		return rawDial(t, node.vipAddr(), nil, nil, false).tokenTicket(t)
	}
	mutate := func(f func(b []byte) []byte) func() (*tls13.ClientSession, []byte) {
		return func() (*tls13.ClientSession, []byte) {
			s, tok := fresh()
			return s, f(append([]byte(nil), tok...))
		}
	}
	cases := []struct {
		name   string
		reason Reason
		make   func() (*tls13.ClientSession, []byte)
		addr   string
	}{
		{"forged HMAC", ReasonForged, mutate(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), ""},
		{"another session's token", ReasonOtherSession, func() (*tls13.ClientSession, []byte) {
			_, tokA := fresh()
			sB, tokB := fresh()
			// Re-sign A's token with B's key: only the session binding differs.
			a, _ := ParseToken(tokA)
			b, _ := ParseToken(tokB)
			forged, err := IssueToken(sB.PSK(), a.Target, a.SessionID, a.ExpiryTime(), nil)
			if err != nil || b == nil {
				t.Fatal(err)
			}
			raw, _ := forged.Marshal()
			return sB, raw
		}, ""},
		{"truncated", ReasonMalformed, mutate(func(b []byte) []byte { return b[:len(b)-1] }), ""},
		{"trailing byte", ReasonMalformed, mutate(func(b []byte) []byte { return append(b, 0) }), ""},
		{"oversized session_id length", ReasonMalformed, mutate(func(b []byte) []byte { b[1+4+2] = 255; return b }), ""},
		{"undersized session_id", ReasonMalformed, mutate(func(b []byte) []byte { b[1+4+2] = 31; return b }), ""},
		{"unknown address type", ReasonMalformed, mutate(func(b []byte) []byte { b[0] = 2; return b }), ""},
		{"no ticket", ReasonNoTicket, func() (*tls13.ClientSession, []byte) {
			_, tok := fresh()
			return nil, tok
		}, ""},
		{"wrong target", ReasonWrongTarget, fresh, wrong.Addr().String()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			session, tok := tc.make()
			addr := tc.addr
			if addr == "" {
				addr = node.uniAddr()
			}
			before := node.srv.Stats()
			if resumeWith(t, addr, session, tok) {
				t.Fatal("resumed with a bad token")
			}
			wantRejected(t, node.srv, before, tc.reason)
		})
	}
	t.Run("expired", func(t *testing.T) {
		session, tok := fresh()
		offset.Store(int64(defaultTokenLifetime + time.Minute))
		defer offset.Store(0)
		before := node.srv.Stats()
		if resumeWith(t, node.uniAddr(), session, tok) {
			t.Fatal("resumed with an expired token")
		}
		wantRejected(t, node.srv, before, ReasonExpired)
	})
	t.Run("replayed nonce", func(t *testing.T) {
		session, tok := fresh()
		before := node.srv.Stats()
		// A wrong target first must not burn the nonce.
		if resumeWith(t, wrong.Addr().String(), session, tok) {
			t.Fatal("resumed at the wrong target")
		}
		if !resumeWith(t, node.uniAddr(), session, tok) {
			t.Fatal("the genuine token did not resume")
		}
		if st := node.srv.Stats(); st.TokensAccepted != before.TokensAccepted+1 {
			t.Fatalf("accepted %d, want %d", st.TokensAccepted, before.TokensAccepted+1)
		}
		before = node.srv.Stats()
		if resumeWith(t, node.uniAddr(), session, tok) {
			t.Fatal("a replayed token resumed")
		}
		wantRejected(t, node.srv, before, ReasonReplayed)
	})
}

// serveHTTP serves n's handler on one more listener.
func serveHTTP(n *testNode, l net.Listener) {
	hs := newNodeHTTP(n)
	hs.Serve(l)
}

// A replayed nonce is caught by a second node of the pool that shares
// the ticket keys and one Redis: both nodes answer on one address (a
// dispatcher hands the first connection to A, the next to B).
func TestReplayAcrossNodesSharingRedis(t *testing.T) {
	addr := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { client.Close() })
	keys, _ := tls13.NewRandomTicketKeys()
	shared := listen(t)
	toA, toB := newChanListener(shared), newChanListener(shared)
	go func() {
		for i := 0; ; i++ {
			c, err := shared.Accept()
			if err != nil {
				toA.Close()
				toB.Close()
				return
			}
			if i%2 == 0 {
				toA.ch <- c
			} else {
				toB.ch <- c
			}
		}
	}()
	mk := func(name string) *testNode {
		return startNode(t, nodeOpts{name: name, keys: keys, unicastAddr: addrOf(shared),
			replay: NewRedisReplayStore(client, "test:"+t.Name()+":")})
	}
	a, b := mk("node"), mk("node")
	go serveHTTP(a, a.srv.Listen(toA, KindUnicast))
	go serveHTTP(b, b.srv.Listen(toB, KindUnicast))

	session, tok := rawDial(t, a.vipAddr(), nil, nil, false).tokenTicket(t)
	if !resumeWith(t, shared.Addr().String(), session, tok) {
		t.Fatal("node A did not accept the token")
	}
	before := b.srv.Stats()
	if resumeWith(t, shared.Addr().String(), session, tok) {
		t.Fatal("node B resumed a token node A had accepted")
	}
	wantRejected(t, b.srv, before, ReasonReplayed)
	if a.srv.Stats().TokensAccepted != 1 {
		t.Error("node A did not count its acceptance")
	}
}

// chanListener is a net.Listener fed by a dispatcher.
type chanListener struct {
	addr net.Addr
	ch   chan net.Conn
	once sync.Once
	done chan struct{}
}

func newChanListener(l net.Listener) *chanListener {
	return &chanListener{addr: l.Addr(), ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}
func (l *chanListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *chanListener) Addr() net.Addr { return l.addr }

// Redis down: tokens fail closed (full handshake, store_unavailable),
// connections keep working.
func TestReplayStoreDownFailsClosed(t *testing.T) {
	rs := redistest.StartServer(t)
	client := redis.NewClient(&redis.Options{Addr: rs.Addr, MaxRetries: -1})
	t.Cleanup(func() { client.Close() })
	var replayErrs atomic.Int64
	node := startNode(t, nodeOpts{replay: NewRedisReplayStore(client, "down:")})
	node.srv.cfg.Events.ReplayError = func(error) { replayErrs.Add(1) }
	session, tok := rawDial(t, node.vipAddr(), nil, nil, false).tokenTicket(t)
	rs.Kill()
	before := node.srv.Stats()
	if resumeWith(t, node.uniAddr(), session, tok) {
		t.Fatal("resumed although the replay store was down")
	}
	wantRejected(t, node.srv, before, ReasonStoreUnavailable)
	if st := node.srv.Stats(); st.ReplayErrors != before.ReplayErrors+1 || replayErrs.Load() != 1 {
		t.Errorf("replay errors %d (events %d)", st.ReplayErrors, replayErrs.Load())
	}
}

// Legacy clients (crypto/tls, a Never Dialer) get normal service on both
// addresses, full and resumed, and are never sent a notification:
// MigrateAll with them connected leaves them working.
func TestLegacyClientsUnaffected(t *testing.T) {
	node := startNode(t, nodeOpts{})
	pool := getPKI(t).pool
	for _, addr := range []string{node.vipAddr(), node.uniAddr()} {
		cache := tls.NewLRUClientSessionCache(4)
		for i, wantResumed := range []bool{false, true} {
			c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: testServerName, ClientSessionCache: cache, MinVersion: tls.VersionTLS13})
			if err != nil {
				t.Fatalf("crypto/tls %s #%d: %v", addr, i, err)
			}
			br := bufio.NewReader(c)
			if body := httpGet(t, c, br); !strings.HasPrefix(body, "node ") {
				t.Fatalf("crypto/tls body %q", body)
			}
			if got := c.ConnectionState().DidResume; got != wantResumed {
				t.Errorf("crypto/tls %s #%d resumed %v", addr, i, got)
			}
			if i == 1 {
				// Keep it open across MigrateAll.
				defer func(c *tls.Conn, br *bufio.Reader) {
					if body := httpGet(t, c, br); !strings.HasPrefix(body, "node ") {
						t.Errorf("crypto/tls after MigrateAll: %q", body)
					}
					c.Close()
				}(c, br)
			} else {
				c.Close()
			}
		}
	}
	never := dial(t, newDialer(t, PolicyNever), node.vipAddr())
	nbr := bufio.NewReader(never)
	httpGet(t, never, nbr)
	if n := node.srv.MigrateAll(netip.AddrPort{}); n != 0 {
		t.Fatalf("MigrateAll told %d connections, want 0 (all legacy)", n)
	}
	if n := node.srv.MigrateAll(addrOf(node.uni)); n != 0 {
		t.Fatalf("MigrateAll(target) told %d connections, want 0", n)
	}
	if body := httpGet(t, never, nbr); body != "node anycast resumed=false" {
		t.Fatalf("Never client after MigrateAll: %q", body)
	}
	st := node.srv.Stats()
	if st.NotificationsSent != 0 || st.TokensIssued != 0 || st.ActiveCapable != 0 {
		t.Errorf("legacy clients got migration traffic: %+v", st)
	}
	for _, sc := range node.srv.snapshot() {
		if err := sc.Migrate(netip.AddrPort{}); err != ErrNotCapable && err != ErrHandshakeIncomplete {
			t.Errorf("Migrate on a legacy conn: %v", err)
		}
	}
}

// Draft-03: migration_allowed in the ticket, migrate_request after the
// tickets, resumption at the target with nothing migration-specific.
func TestDraft03RoundTrip(t *testing.T) {
	cp := DefaultCodePoints()
	var mu sync.Mutex
	var resumingHello *tls13.ClientHelloInfo
	node := startNode(t, nodeOpts{profile: ProfileDraft03, onHello: func(info *tls13.ClientHelloInfo) {
		if info.Resumption != nil {
			mu.Lock()
			i := *info
			resumingHello = &i
			mu.Unlock()
		}
	}})
	rs := rawDial(t, node.vipAddr(), nil, nil, false)
	if len(rs.tickets) == 0 || !hasExt(rs.tickets[0].Extensions, cp.Allowed) || hasExt(rs.tickets[0].Extensions, cp.Token) {
		t.Fatalf("draft-03 ticket extensions: %+v", rs.tickets)
	}
	legacy := rawDial(t, node.vipAddr(), nil, nil, true)
	if len(legacy.tickets) == 0 || len(legacy.tickets[0].Extensions) != 0 {
		t.Fatalf("a legacy client's ticket carries %+v", legacy.tickets)
	}

	for _, p := range []Policy{PolicyRendezvous, PolicyBackground} {
		t.Run(p.String(), func(t *testing.T) {
			before := node.srv.Stats()
			c := dial(t, newDialer(t, p), node.vipAddr())
			br := bufio.NewReader(c)
			if p == PolicyBackground {
				if body := httpGet(t, c, br); body != "node anycast resumed=false" {
					t.Fatalf("first request %q", body)
				}
				waitReady(t, c)
				if ok, err := c.SwitchIfReady(); !ok || err != nil {
					t.Fatalf("SwitchIfReady %v %v", ok, err)
				}
			}
			if info := c.Info(); !info.Migrated || !info.Resumed || info.Remote != node.uniAddr() {
				t.Fatalf("Info %+v", info)
			}
			if body := httpGet(t, c, br); body != "node unicast resumed=true" {
				t.Fatalf("request at the target %q", body)
			}
			mu.Lock()
			h := resumingHello
			mu.Unlock()
			if h == nil || hasExt(h.Extensions, cp.Token) || hasExt(h.Extensions, cp.Support) {
				t.Errorf("resuming hello carries migration extensions")
			}
			st := node.srv.Stats()
			if st.TokensAccepted != before.TokensAccepted+1 || st.NotificationsSent < before.NotificationsSent+1 {
				t.Errorf("stats before %+v after %+v", before, st)
			}
			if st.TokensIssued != 0 {
				t.Errorf("draft-03 issued %d tokens", st.TokensIssued)
			}
		})
	}
}

// Re-targeting: a node sends a fresh ticket whose token names a sibling
// (shared ticket keys and replay store), then migrate_notify; the client
// moves there, make-before-break.
func TestRetargetToSibling(t *testing.T) {
	for _, prof := range []Profile{ProfileSeed, ProfileDraft03} {
		t.Run(prof.String(), func(t *testing.T) {
			keys, _ := tls13.NewRandomTicketKeys()
			replay := NewMemoryReplayStore(1024)
			a := startNode(t, nodeOpts{name: "a", keys: keys, replay: replay, profile: prof})
			b := startNode(t, nodeOpts{name: "b", keys: keys, replay: replay, profile: prof})
			c := dial(t, newDialer(t, PolicyRendezvous), a.vipAddr())
			br := bufio.NewReader(c)
			if body := httpGet(t, c, br); body != "a unicast resumed=true" {
				t.Fatalf("before: %q", body)
			}
			a.waitClosed(t, KindAnycast) // the VIP conn is gone
			if n := a.srv.MigrateAll(addrOf(b.uni)); n != 1 {
				t.Fatalf("MigrateAll told %d", n)
			}
			waitReady(t, c)
			if ok, err := c.SwitchIfReady(); !ok || err != nil {
				t.Fatalf("SwitchIfReady %v %v", ok, err)
			}
			if body := httpGet(t, c, br); body != "b unicast resumed=true" {
				t.Fatalf("after: %q", body)
			}
			if info := c.Info(); info.Moves != 2 || info.Remote != b.uniAddr() || !info.Resumed {
				t.Errorf("Info %+v", info)
			}
			a.waitClosed(t, KindUnicast)
			if b.srv.Stats().TokensAccepted != 1 {
				t.Errorf("sibling accepted %d", b.srv.Stats().TokensAccepted)
			}
		})
	}
}

// Drain moves every capable client (Transport pools switch idle conns as
// soon as the move is ready) before it returns; legacy ones keep working.
func TestDrainMovesEveryCapableClient(t *testing.T) {
	keys, _ := tls13.NewRandomTicketKeys()
	replay := NewMemoryReplayStore(1024)
	a := startNode(t, nodeOpts{name: "a", keys: keys, replay: replay})
	b := startNode(t, nodeOpts{name: "b", keys: keys, replay: replay})
	var transports []*Transport
	for _, p := range []Policy{PolicyRendezvous, PolicyRendezvous, PolicyBackground} {
		tr := &Transport{Dialer: newDialer(t, p)}
		t.Cleanup(tr.CloseIdleConnections)
		transports = append(transports, tr)
		// Settle: the background client's first requests go over the VIP.
		for i := 0; ; i++ {
			if _, info := get(t, tr, a.vipAddr()); info.Migrated {
				break
			}
			if i > 10000 {
				t.Fatal("background client never moved to the unicast address")
			}
		}
	}
	legacy, err := tls.Dial("tcp", a.uniAddr(), &tls.Config{RootCAs: getPKI(t).pool, ServerName: testServerName})
	if err != nil {
		t.Fatal(err)
	}
	defer legacy.Close()
	lbr := bufio.NewReader(legacy)
	httpGet(t, legacy, lbr)

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if open := a.srv.Drain(ctx, addrOf(b.uni)); open != 0 {
		t.Fatalf("Drain left %d capable connections open", open)
	}
	if st := a.srv.Stats(); st.ActiveCapable != 0 {
		t.Fatalf("after Drain: %+v", st)
	}
	for i, tr := range transports {
		if node, _ := get(t, tr, a.vipAddr()); node != "b" {
			t.Errorf("client %d after drain served by %q", i, node)
		}
	}
	if body := httpGet(t, legacy, lbr); body != "a unicast resumed=false" {
		t.Errorf("legacy client after drain: %q", body)
	}
}

func TestNewServerConfigErrors(t *testing.T) {
	keys, _ := tls13.NewRandomTicketKeys()
	good := func() ServerConfig {
		return ServerConfig{TLS: &tls13.Config{Certificates: []tls.Certificate{getPKI(t).cert}, TicketKeys: keys},
			Unicast: netip.MustParseAddrPort("127.0.0.1:8443")}
	}
	cases := map[string]func(*ServerConfig){
		"TLS":           func(c *ServerConfig) { c.TLS = nil },
		"TicketKeys":    func(c *ServerConfig) { c.TLS.TicketKeys = nil },
		"Certificates":  func(c *ServerConfig) { c.TLS.Certificates = nil },
		"Profile":       func(c *ServerConfig) { c.Profile = 7 },
		"Unicast":       func(c *ServerConfig) { c.Unicast = netip.AddrPort{} },
		"TokenLifetime": func(c *ServerConfig) { c.TokenLifetime = -time.Second },
		"CodePoints": func(c *ServerConfig) {
			c.CodePoints = CodePoints{Support: 1, Token: 1, Allowed: 2, Request: 3, Notify: 4}
		},
	}
	for field, mutate := range cases {
		cfg := good()
		mutate(&cfg)
		if _, err := NewServer(cfg); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: error %v does not name the field", field, err)
		}
	}
	cfg := good()
	cfg.TLS.TicketLifetime = time.Minute
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.tokenLifetime != time.Minute {
		t.Errorf("token lifetime %v exceeds the ticket's minute", s.tokenLifetime)
	}
}

func TestTicketAppEnvelope(t *testing.T) {
	in := ticketApp{allowed: true, sessionID: make([]byte, sessionIDLen), user: []byte("caller")}
	out := parseTicketApp(in.marshal())
	if out == nil || !out.allowed || len(out.sessionID) != sessionIDLen || string(out.user) != "caller" {
		t.Fatalf("round trip: %+v", out)
	}
	for _, bad := range [][]byte{nil, {1, 0}, {2, 0, 0}, {1, 2, 0}, {1, 0, 5, 1}, {1, 0, 16}} {
		if parseTicketApp(bad) != nil {
			t.Errorf("parsed %x", bad)
		}
	}
}

// A node that drains without a sibling target tells its unicast clients
// to leave: they go back through the anycast address (their own policy)
// and the drain completes.
func TestDrainWithoutTargetSendsUnicastClientsBackToTheVIP(t *testing.T) {
	for _, prof := range []Profile{ProfileSeed, ProfileDraft03} {
		t.Run(prof.String(), func(t *testing.T) {
			a := startNode(t, nodeOpts{name: "a", profile: prof})
			tr := &Transport{Dialer: newDialer(t, PolicyRendezvous)}
			defer tr.CloseIdleConnections()
			if _, info := get(t, tr, a.vipAddr()); !info.Migrated {
				t.Fatalf("not migrated: %+v", info)
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			if open := a.srv.Drain(ctx, netip.AddrPort{}); open != 0 {
				t.Fatalf("Drain left %d open", open)
			}
			node, info := get(t, tr, a.vipAddr())
			if node != "a" || info.Moves < 2 {
				t.Fatalf("after drain: node %q info %+v", node, info)
			}
		})
	}
}

// FuzzParseTicketApp: the sealed envelope parser never panics, and what
// it accepts re-encodes to the same bytes (one encoding per value).
func FuzzParseTicketApp(f *testing.F) {
	f.Add((&ticketApp{}).marshal())
	f.Add((&ticketApp{allowed: true, user: []byte("x")}).marshal())
	f.Add((&ticketApp{sessionID: make([]byte, sessionIDLen)}).marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		a := parseTicketApp(b)
		if a == nil {
			return
		}
		if got := a.marshal(); string(got) != string(b) {
			t.Fatalf("re-encoded %x as %x", b, got)
		}
	})
}

// The caller's own OnClientHello cannot turn a rejected token back into
// a resumption: the token check runs after it.
func TestCallerHookCannotOverrideTokenRejection(t *testing.T) {
	var calls atomic.Int64
	node := startNode(t, nodeOpts{onHello: func(info *tls13.ClientHelloInfo) {
		calls.Add(1)
		info.RejectResumption = false
	}})
	session, tok := rawDial(t, node.vipAddr(), nil, nil, false).tokenTicket(t)
	forged := append([]byte(nil), tok...)
	forged[len(forged)-1] ^= 0x80
	before := node.srv.Stats()
	if resumeWith(t, node.uniAddr(), session, forged) {
		t.Fatal("a forged token resumed through the caller's hook")
	}
	wantRejected(t, node.srv, before, ReasonForged)
	if calls.Load() != 2 {
		t.Errorf("caller's hook ran %d times, want 2", calls.Load())
	}
}

// A capable connection whose handshake completes while the node drains
// (here a new VIP connection the router still sends) is told as well:
// its tokens name the drain target, and Drain waits until it has gone.
func TestDrainTellsConnectionsThatArriveDuringIt(t *testing.T) {
	keys, _ := tls13.NewRandomTicketKeys()
	replay := NewMemoryReplayStore(1024)
	a := startNode(t, nodeOpts{name: "a", keys: keys, replay: replay})
	b := startNode(t, nodeOpts{name: "b", keys: keys, replay: replay})
	holder := rawDial(t, a.vipAddr(), nil, nil, false) // keeps the drain waiting
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	drained := make(chan int, 1)
	go func() { drained <- a.srv.Drain(ctx, addrOf(b.uni)) }()
	a.waitNotified(t, KindAnycast) // the drain is under way

	c := dial(t, newDialer(t, PolicyBackground), a.vipAddr())
	holder.conn.Close()
	// The application switches once its move is ready (as a Transport
	// does for an idle conn); the drain has to wait for it.
	switched := make(chan error, 1)
	go func() {
		select {
		case <-readyChan(c):
		case <-ctx.Done():
			switched <- ctx.Err()
			return
		}
		ok, err := c.SwitchIfReady()
		if err == nil && !ok {
			err = errors.New("SwitchIfReady did not switch")
		}
		switched <- err
	}()
	if open := <-drained; open != 0 {
		t.Fatalf("Drain left %d capable connections open", open)
	}
	if st := a.srv.Stats(); st.ActiveCapable != 0 {
		t.Fatalf("Drain returned with capable connections still open: %+v", st)
	}
	if err := <-switched; err != nil {
		t.Fatal(err)
	}
	if body := httpGet(t, c, bufio.NewReader(c)); body != "b unicast resumed=true" {
		t.Fatalf("the client that arrived during the drain is served by %q, want the drain target", body)
	}
}

// A node lingers in its drain with nobody to wait for (the routers still
// send it flows until they read its report): a client that arrives then
// is told and moves to the target, and the drain has not ended under it.
func TestDrainUntilTellsClientsArrivingWhileItLingers(t *testing.T) {
	keys, _ := tls13.NewRandomTicketKeys()
	replay := NewMemoryReplayStore(1024)
	a := startNode(t, nodeOpts{name: "a", keys: keys, replay: replay})
	b := startNode(t, nodeOpts{name: "b", keys: keys, replay: replay})
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	drained := make(chan int, 1)
	go func() { drained <- a.srv.DrainUntil(ctx, addrOf(b.uni), time.Now().Add(time.Hour)) }()

	c := dial(t, newDialer(t, PolicyBackground), a.vipAddr())
	select {
	case <-readyChan(c):
	case <-ctx.Done():
		t.Fatal("the client that arrived while the node lingered was never told to move")
	}
	if ok, err := c.SwitchIfReady(); err != nil || !ok {
		t.Fatalf("SwitchIfReady = %v, %v", ok, err)
	}
	if body := httpGet(t, c, bufio.NewReader(c)); body != "b unicast resumed=true" {
		t.Fatalf("the client that arrived while the node lingered is served by %q, want the drain target", body)
	}
	select {
	case open := <-drained:
		t.Fatalf("DrainUntil returned (%d open) long before its linger ended", open)
	default:
	}
	cancel()
	if open := <-drained; open != 0 {
		t.Fatalf("DrainUntil left %d capable connections open", open)
	}
}

// A Drain cut short by its context leaves the connection open; a later
// Drain tells it again.
func TestDrainAgainTellsAgain(t *testing.T) {
	a := startNode(t, nodeOpts{name: "a"})
	rawDial(t, a.vipAddr(), nil, nil, false)
	for i := 0; i < 2; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		left := make(chan int, 1)
		go func() { left <- a.srv.Drain(ctx, netip.AddrPort{}) }()
		a.waitNotified(t, KindAnycast)
		cancel()
		if n := <-left; n != 1 {
			t.Fatalf("Drain %d cut short left %d open, want 1", i+1, n)
		}
	}
	if st := a.srv.Stats(); st.NotificationsSent != 2 {
		t.Errorf("two drains sent %d notifications, want 2", st.NotificationsSent)
	}
}
