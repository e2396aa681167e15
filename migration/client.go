package migration

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anysched/anysched/tls13"
)

// Dialer opens TLS 1.3 connections that migrate as Policy says.
type Dialer struct {
	// TLS holds RootCAs / InsecureSkipVerify / ServerName (default: the
	// host of the address dialed). The Dialer sets its own hooks on a copy
	// and chains any already set.
	TLS    *tls13.Config
	Policy Policy
	// NetDialer; nil means &net.Dialer{}.
	NetDialer *net.Dialer
	// TokenWait (rendezvous) is how long to wait on the anycast connection
	// for a token before using it as it is; 0 means 3 seconds.
	TokenWait time.Duration
	// CodePoints; the zero value means DefaultCodePoints().
	CodePoints CodePoints
	// Logger; nil discards.
	Logger *slog.Logger
}

const (
	defaultTokenWait = 3 * time.Second
	// moveTimeout bounds one background dial and handshake at a target.
	moveTimeout = 10 * time.Second
	// legQueue is how many read chunks a connection buffers ahead of the
	// application; beyond it the reader waits (backpressure).
	legQueue = 4
	legChunk = 16 << 10
)

// Fallback reasons reported in ConnInfo.Fallback.
const (
	FallbackNoToken       = "no token"
	FallbackFullHandshake = "full handshake at target"
)

// ConnInfo describes where a Conn is and how it got there.
type ConnInfo struct {
	Migrated bool   // the conn in use is the migrated (unicast) one
	Resumed  bool   // the conn in use was a PSK resumption
	Remote   string // host:port of the conn in use
	Anycast  string // host:port first dialed
	Fallback string // "" or why migration did not happen (e.g. "no token", "full handshake at target")
	Moves    int    // how many times the conn moved
}

// DialContext connects to addr (the anycast address) and returns the
// connection the application should use.
//
//   - PolicyRendezvous: handshake with migration_support, wait up to
//     TokenWait for a ticket with a token (draft-03: a migration_allowed
//     ticket and migrate_request), resume at the target with it and
//     return the unicast connection; the anycast connection is closed.
//     If no token arrives or the target cannot be reached, the anycast
//     connection is returned and Info().Fallback says why; a full
//     handshake at the target is used as it is (Fallback "full handshake
//     at target").
//   - PolicyBackground: return the anycast connection at once; move in
//     the background when the token or migrate_notify arrives
//     (make-before-break); SwitchIfReady moves at an application boundary.
//   - PolicyNever: a plain TLS 1.3 client without migration_support.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (*Conn, error) {
	if d.TLS == nil {
		return nil, errors.New("migration: Dialer.TLS is nil")
	}
	if d.Policy > PolicyNever {
		return nil, fmt.Errorf("migration: Dialer.Policy %d is unknown", d.Policy)
	}
	if d.TokenWait < 0 {
		return nil, fmt.Errorf("migration: Dialer.TokenWait %v is negative", d.TokenWait)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("migration: dial %q: %w", addr, err)
	}
	cp := d.CodePoints
	if cp == (CodePoints{}) {
		cp = DefaultCodePoints()
	}
	if err := checkCodePoints(cp); err != nil {
		return nil, err
	}
	c := &Conn{
		policy:   d.Policy,
		cp:       cp,
		base:     *d.TLS,
		network:  network,
		anycast:  addr,
		nd:       d.NetDialer,
		log:      d.Logger,
		closedCh: make(chan struct{}),
		switched: make(chan struct{}),
		deadline: make(chan struct{}),
	}
	if c.nd == nil {
		c.nd = &net.Dialer{}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.base.ServerName == "" {
		c.base.ServerName = host
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.dialing = d.Policy == PolicyRendezvous
	first, err := c.dialLeg(ctx, movePlan{addr: addr})
	if err != nil {
		c.cancel()
		return nil, err
	}
	c.mu.Lock()
	c.cur = first
	c.mu.Unlock()
	if d.Policy == PolicyRendezvous {
		wait := d.TokenWait
		if wait == 0 {
			wait = defaultTokenWait
		}
		if err := c.rendezvous(ctx, first, wait); err != nil {
			c.Close()
			return nil, err
		}
	}
	c.mu.Lock()
	c.dialing = false
	if c.cur.wantMove {
		c.startMoveLocked(c.cur)
	}
	c.mu.Unlock()
	return c, nil
}

// rendezvous waits on the anycast leg for a migration offer and resumes
// at its target; any failure leaves the anycast leg in use.
func (c *Conn) rendezvous(ctx context.Context, vip *leg, wait time.Duration) error {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-vip.signal:
	case <-t.C:
		c.setFallback(FallbackNoToken)
		return nil
	case <-vip.dead:
		if len(vip.data) == 0 {
			return fmt.Errorf("migration: the anycast connection closed before a token arrived: %w", vip.err())
		}
		c.setFallback("anycast connection closed before a token arrived")
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	plan, ok := vip.plan()
	if !ok {
		c.setFallback(plan.why)
		return nil
	}
	if !plan.migrated {
		c.setFallback("the offered target is the anycast address")
		return nil
	}
	nl, err := c.dialLeg(ctx, plan)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.setFallback(fmt.Sprintf("target %s unreachable: %v", plan.addr, err))
		c.log.Info("migration: staying on the anycast connection", "target", plan.addr, "err", err)
		return nil
	}
	c.mu.Lock()
	c.cur = nl
	c.moves++
	c.fallback = nl.note
	c.mu.Unlock()
	go vip.close() // off the path to the application's first byte
	return nil
}

// Conn is a client connection that may move between servers. It is a
// net.Conn: Read and Write go to the connection in use; a prepared move
// takes effect at SwitchIfReady (the Transport calls it between requests).
type Conn struct {
	policy  Policy
	cp      CodePoints
	base    tls13.Config
	network string
	anycast string
	nd      *net.Dialer
	log     *slog.Logger
	ctx     context.Context // cancelled by Close: aborts background moves
	cancel  context.CancelFunc

	readMu sync.Mutex // one Read at a time

	mu   sync.Mutex
	cur  *leg // in use
	next *leg // prepared by a background move, not yet switched to
	// orphan is a retired leg whose offer came in after it was retired
	// (the server told it before it saw the close): still to follow.
	orphan    *leg
	moving    bool
	dialing   bool // DialContext still running: offers only signal
	closed    bool
	writing   int
	rbuf      []byte // rest of a chunk from cur not yet returned
	moves     int
	fallback  string
	onReady   func() // Transport: a prepared move is ready
	closedCh  chan struct{}
	switched  chan struct{} // closed and replaced at each switch
	deadline  chan struct{} // closed and replaced when the read deadline changes
	readDL    time.Time
	writeDL   time.Time
	closeOnce sync.Once
}

var _ net.Conn = (*Conn)(nil)

// movePlan is where a leg dials and what it offers.
type movePlan struct {
	addr     string
	session  *tls13.ClientSession
	token    []byte // seed: migration_token to present
	draft    bool   // draft-03: nothing migration-specific in the ClientHello
	migrated bool   // addr is a migration target (not the anycast address)
	target   netip.AddrPort
	why      string // when no plan: why not
}

// leg is one TLS connection of a Conn with the reader goroutine that
// keeps post-handshake messages flowing while the application is idle.
type leg struct {
	c        *Conn
	tc       *tls13.Conn
	remote   string
	addr     netip.AddrPort
	migrated bool
	resumed  bool
	note     string // fallback note of this leg ("" or full handshake at target)

	data      chan []byte
	dead      chan struct{} // closed when the reader stops
	done      chan struct{} // closed by close()
	closeOnce sync.Once
	isDead    atomic.Bool
	signal    chan struct{} // closed at the first migration offer
	sigOnce   sync.Once

	mu            sync.Mutex
	readErr       error
	lastTicket    *tls13.ClientSession
	tokenTicket   *tls13.ClientSession
	tokenRaw      []byte
	token         *Token
	allowedTicket *tls13.ClientSession
	request       *MigrateRequest
	wantMove      bool // an offer arrived while this leg was not in use (guarded by c.mu)
	retired       bool // switched away from or replaced; closing (guarded by c.mu)
}

func (c *Conn) dialLeg(ctx context.Context, plan movePlan) (*leg, error) {
	raw, err := c.nd.DialContext(ctx, c.network, plan.addr)
	if err != nil {
		return nil, err
	}
	l := &leg{
		c:        c,
		remote:   raw.RemoteAddr().String(),
		addr:     addrPortOf(raw.RemoteAddr()),
		migrated: plan.migrated,
		data:     make(chan []byte, legQueue),
		dead:     make(chan struct{}),
		done:     make(chan struct{}),
		signal:   make(chan struct{}),
	}
	l.tc = tls13.Client(raw, c.legConfig(l, plan))
	if err := l.tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	l.resumed = l.tc.ConnectionState().DidResume
	if plan.migrated && !l.resumed {
		// Still the same service: the chain was verified against the
		// original server name.
		l.note = FallbackFullHandshake
	}
	go l.readLoop()
	return l, nil
}

// legConfig is the tls13 client config of one leg, its hooks bound to l.
func (c *Conn) legConfig(l *leg, plan movePlan) *tls13.Config {
	cfg := c.base
	cfg.Session = plan.session
	if c.policy == PolicyNever {
		return &cfg
	}
	cp := c.cp
	userExts, userTicket := c.base.ClientHelloExtensions, c.base.OnNewSessionTicket
	userNotify, userMsg := c.base.OnNotification, c.base.OnHandshakeMessage
	cfg.ClientHelloExtensions = func(tc *tls13.Conn, s *tls13.ClientSession) []tls13.Extension {
		var exts []tls13.Extension
		if userExts != nil {
			exts = userExts(tc, s)
		}
		if plan.draft && s != nil {
			return exts
		}
		exts = append(exts, tls13.Extension{Type: cp.Support, Data: MarshalMigrationSupport()})
		if plan.token != nil && s != nil {
			exts = append(exts, tls13.Extension{Type: cp.Token, Data: plan.token})
		}
		return exts
	}
	cfg.AllowedTicketExtensions = appendMissing16(appendMissing16(c.base.AllowedTicketExtensions, cp.Token), cp.Allowed)
	cfg.NotificationAlerts = appendMissing(c.base.NotificationAlerts, cp.Notify)
	cfg.HandshakeMessageTypes = appendMissing(c.base.HandshakeMessageTypes, cp.Request)
	cfg.OnNewSessionTicket = func(tc *tls13.Conn, s *tls13.ClientSession) {
		l.onTicket(s)
		if userTicket != nil {
			userTicket(tc, s)
		}
	}
	cfg.OnNotification = func(tc *tls13.Conn, desc uint8) {
		if desc == cp.Notify {
			c.offer(l, false)
		}
		if userNotify != nil {
			userNotify(tc, desc)
		}
	}
	cfg.OnHandshakeMessage = func(tc *tls13.Conn, typ uint8, body []byte) error {
		if typ == cp.Request {
			return l.onMigrateRequest(body)
		}
		if userMsg != nil {
			return userMsg(tc, typ, body)
		}
		return nil
	}
	return &cfg
}

func appendMissing16(list []uint16, v uint16) []uint16 {
	for _, x := range list {
		if x == v {
			return list
		}
	}
	out := make([]uint16, len(list), len(list)+1)
	copy(out, list)
	return append(out, v)
}

func (l *leg) readLoop() {
	defer close(l.dead)
	defer close(l.data)
	buf := make([]byte, legChunk)
	for {
		n, err := l.tc.Read(buf)
		if n > 0 {
			chunk := append([]byte(nil), buf[:n]...)
			select {
			case l.data <- chunk:
			case <-l.done:
				l.setErr(net.ErrClosed)
				return
			}
		}
		if err != nil {
			l.setErr(err)
			return
		}
	}
}

func (l *leg) setErr(err error) {
	l.isDead.Store(true)
	l.mu.Lock()
	if l.readErr == nil {
		l.readErr = err
	}
	l.mu.Unlock()
}

func (l *leg) err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.readErr == nil {
		return net.ErrClosed
	}
	return l.readErr
}

func (l *leg) close() {
	l.closeOnce.Do(func() {
		close(l.done)
		l.tc.Close()
	})
}

// onTicket keeps the latest ticket, the latest token-bearing one and the
// latest migration_allowed one.
func (l *leg) onTicket(s *tls13.ClientSession) {
	cp := l.c.cp
	offered := false
	l.mu.Lock()
	l.lastTicket = s
	for _, e := range s.Extensions {
		switch e.Type {
		case cp.Token:
			tok, err := ParseToken(e.Data)
			if err != nil {
				l.c.log.Info("migration: ignoring a malformed token", "err", err)
				continue
			}
			l.tokenTicket, l.tokenRaw, l.token = s, append([]byte(nil), e.Data...), tok
			offered = true
		case cp.Allowed:
			if ParseMigrationAllowed(e.Data) == nil {
				l.allowedTicket = s
			}
		}
	}
	l.mu.Unlock()
	if offered {
		l.c.offer(l, true)
	}
}

// onMigrateRequest (draft-03) accepts migrate_request at any point after
// the handshake; it is followed only with a migration_allowed ticket.
func (l *leg) onMigrateRequest(body []byte) error {
	mr, err := ParseMigrateRequest(body)
	if err != nil {
		return err
	}
	if mr.Target != "" {
		if _, err := ParseTarget(mr.Target); err != nil {
			l.c.log.Info("migration: ignoring migrate_request with a target this client cannot map", "target", mr.Target)
			return nil
		}
	}
	l.mu.Lock()
	allowed := l.allowedTicket != nil
	if allowed {
		l.request = mr
	}
	l.mu.Unlock()
	if !allowed {
		l.c.log.Info("migration: ignoring migrate_request without a migration_allowed ticket")
		return nil
	}
	l.c.offer(l, false)
	return nil
}

// plan turns the leg's latest offer into where to go. A target that is
// where the leg already is means "leave this node": the client goes back
// through the anycast address (its own policy), offering its ticket.
func (l *leg) plan() (movePlan, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.c
	if mr := l.request; mr != nil {
		l.request = nil
		p := movePlan{session: l.allowedTicket, draft: true}
		if ap, err := ParseTarget(mr.Target); err == nil && !sameAddrPort(ap, l.addr) {
			p.addr, p.migrated, p.target = ap.String(), true, ap
			return p, true
		}
		p.addr = c.anycast
		return p, true
	}
	if tok := l.token; tok != nil {
		if !sameAddrPort(tok.Target, l.addr) {
			return movePlan{addr: FormatTarget(tok.Target), session: l.tokenTicket, token: l.tokenRaw, migrated: true, target: tok.Target}, true
		}
		return movePlan{addr: c.anycast, session: l.lastTicket}, true
	}
	if l.lastTicket != nil || l.migrated {
		return movePlan{addr: c.anycast, session: l.lastTicket}, true
	}
	return movePlan{why: FallbackNoToken}, false
}

// offer handles a migration offer on l: a token-bearing ticket (ticket
// true) or migrate_notify / migrate_request. A ticket moves only an
// anycast leg; a migrated leg waits to be told.
//
// An offer is followed at once on the leg in use and on a prepared leg
// not yet switched to (a drain re-targets both while the application is
// between requests: waiting for the switch would leave the prepared leg
// on a node about to exit). An offer that arrives while a move is under
// way, or on a leg still in its handshake, is kept (wantMove) and
// followed when that move ends.
func (c *Conn) offer(l *leg, ticket bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dialing {
		// Rendezvous is in charge; an offer it does not take (the dial
		// falls back) is acted on once DialContext returns.
		l.sigOnce.Do(func() { close(l.signal) })
		l.wantMove = !ticket || !l.migrated
		return
	}
	if ticket && l.migrated {
		return
	}
	l.wantMove = true
	switch {
	case l == c.cur || l == c.next:
		c.followLocked(l)
	case l.retired:
		// Told while it closed, e.g. a re-target sent to the leg the
		// application just switched away from: the server may have no
		// other leg to tell (the new one's handshake is still in flight
		// on its side).
		c.orphan = l
		c.followLocked(l)
	}
}

// followLocked starts a move for the first of legs (newest first) with
// an offer pending; it does nothing while a move is under way (runMove
// calls it again when that one ends). c.mu is held.
func (c *Conn) followLocked(legs ...*leg) {
	for _, l := range legs {
		if c.moving {
			return
		}
		if l != nil && l.wantMove {
			c.startMoveLocked(l)
		}
	}
}

// startMoveLocked dials the target of from's latest offer in the
// background; c.mu is held.
func (c *Conn) startMoveLocked(from *leg) {
	if c.moving || c.closed || c.policy == PolicyNever {
		return
	}
	from.wantMove = false
	if from == c.orphan {
		c.orphan = nil
	}
	plan, ok := from.plan()
	if !ok || plan.migrated && (c.at(c.cur, plan.target) || c.at(c.next, plan.target)) {
		return // nothing to do, or already there (or prepared there)
	}
	c.moving = true
	go c.runMove(plan)
}

// at reports whether l is a live leg to target.
func (c *Conn) at(l *leg, target netip.AddrPort) bool {
	return l != nil && !l.isDead.Load() && sameAddrPort(target, l.addr)
}

func (c *Conn) runMove(plan movePlan) {
	ctx, cancel := context.WithTimeout(c.ctx, moveTimeout)
	nl, err := c.dialLeg(ctx, plan)
	cancel()
	c.mu.Lock()
	c.moving = false
	if err != nil {
		c.fallback = fmt.Sprintf("target %s unreachable: %v", plan.addr, err)
		// Offers that came in meanwhile may name another target.
		c.followLocked(c.next, c.cur, c.orphan)
		c.mu.Unlock()
		c.log.Info("migration: background move failed", "target", plan.addr, "err", err)
		return
	}
	if c.closed {
		c.mu.Unlock()
		nl.close()
		return
	}
	old := c.next
	c.next = nl
	if old != nil {
		old.retired = true
	}
	// Offers that came in during this move: on the new leg (told during
	// or right after its handshake), on the prepared leg it replaces, on
	// the leg in use, on a retired one.
	c.followLocked(nl, old, c.cur, c.orphan)
	ready := c.onReady
	c.mu.Unlock()
	if old != nil {
		old.close()
	}
	if ready != nil {
		ready()
	}
}

func (c *Conn) setFallback(why string) {
	c.mu.Lock()
	c.fallback = why
	c.mu.Unlock()
}

// setOnReady registers f to run when a background move is ready.
func (c *Conn) setOnReady(f func()) {
	c.mu.Lock()
	c.onReady = f
	c.mu.Unlock()
}

// SwitchIfReady moves to a connection prepared in the background and
// closes the old one. Call it at an application boundary: no request in
// flight and nothing unread. It reports false when nothing is prepared or
// the old connection still has unread data or a write in progress. It
// does not block.
func (c *Conn) SwitchIfReady() (bool, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false, net.ErrClosed
	}
	nl := c.next
	if nl == nil {
		c.mu.Unlock()
		return false, nil
	}
	if nl.isDead.Load() {
		c.next = nil
		nl.retired = true
		// Its node went away: an offer the leg in use got meanwhile
		// still stands.
		c.followLocked(c.cur, c.orphan)
		c.mu.Unlock()
		nl.close()
		return false, nil
	}
	if c.writing > 0 || len(c.rbuf) > 0 || len(c.cur.data) > 0 {
		c.mu.Unlock()
		return false, nil
	}
	old := c.cur
	c.cur, c.next = nl, nil
	old.retired = true
	c.moves++
	c.fallback = nl.note
	close(c.switched)
	c.switched = make(chan struct{})
	wd := c.writeDL
	// Offers kept while a move was under way still stand, the newest
	// leg's first.
	c.followLocked(nl, old, c.orphan)
	c.mu.Unlock()
	if !wd.IsZero() {
		nl.tc.SetWriteDeadline(wd)
	}
	// Make-before-break is done: the old conn closes (close_notify) off
	// the caller's path.
	go old.close()
	return true, nil
}

// MigrationPending reports whether a move is being prepared or is ready.
func (c *Conn) MigrationPending() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.moving || c.next != nil
}

// Info describes the connection in use.
func (c *Conn) Info() ConnInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return ConnInfo{
		Migrated: c.cur.migrated,
		Resumed:  c.cur.resumed,
		Remote:   c.cur.remote,
		Anycast:  c.anycast,
		Fallback: c.fallback,
		Moves:    c.moves,
	}
}

// ConnectionState reports the TLS parameters of the connection in use.
func (c *Conn) ConnectionState() tls13.ConnectionState {
	c.mu.Lock()
	l := c.cur
	c.mu.Unlock()
	return l.tc.ConnectionState()
}

// Read reads application data from the connection in use.
func (c *Conn) Read(b []byte) (int, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return 0, net.ErrClosed
		}
		if len(c.rbuf) > 0 {
			n := copy(b, c.rbuf)
			c.rbuf = c.rbuf[n:]
			c.mu.Unlock()
			return n, nil
		}
		if len(b) == 0 {
			c.mu.Unlock()
			return 0, nil
		}
		l, dl, dlCh, sw := c.cur, c.readDL, c.deadline, c.switched
		c.mu.Unlock()
		var expired <-chan time.Time
		var timer *time.Timer
		if !dl.IsZero() {
			d := time.Until(dl)
			if d <= 0 {
				return 0, os.ErrDeadlineExceeded
			}
			timer = time.NewTimer(d)
			expired = timer.C
		}
		n, err, again := c.readChunk(l, b, expired, dlCh, sw)
		if timer != nil {
			timer.Stop()
		}
		if !again {
			return n, err
		}
	}
}

// readChunk waits for data on l; again means the deadline changed or the
// connection switched, and the caller looks again.
func (c *Conn) readChunk(l *leg, b []byte, expired <-chan time.Time, dlCh, sw <-chan struct{}) (n int, err error, again bool) {
	select {
	case chunk, ok := <-l.data:
		if !ok {
			c.mu.Lock()
			switched := l != c.cur
			c.mu.Unlock()
			if switched {
				return 0, nil, true // the old leg closed after a switch
			}
			return 0, l.err(), false
		}
		c.mu.Lock()
		n := copy(b, chunk)
		c.rbuf = chunk[n:]
		c.mu.Unlock()
		return n, nil, false
	case <-expired:
		return 0, os.ErrDeadlineExceeded, false
	case <-dlCh:
	case <-sw:
	case <-c.closedCh:
		return 0, net.ErrClosed, false
	}
	return 0, nil, true
}

// Write writes application data to the connection in use.
func (c *Conn) Write(b []byte) (int, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	l := c.cur
	c.writing++
	c.mu.Unlock()
	n, err := l.tc.Write(b)
	c.mu.Lock()
	c.writing--
	c.mu.Unlock()
	return n, err
}

// Close closes the connection in use and any prepared one, and stops
// background moves.
func (c *Conn) Close() error {
	err := net.ErrClosed
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		cur, next := c.cur, c.next
		c.next = nil
		c.mu.Unlock()
		close(c.closedCh)
		c.cancel()
		if next != nil {
			next.close()
		}
		err = nil
		if cur != nil {
			cur.close()
		}
	})
	return err
}

// LocalAddr is the local address of the connection in use.
func (c *Conn) LocalAddr() net.Addr { return c.current().tc.LocalAddr() }

// RemoteAddr is the remote address of the connection in use.
func (c *Conn) RemoteAddr() net.Addr { return c.current().tc.RemoteAddr() }

func (c *Conn) current() *leg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}

// SetDeadline sets the read and write deadlines; they carry over to the
// connection a switch moves to.
func (c *Conn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// SetReadDeadline makes a blocked or later Read fail with
// os.ErrDeadlineExceeded after t; the connection stays usable.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.readDL = t
	close(c.deadline)
	c.deadline = make(chan struct{})
	c.mu.Unlock()
	return nil
}

// SetWriteDeadline sets the write deadline of the connection in use (a
// write that times out leaves it unusable for writing).
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.writeDL = t
	l := c.cur
	c.mu.Unlock()
	return l.tc.SetWriteDeadline(t)
}

// ready reports whether a background move waits for SwitchIfReady.
func (c *Conn) ready() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.next != nil
}
