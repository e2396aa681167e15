package migration

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anysched/anysched/internal/certtest"
	"github.com/anysched/anysched/tls13"
)

// testServerName is the service's name: certificates carry it (and no IP
// address), so a client that reaches a node by its unicast IP must
// verify against the original name.
const testServerName = "vip.test"

// waitLimit bounds every wait on an event in these tests (a hang fails,
// no assertion depends on speed).
const waitLimit = 20 * time.Second

type testPKI struct {
	ca   *certtest.CA
	pool *x509.CertPool
	cert tls.Certificate
}

var (
	pkiOnce sync.Once
	pkiVal  *testPKI
	pkiErr  error
)

// pkiValidity outlives any test binary's run.
const pkiValidity = 48 * time.Hour

func getPKI(t testing.TB) *testPKI {
	t.Helper()
	pkiOnce.Do(func() {
		ca, err := certtest.NewCA(certtest.CAOptions{Name: "migration test CA", Validity: pkiValidity})
		if err != nil {
			pkiErr = err
			return
		}
		p := &testPKI{ca: ca, pool: ca.Pool()}
		if p.cert, pkiErr = p.issue(testServerName); pkiErr == nil {
			pkiVal = p
		}
	})
	if pkiErr != nil {
		t.Fatalf("make the test PKI: %v", pkiErr)
	}
	return pkiVal
}

func (p *testPKI) issue(name string) (tls.Certificate, error) {
	leaf, err := p.ca.Issue(certtest.LeafOptions{DNSNames: []string{name}, Validity: pkiValidity})
	if err != nil {
		return tls.Certificate{}, err
	}
	return leaf.TLS, nil
}

// leaf issues a certificate for name from the test CA.
func (p *testPKI) leaf(t testing.TB, name string) tls.Certificate {
	t.Helper()
	cert, err := p.issue(name)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func (p *testPKI) caFile(t *testing.T) string { return p.ca.WriteFile(t) }

func clientTLS(t testing.TB) *tls13.Config {
	return &tls13.Config{RootCAs: getPKI(t).pool, ServerName: testServerName}
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func listen6(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func addrOf(l net.Listener) netip.AddrPort { return l.Addr().(*net.TCPAddr).AddrPort() }

// nodeOpts configures a test node.
type nodeOpts struct {
	name    string
	profile Profile
	keys    *tls13.TicketKeys
	replay  ReplayStore
	clock   func() time.Time
	unicast net.Listener // nil: a fresh one
	// unicastAddr overrides the token target (e.g. a closed port).
	unicastAddr netip.AddrPort
	cert        *tls.Certificate
	tickets     int
	onHello     func(info *tls13.ClientHelloInfo)
	noAnycast   bool
	ipv6        bool // listen on ::1
}

// testNode is one Server with an anycast and a unicast listener, serving
// HTTP/1.1; the handler answers "NAME KIND resumed=BOOL".
type testNode struct {
	name      string
	srv       *Server
	vip, uni  net.Listener
	closed    chan Kind // ConnClosed events
	notified  chan Kind // NotifySent events
	handshook chan Kind // Handshake events
	served    map[Kind]*atomic.Int64
}

type ctxKey struct{}

func startNode(t testing.TB, o nodeOpts) *testNode {
	t.Helper()
	if o.name == "" {
		o.name = "node"
	}
	if o.keys == nil {
		k, err := tls13.NewRandomTicketKeys()
		if err != nil {
			t.Fatal(err)
		}
		o.keys = k
	}
	cert := getPKI(t).cert
	if o.cert != nil {
		cert = *o.cert
	}
	n := &testNode{name: o.name, closed: make(chan Kind, 1024),
		notified: make(chan Kind, 1024), handshook: make(chan Kind, 1024),
		served: map[Kind]*atomic.Int64{KindAnycast: {}, KindUnicast: {}}}
	lst := listen
	if o.ipv6 {
		lst = listen6
	}
	if !o.noAnycast {
		n.vip = lst(t)
	}
	n.uni = o.unicast
	if n.uni == nil {
		n.uni = lst(t)
	}
	target := o.unicastAddr
	if !target.IsValid() {
		target = addrOf(n.uni)
	}
	cfg := &tls13.Config{Certificates: []tls.Certificate{cert}, TicketKeys: o.keys, Time: o.clock, TicketsPerHandshake: o.tickets}
	if hook := o.onHello; hook != nil {
		// Observes what arrives, through the Server's chaining of hooks.
		cfg.OnClientHello = func(info *tls13.ClientHelloInfo) error { hook(info); return nil }
	}
	srv, err := NewServer(ServerConfig{
		TLS: cfg, Profile: o.profile, Unicast: target, Replay: o.replay,
		Events: Events{
			ConnClosed: func(k Kind, _ bool) { sendEvent(n.closed, k) },
			NotifySent: func(k Kind) { sendEvent(n.notified, k) },
			Handshake:  func(k Kind, _, _ bool) { sendEvent(n.handshook, k) },
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	n.srv = srv
	hs := newNodeHTTP(n)
	if n.vip != nil {
		go hs.Serve(srv.Listen(n.vip, KindAnycast))
	}
	go hs.Serve(srv.Listen(n.uni, KindUnicast))
	t.Cleanup(func() { hs.Close() })
	return n
}

// newNodeHTTP is n's HTTP/1.1 server: it counts requests by listener kind
// and names the node and the connection in the body.
func newNodeHTTP(n *testNode) *http.Server {
	return &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sc := r.Context().Value(ctxKey{}).(*ServerConn)
			n.served[sc.Kind()].Add(1)
			w.Header().Set("Anysched-Node", n.name)
			fmt.Fprintf(w, "%s %s resumed=%v", n.name, sc.Kind(), sc.ConnectionState().DidResume)
		}),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, ctxKey{}, c)
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
}

func (n *testNode) vipAddr() string { return n.vip.Addr().String() }
func (n *testNode) uniAddr() string { return n.uni.Addr().String() }

// sendEvent never blocks: Events must not (benchmarks close thousands).
func sendEvent(ch chan Kind, k Kind) {
	select {
	case ch <- k:
	default:
	}
}

// waitClosed waits for a ConnClosed event of kind.
func (n *testNode) waitClosed(t testing.TB, kind Kind) {
	t.Helper()
	n.waitEvent(t, n.closed, kind, "connection closed")
}

// waitNotified waits for a NotifySent event of kind.
func (n *testNode) waitNotified(t testing.TB, kind Kind) {
	t.Helper()
	n.waitEvent(t, n.notified, kind, "connection notified")
}

// waitHandshake waits for a completed server handshake of kind.
func (n *testNode) waitHandshake(t testing.TB, kind Kind) {
	t.Helper()
	n.waitEvent(t, n.handshook, kind, "handshake completed")
}

func (n *testNode) waitEvent(t testing.TB, ch chan Kind, kind Kind, what string) {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		select {
		case k := <-ch:
			if k == kind {
				return
			}
		case <-deadline:
			t.Fatalf("%s: no %s %s", n.name, kind, what)
		}
	}
}

// httpGet sends one GET over c and returns the body.
func httpGet(t testing.TB, c net.Conn, br *bufio.Reader) string {
	t.Helper()
	c.SetDeadline(time.Now().Add(waitLimit))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+testServerName+"\r\n\r\n"); err != nil {
		t.Fatalf("write request: %v", err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return string(body)
}

// rawSession is a hand-driven tls13 client (for crafting tokens).
type rawSession struct {
	conn    *tls13.Conn
	tickets []*tls13.ClientSession
	body    string
}

// rawDial connects with a plain tls13 client that announces
// migration_support (unless legacy), offers session with extra
// extensions, runs one GET and collects the tickets.
func rawDial(t testing.TB, addr string, session *tls13.ClientSession, extra []tls13.Extension, legacy bool) *rawSession {
	t.Helper()
	cp := DefaultCodePoints()
	rs := &rawSession{}
	var mu sync.Mutex
	cfg := clientTLS(t)
	cfg.Session = session
	cfg.AllowedTicketExtensions = []uint16{cp.Token, cp.Allowed}
	cfg.OnNewSessionTicket = func(_ *tls13.Conn, s *tls13.ClientSession) {
		mu.Lock()
		rs.tickets = append(rs.tickets, s)
		mu.Unlock()
	}
	if !legacy {
		cfg.NotificationAlerts = []uint8{cp.Notify}
		cfg.HandshakeMessageTypes = []uint8{cp.Request}
		cfg.ClientHelloExtensions = func(*tls13.Conn, *tls13.ClientSession) []tls13.Extension {
			return append([]tls13.Extension{{Type: cp.Support}}, extra...)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	c, err := tls13.Dial(ctx, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	rs.conn = c
	rs.body = httpGet(t, c, bufio.NewReader(c))
	return rs
}

func (rs *rawSession) tokenTicket(t testing.TB) (*tls13.ClientSession, []byte) {
	t.Helper()
	for i := len(rs.tickets) - 1; i >= 0; i-- {
		for _, e := range rs.tickets[i].Extensions {
			if e.Type == DefaultCodePoints().Token {
				return rs.tickets[i], e.Data
			}
		}
	}
	t.Fatalf("no ticket with a migration_token among %d", len(rs.tickets))
	return nil, nil
}

func newDialer(t testing.TB, p Policy) *Dialer {
	return &Dialer{TLS: clientTLS(t), Policy: p}
}

func dial(t testing.TB, d *Dialer, addr string) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("DialContext %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
