package migration

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anysched/anysched/tls13"
)

// ServerConfig configures a Server: one node that serves its anycast (VIP)
// and unicast listeners.
type ServerConfig struct {
	// TLS holds certificates, TicketKeys (shared by a pool so siblings
	// resume each other's tickets) and lifetimes. The Server installs its
	// own hooks on a copy and chains any hooks already set.
	TLS *tls13.Config
	// Profile is ProfileSeed (default) or ProfileDraft03.
	Profile Profile
	// Unicast is this node's unicast address: the default token target.
	Unicast netip.AddrPort
	// Replay remembers token nonces; nil means an in-memory store.
	Replay ReplayStore
	// TokenLifetime bounds a token's validity; 0 means 5 minutes. It is
	// never longer than the ticket lifetime.
	TokenLifetime time.Duration
	// CodePoints; the zero value means DefaultCodePoints().
	CodePoints CodePoints
	// Events receives callbacks for metrics (any may be nil).
	Events Events
	// Logger; nil discards.
	Logger *slog.Logger
}

// Events are optional callbacks a node wires to its metrics. They run on
// connection goroutines and must not block.
type Events struct {
	Handshake     func(kind Kind, resumed bool, capable bool)
	TokenIssued   func()
	TokenAccepted func()
	TokenRejected func(Reason)
	NotifySent    func(kind Kind)
	ReplayError   func(error)
	ConnClosed    func(kind Kind, capable bool)
}

// Stats is a snapshot of a Server's counters.
type Stats struct {
	HandshakesFull, HandshakesResumed uint64
	// TokensIssued counts tokens put into tickets (seed profile).
	TokensIssued uint64
	// TokensAccepted counts migrations accepted at this node: valid
	// tokens (seed) and resumptions of migration_allowed tickets on a
	// unicast listener (draft-03).
	TokensAccepted uint64
	// TokensRejected has an entry for every Reason.
	TokensRejected map[Reason]uint64
	// NotificationsSent counts migrate_notify alerts and migrate_request
	// messages sent.
	NotificationsSent uint64
	ReplayErrors      uint64
	// Active counts live connections by listener kind (handshake done or not).
	Active map[Kind]int
	// ActiveCapable counts live connections whose client sent
	// migration_support and whose handshake completed.
	ActiveCapable int
}

// ErrNotCapable is returned by ServerConn.Migrate for a client that did
// not send migration_support: stock TLS stacks treat the notification as
// a fatal alert, so it is never sent to them.
var ErrNotCapable = errors.New("migration: the client did not offer migration_support")

// ErrHandshakeIncomplete is returned by ServerConn.Migrate before the
// handshake has completed.
var ErrHandshakeIncomplete = errors.New("migration: the handshake has not completed")

const (
	defaultTokenLifetime = 5 * time.Minute
	// verifyTimeout bounds one replay-store round trip during a handshake.
	verifyTimeout = 2 * time.Second
)

// Server issues and validates migration tokens for the connections of its
// listeners and tells capable clients when to move. It is safe for
// concurrent use.
type Server struct {
	cfg           ServerConfig
	cp            CodePoints
	base          tls13.Config // the caller's config with its own hooks (chained)
	replay        ReplayStore
	log           *slog.Logger
	tokenLifetime time.Duration

	handshakesFull, handshakesResumed atomic.Uint64
	tokensIssued, tokensAccepted      atomic.Uint64
	notificationsSent, replayErrors   atomic.Uint64
	rejected                          map[Reason]*atomic.Uint64

	mu    sync.Mutex
	conns map[*ServerConn]struct{}
	// changed is closed and replaced whenever a conn goes away or, while
	// draining, finishes or fails its handshake (Drain re-counts).
	changed     chan struct{}
	draining    bool
	drainTarget netip.AddrPort
}

// NewServer checks cfg and returns a Server. Errors name the field.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.TLS == nil {
		return nil, errors.New("migration: ServerConfig.TLS is nil")
	}
	if cfg.TLS.TicketKeys == nil {
		return nil, errors.New("migration: ServerConfig.TLS.TicketKeys is nil (migration resumes tickets)")
	}
	if len(cfg.TLS.Certificates) == 0 && cfg.TLS.GetCertificate == nil {
		return nil, errors.New("migration: ServerConfig.TLS has no Certificates and no GetCertificate")
	}
	if cfg.Profile != ProfileSeed && cfg.Profile != ProfileDraft03 {
		return nil, fmt.Errorf("migration: ServerConfig.Profile %d is unknown", cfg.Profile)
	}
	if !cfg.Unicast.IsValid() || cfg.Unicast.Port() == 0 || cfg.Unicast.Addr().IsUnspecified() {
		return nil, fmt.Errorf("migration: ServerConfig.Unicast %q is not an address and port a client can reach", cfg.Unicast)
	}
	if cfg.TokenLifetime < 0 {
		return nil, fmt.Errorf("migration: ServerConfig.TokenLifetime %v is negative", cfg.TokenLifetime)
	}
	cp := cfg.CodePoints
	if cp == (CodePoints{}) {
		cp = DefaultCodePoints()
	}
	if err := checkCodePoints(cp); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		cp:       cp,
		base:     *cfg.TLS,
		replay:   cfg.Replay,
		log:      cfg.Logger,
		conns:    make(map[*ServerConn]struct{}),
		changed:  make(chan struct{}),
		rejected: make(map[Reason]*atomic.Uint64, len(Reasons)),
	}
	for _, r := range Reasons {
		s.rejected[r] = new(atomic.Uint64)
	}
	if s.replay == nil {
		s.replay = NewMemoryReplayStore(DefaultReplayCapacity)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.tokenLifetime = cfg.TokenLifetime
	if s.tokenLifetime == 0 {
		s.tokenLifetime = defaultTokenLifetime
	}
	if tl := ticketLifetime(cfg.TLS); s.tokenLifetime > tl {
		s.tokenLifetime = tl
	}
	switch cfg.Profile {
	case ProfileSeed:
		s.base.NotificationAlerts = appendMissing(s.base.NotificationAlerts, cp.Notify)
	case ProfileDraft03:
		s.base.HandshakeMessageTypes = appendMissing(s.base.HandshakeMessageTypes, cp.Request)
	}
	return s, nil
}

// checkCodePoints rejects code points that would collide on the wire.
func checkCodePoints(cp CodePoints) error {
	if cp.Support == 0 || cp.Token == 0 || cp.Allowed == 0 || cp.Request == 0 || cp.Notify == 0 {
		return fmt.Errorf("migration: CodePoints %+v has a zero entry", cp)
	}
	if cp.Support == cp.Token || cp.Support == cp.Allowed || cp.Token == cp.Allowed {
		return fmt.Errorf("migration: CodePoints %+v uses one extension type twice", cp)
	}
	return nil
}

// ticketLifetime mirrors tls13's rule: 0 means 24 hours, at most 7 days.
func ticketLifetime(c *tls13.Config) time.Duration {
	switch {
	case c.TicketLifetime <= 0:
		return 24 * time.Hour
	case c.TicketLifetime > 7*24*time.Hour:
		return 7 * 24 * time.Hour
	}
	return c.TicketLifetime
}

func appendMissing(list []uint8, v uint8) []uint8 {
	for _, x := range list {
		if x == v {
			return list
		}
	}
	out := make([]uint8, len(list), len(list)+1)
	copy(out, list)
	return append(out, v)
}

func (s *Server) now() time.Time {
	if s.base.Time != nil {
		return s.base.Time()
	}
	return time.Now()
}

func (s *Server) rand() io.Reader {
	if s.base.Rand != nil {
		return s.base.Rand
	}
	return rand.Reader
}

// Listen wraps a plain TCP listener; Accept returns a *ServerConn (as a
// net.Conn) whose handshake runs on first Read, Write or Handshake.
func (s *Server) Listen(l net.Listener, kind Kind) net.Listener {
	return &serverListener{Listener: l, s: s, kind: kind}
}

type serverListener struct {
	net.Listener
	s    *Server
	kind Kind
}

func (l *serverListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.s.NewConn(c, l.kind), nil
}

// NewConn wraps one accepted connection (for callers with their own
// accept loop). The Server tracks it until Close.
func (s *Server) NewConn(raw net.Conn, kind Kind) *ServerConn {
	sc := &ServerConn{s: s, kind: kind, raw: raw}
	cfg := s.base // a per-connection copy: the hooks are bound to sc
	userHello, userTicket := s.base.OnClientHello, s.base.TicketExtensions
	cfg.OnClientHello = func(info *tls13.ClientHelloInfo) error {
		// The caller's hook runs first so that the token check has the
		// last word on RejectResumption.
		if userHello != nil {
			if err := userHello(info); err != nil {
				return err
			}
		}
		sc.onClientHello(info)
		return nil
	}
	cfg.TicketExtensions = func(c *tls13.Conn, t *tls13.ServerTicket) []tls13.Extension {
		var exts []tls13.Extension
		if userTicket != nil {
			exts = userTicket(c, t)
		}
		return sc.ticketExtensions(t, exts)
	}
	sc.tc = tls13.Server(raw, &cfg)
	s.mu.Lock()
	s.conns[sc] = struct{}{}
	s.mu.Unlock()
	return sc
}

func (s *Server) forget(sc *ServerConn) {
	s.mu.Lock()
	if _, ok := s.conns[sc]; ok {
		delete(s.conns, sc)
		s.signalChangedLocked()
	}
	s.mu.Unlock()
}

func (s *Server) signalChangedLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// drainingTo reports whether a Drain is under way and its target.
func (s *Server) drainingTo() (netip.AddrPort, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.drainTarget, s.draining
}

// handshakeSettled wakes a Drain, which counts capable connections still
// in their handshake.
func (s *Server) handshakeSettled() {
	s.mu.Lock()
	if s.draining {
		s.signalChangedLocked()
	}
	s.mu.Unlock()
}

func (s *Server) countRejected(r Reason, err error) {
	if c, ok := s.rejected[r]; ok {
		c.Add(1)
	}
	if r == ReasonStoreUnavailable {
		s.replayErrors.Add(1)
		if f := s.cfg.Events.ReplayError; f != nil {
			f(err)
		}
	}
	if f := s.cfg.Events.TokenRejected; f != nil {
		f(r)
	}
}

func (s *Server) countAccepted() {
	s.tokensAccepted.Add(1)
	if f := s.cfg.Events.TokenAccepted; f != nil {
		f()
	}
}

// MigrateAll calls Migrate on every live capable connection and returns
// how many were told. A zero target asks the anycast connections to move
// to this node's unicast address (their token's target); a valid target
// re-targets every capable connection except those already on it.
// Connections still in their handshake (a client mid-move to this node)
// are counted and told as the handshake completes, if they are capable.
func (s *Server) MigrateAll(target netip.AddrPort) int {
	return len(s.migrateAll(target, false))
}

func (s *Server) migrateAll(target netip.AddrPort, drain bool) []*ServerConn {
	var told []*ServerConn
	for _, sc := range s.snapshot() {
		if !drain && !sc.ready() && sc.deferMove(target) {
			told = append(told, sc) // told when its handshake completes
			continue
		}
		if !sc.wantsMove(target, drain) {
			continue
		}
		if err := sc.Migrate(target); err != nil {
			s.log.Debug("migrate", "remote", sc.RemoteAddr(), "err", err)
			continue
		}
		told = append(told, sc)
	}
	return told
}

// deferMove leaves target for the end of c's running handshake (a client
// mid-move to this node must not miss a MigrateAll because its new
// connection was not ready yet). It reports false when the handshake
// ended meanwhile and the caller is to act now.
func (c *ServerConn) deferMove(target netip.AddrPort) bool {
	if !target.IsValid() && c.lateMove.Load() != nil {
		return true // a re-target already waits: "move" must not undo it
	}
	t := target
	c.lateMove.Store(&t)
	if !c.ready() {
		return true
	}
	return c.lateMove.Swap(nil) == nil // the handshake took it already
}

// wantsMove reports whether a Migrate(target) from MigrateAll (drain
// false) or Drain (drain true) applies to c.
func (c *ServerConn) wantsMove(target netip.AddrPort, drain bool) bool {
	if !c.ready() || !c.Capable() {
		return false
	}
	switch {
	case target.IsValid() && sameAddrPort(c.localAddrPort(), target):
		return false // already there
	case !target.IsValid() && c.kind != KindAnycast && !drain:
		return false // already on a unicast address
	}
	return true
}

// Drain tells every capable connection to move (as MigrateAll; with a
// zero target the unicast connections are told too, and their clients
// go back through the anycast address), then waits until all of them
// have closed or ctx is done. It returns how many were still open.
//
// Connections keep arriving while a node drains (a background client
// finishing its move to this node's unicast address, a VIP connection
// the router still sends), so until Drain returns: the tokens issued
// name target when it is valid, each capable connection is told as its
// handshake completes, and Drain waits for those too, and for capable
// connections still in their handshake. With a zero target an anycast
// connection that arrives meanwhile has nowhere better to go (the
// router chose this node; its unicast address is going away): it gets
// no token, is not told and is not waited for.
func (s *Server) Drain(ctx context.Context, target netip.AddrPort) int {
	return s.DrainUntil(ctx, target, time.Time{})
}

// DrainUntil is Drain that also keeps draining until notBefore, even with
// nobody left to wait for: a node that reports itself draining is still
// sent new connections by the routers until they next read its report,
// and those arrive (and are told, and waited for) while it lingers.
func (s *Server) DrainUntil(ctx context.Context, target netip.AddrPort, notBefore time.Time) int {
	var linger <-chan time.Time
	if wait := time.Until(notBefore); wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		linger = t.C
	}
	s.mu.Lock()
	s.draining, s.drainTarget = true, target
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.draining, s.drainTarget = false, netip.AddrPort{}
		s.mu.Unlock()
		for _, sc := range s.snapshot() { // a later Drain tells them again
			sc.drainTold.Store(false)
		}
	}()
	// A connection finishing its handshake now is told either here or by
	// its afterHandshake (which sees draining): drainConn tells it once.
	for _, sc := range s.snapshot() {
		sc.drainConn(target, false)
	}
	for {
		s.mu.Lock()
		open := 0
		for sc := range s.conns {
			if sc.drainTold.Load() || sc.capableHandshaking() && !sc.stayDuringDrain(target) {
				open++
			}
		}
		changed := s.changed
		s.mu.Unlock()
		if open == 0 && linger == nil {
			return 0
		}
		select {
		case <-ctx.Done():
			return open
		case <-changed:
		case <-linger:
			linger = nil
		}
	}
}

// drainConn tells c to move for a Drain to target, once; arriving: c
// completed its handshake during the drain.
func (c *ServerConn) drainConn(target netip.AddrPort, arriving bool) {
	if arriving && c.stayDuringDrain(target) {
		return
	}
	if !c.wantsMove(target, true) || !c.drainTold.CompareAndSwap(false, true) {
		return
	}
	if err := c.Migrate(target); err != nil {
		c.s.log.Debug("drain: migrate", "remote", c.RemoteAddr(), "err", err)
		c.drainTold.Store(false)
	}
}

func (s *Server) snapshot() []*ServerConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*ServerConn, 0, len(s.conns))
	for sc := range s.conns {
		out = append(out, sc)
	}
	return out
}

// Stats returns a snapshot of the counters and live connections.
func (s *Server) Stats() Stats {
	st := Stats{
		HandshakesFull:    s.handshakesFull.Load(),
		HandshakesResumed: s.handshakesResumed.Load(),
		TokensIssued:      s.tokensIssued.Load(),
		TokensAccepted:    s.tokensAccepted.Load(),
		TokensRejected:    make(map[Reason]uint64, len(s.rejected)),
		NotificationsSent: s.notificationsSent.Load(),
		ReplayErrors:      s.replayErrors.Load(),
		Active:            map[Kind]int{KindAnycast: 0, KindUnicast: 0},
	}
	for r, c := range s.rejected {
		st.TokensRejected[r] = c.Load()
	}
	for _, sc := range s.snapshot() {
		st.Active[sc.kind]++
		if sc.ready() && sc.Capable() {
			st.ActiveCapable++
		}
	}
	return st
}

// ServerConn is one TLS connection accepted by a Server's listener. It is
// a net.Conn; the handshake runs on the first Read, Write or Handshake.
// The Server tracks it until Close (net/http's Server closes every
// connection it accepted).
type ServerConn struct {
	s    *Server
	kind Kind
	raw  net.Conn
	tc   *tls13.Conn

	capable   atomic.Bool // migration_support seen, or a migration_allowed ticket resumed
	done      atomic.Bool // handshake completed and counted
	hsFailed  atomic.Bool
	drainTold atomic.Bool // told to move by the Drain under way
	// lateMove is a MigrateAll target that arrived while the handshake
	// was still running; whoever swaps it out (MigrateAll or the end of
	// the handshake) acts on it, so it is acted on exactly once.
	lateMove  atomic.Pointer[netip.AddrPort]
	afterOnce sync.Once
	closeOnce sync.Once

	mu       sync.Mutex
	retarget netip.AddrPort // target of the next tokens (zero: the node's unicast)
}

// Kind reports which listener the connection came in on.
func (c *ServerConn) Kind() Kind { return c.kind }

// Capable reports whether the client can migrate (it sent
// migration_support, or resumed a migration_allowed ticket).
func (c *ServerConn) Capable() bool { return c.capable.Load() }

// TLS returns the underlying TLS connection, for inspection: read and
// write through the ServerConn, which counts the handshake.
func (c *ServerConn) TLS() *tls13.Conn { return c.tc }

// ConnectionState reports the TLS parameters.
func (c *ServerConn) ConnectionState() tls13.ConnectionState { return c.tc.ConnectionState() }

func (c *ServerConn) ready() bool { return c.done.Load() }

// stayDuringDrain: an anycast connection arriving during a Drain without
// target stays where the router sent it.
func (c *ServerConn) stayDuringDrain(target netip.AddrPort) bool {
	return !target.IsValid() && c.kind == KindAnycast
}

// capableHandshaking: the ClientHello offered migration, the handshake
// has neither completed nor failed.
func (c *ServerConn) capableHandshaking() bool {
	return c.Capable() && !c.done.Load() && !c.hsFailed.Load()
}

// Handshake runs the TLS handshake if it has not run yet.
func (c *ServerConn) Handshake() error { return c.HandshakeContext(context.Background()) }

// HandshakeContext runs the handshake; cancelling ctx aborts it.
func (c *ServerConn) HandshakeContext(ctx context.Context) error {
	if err := c.tc.HandshakeContext(ctx); err != nil {
		if !c.done.Load() && c.hsFailed.CompareAndSwap(false, true) {
			c.s.handshakeSettled()
		}
		return err
	}
	c.afterOnce.Do(c.afterHandshake)
	return nil
}

func (c *ServerConn) afterHandshake() {
	s := c.s
	resumed := c.tc.ConnectionState().DidResume
	if resumed {
		s.handshakesResumed.Add(1)
	} else {
		s.handshakesFull.Add(1)
	}
	capable := c.Capable()
	// Ready before the event: a listener may Migrate from it.
	c.done.Store(true)
	if f := s.cfg.Events.Handshake; f != nil {
		f(c.kind, resumed, capable)
	}
	if target, draining := s.drainingTo(); draining {
		c.drainConn(target, true)
		s.handshakeSettled()
		return
	}
	if t := c.lateMove.Swap(nil); t != nil && c.wantsMove(*t, false) {
		if err := c.Migrate(*t); err != nil {
			s.log.Debug("migrate", "remote", c.RemoteAddr(), "err", err)
		}
		return
	}
	// Draft-03 carries no token: the node asks an anycast client to move
	// right away, in its own record after the tickets.
	if s.cfg.Profile == ProfileDraft03 && capable && c.kind == KindAnycast {
		if err := c.sendMigrateRequest(s.cfg.Unicast); err != nil {
			s.log.Debug("migrate_request", "remote", c.RemoteAddr(), "err", err)
		}
	}
}

// Read reads application data.
func (c *ServerConn) Read(b []byte) (int, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	return c.tc.Read(b)
}

// Write writes application data.
func (c *ServerConn) Write(b []byte) (int, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	return c.tc.Write(b)
}

// Close closes the connection and stops tracking it.
func (c *ServerConn) Close() error {
	err := net.ErrClosed
	c.closeOnce.Do(func() {
		c.s.forget(c)
		if f := c.s.cfg.Events.ConnClosed; f != nil {
			f(c.kind, c.ready() && c.Capable())
		}
		if !c.tc.ConnectionState().HandshakeComplete {
			// tls13.Conn.Close races with a handshake still reading
			// (it frees the read buffer); mid-handshake there is no
			// close_notify to send anyway, so close the socket and let
			// the handshake fail on it.
			err = c.raw.Close()
			return
		}
		err = c.tc.Close()
	})
	return err
}

// LocalAddr is the address the client reached (VIP or unicast).
func (c *ServerConn) LocalAddr() net.Addr { return c.raw.LocalAddr() }

// RemoteAddr is the client's address.
func (c *ServerConn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }

// SetDeadline sets the read and write deadlines (see tls13.Conn).
func (c *ServerConn) SetDeadline(t time.Time) error { return c.tc.SetDeadline(t) }

// SetReadDeadline sets the read deadline; a timed-out read can be retried.
func (c *ServerConn) SetReadDeadline(t time.Time) error { return c.tc.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline.
func (c *ServerConn) SetWriteDeadline(t time.Time) error { return c.tc.SetWriteDeadline(t) }

func (c *ServerConn) localAddrPort() netip.AddrPort { return addrPortOf(c.raw.LocalAddr()) }

func addrPortOf(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort()
	}
	if a == nil {
		return netip.AddrPort{}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

func sameAddrPort(a, b netip.AddrPort) bool {
	return a.Addr().Unmap() == b.Addr().Unmap() && a.Port() == b.Port()
}

// currentTarget is what this connection's tokens name: where it was
// last told to go, else the target of a Drain under way, else this
// node's unicast address.
func (c *ServerConn) currentTarget() netip.AddrPort {
	c.mu.Lock()
	retarget := c.retarget
	c.mu.Unlock()
	if retarget.IsValid() {
		return retarget
	}
	if target, draining := c.s.drainingTo(); draining && target.IsValid() {
		return target
	}
	return c.s.cfg.Unicast
}

// Migrate asks this client to move. A fresh NewSessionTicket goes first
// (seed: its token names target if target is valid, else what this
// connection's tokens named so far; draft-03: migration_allowed), then
// migrate_notify (seed) or migrate_request{target} (draft-03; zero target:
// this node's unicast address). A client that did not offer
// migration_support is never told (ErrNotCapable).
func (c *ServerConn) Migrate(target netip.AddrPort) error {
	if !c.ready() {
		return ErrHandshakeIncomplete
	}
	if !c.Capable() {
		return ErrNotCapable
	}
	s := c.s
	// A fresh ticket goes first either way: a connection may outlive its
	// tokens (TokenLifetime) and tickets, and a re-target needs a token
	// naming the new target.
	// The target is kept on the connection (not only the Drain's): its
	// tokens keep naming it after a Drain returns.
	if s.cfg.Profile == ProfileSeed && target.IsValid() {
		c.mu.Lock()
		c.retarget = target
		c.mu.Unlock()
	}
	if err := c.tc.SendSessionTicket(); err != nil {
		return fmt.Errorf("migration: fresh ticket before the move: %w", err)
	}
	if s.cfg.Profile == ProfileDraft03 {
		if !target.IsValid() {
			target = s.cfg.Unicast
		}
		return c.sendMigrateRequest(target)
	}
	if err := c.tc.SendNotification(s.cp.Notify); err != nil {
		return fmt.Errorf("migration: migrate_notify: %w", err)
	}
	c.notified()
	return nil
}

func (c *ServerConn) sendMigrateRequest(target netip.AddrPort) error {
	mr := &MigrateRequest{}
	// A target equal to where the client already is means "leave this
	// node": the empty target leaves the choice to the client's policy.
	if !sameAddrPort(target, c.localAddrPort()) {
		mr.Target = FormatTarget(target)
	}
	body, err := mr.Marshal()
	if err != nil {
		return err
	}
	if err := c.tc.SendHandshakeMessage(c.s.cp.Request, body); err != nil {
		return fmt.Errorf("migration: migrate_request: %w", err)
	}
	c.notified()
	return nil
}

func (c *ServerConn) notified() {
	c.s.notificationsSent.Add(1)
	if f := c.s.cfg.Events.NotifySent; f != nil {
		f(c.kind)
	}
}

// onClientHello decides whether the client is capable and checks a
// presented token; a rejected token turns the resumption into a full
// handshake (never a broken connection, never a silent resumption).
func (c *ServerConn) onClientHello(info *tls13.ClientHelloInfo) {
	s := c.s
	supported := false
	var tokenRaw []byte
	hasToken := false
	for _, e := range info.Extensions {
		switch e.Type {
		case s.cp.Support:
			supported = ParseMigrationSupport(e.Data) == nil
		case s.cp.Token:
			tokenRaw, hasToken = e.Data, true
		}
	}
	var sealed *ticketApp
	if info.Resumption != nil {
		sealed = parseTicketApp(info.Resumption.AppData)
	}
	c.capable.Store(supported || (sealed != nil && sealed.allowed))

	if hasToken {
		in := VerifyInput{Raw: tokenRaw, Local: addrPortOf(info.Conn.LocalAddr()), Now: s.now()}
		if info.Resumption != nil && sealed != nil && len(sealed.sessionID) > 0 {
			in.PSK, in.SessionID = info.Resumption.PSK, sealed.sessionID
		}
		ctx, cancel := context.WithTimeout(context.Background(), verifyTimeout)
		_, err := VerifyToken(ctx, in, s.replay)
		cancel()
		if err != nil {
			reason := ReasonMalformed
			var re *RejectError
			if errors.As(err, &re) {
				reason = re.Reason
			}
			s.countRejected(reason, err)
			info.RejectResumption = true
			s.log.Debug("migration token rejected", "reason", string(reason), "remote", info.Conn.RemoteAddr(), "err", err)
			return
		}
		s.countAccepted()
		return
	}
	if sealed != nil && sealed.allowed && c.kind == KindUnicast {
		s.countAccepted()
	}
}

// ticketExtensions adds the migration element of s's profile to a
// capable client's ticket and wraps AppData in the versioned envelope.
func (c *ServerConn) ticketExtensions(t *tls13.ServerTicket, exts []tls13.Extension) []tls13.Extension {
	s := c.s
	app := ticketApp{user: t.AppData}
	if c.Capable() {
		switch s.cfg.Profile {
		case ProfileSeed:
			if target, draining := s.drainingTo(); draining && !c.ready() && c.stayDuringDrain(target) {
				break // see Drain: no token to this draining node's unicast address
			}
			if ext, sid, ok := c.issueToken(t); ok {
				exts = append(exts, ext)
				app.sessionID = sid
			}
		case ProfileDraft03:
			exts = append(exts, tls13.Extension{Type: s.cp.Allowed})
			app.allowed = true
		}
	}
	t.AppData = app.marshal()
	return exts
}

func (c *ServerConn) issueToken(t *tls13.ServerTicket) (tls13.Extension, []byte, bool) {
	s := c.s
	sid := make([]byte, sessionIDLen)
	if _, err := io.ReadFull(s.rand(), sid); err != nil {
		s.log.Error("session id", "err", err)
		return tls13.Extension{}, nil, false
	}
	now := s.now()
	expiry := now.Add(s.tokenLifetime)
	if end := now.Add(t.Lifetime); t.Lifetime > 0 && end.Before(expiry) {
		expiry = end
	}
	tok, err := IssueToken(t.PSK, c.currentTarget(), sid, expiry, s.base.Rand)
	if err != nil {
		s.log.Error("issue token", "err", err)
		return tls13.Extension{}, nil, false
	}
	raw, err := tok.Marshal()
	if err != nil {
		s.log.Error("marshal token", "err", err)
		return tls13.Extension{}, nil, false
	}
	s.tokensIssued.Add(1)
	if f := s.cfg.Events.TokenIssued; f != nil {
		f()
	}
	return tls13.Extension{Type: s.cp.Token, Data: raw}, sid, true
}

// sessionIDLen is the size of the random session binding sealed into a
// ticket and carried by its token.
const sessionIDLen = 32

// ticketApp is what the Server seals into each ticket's AppData:
//
//	version(1)=1 | flags(1) bit0 migration_allowed | session_id<0..255> | caller's AppData (rest)
type ticketApp struct {
	allowed   bool
	sessionID []byte
	user      []byte
}

const ticketAppVersion = 1

func (a *ticketApp) marshal() []byte {
	out := make([]byte, 0, 3+len(a.sessionID)+len(a.user))
	var flags byte
	if a.allowed {
		flags |= 1
	}
	out = append(out, ticketAppVersion, flags, byte(len(a.sessionID)))
	out = append(out, a.sessionID...)
	return append(out, a.user...)
}

// parseTicketApp returns nil for AppData this Server did not write.
func parseTicketApp(b []byte) *ticketApp {
	if len(b) < 3 || b[0] != ticketAppVersion || b[1]&^1 != 0 {
		return nil
	}
	n := int(b[2])
	if len(b) < 3+n || (n != 0 && n != sessionIDLen) {
		return nil
	}
	return &ticketApp{allowed: b[1]&1 != 0, sessionID: b[3 : 3+n], user: b[3+n:]}
}
