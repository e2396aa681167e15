package tls13

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Conn is a TLS 1.3 connection; it implements net.Conn. Read and Write
// may be called from different goroutines; the hooks that receive
// post-handshake messages and notifications run inside Read.
type Conn struct {
	conn     net.Conn
	config   *Config
	isClient bool

	handshakeMu   sync.Mutex
	handshakeErr  error
	handshakeDone atomic.Bool
	closed        atomic.Bool
	stateReady    atomic.Bool // negotiated fields below are final

	// negotiated state, written by the handshake only
	suite            *cipherSuite
	group            tls.CurveID
	didResume        bool
	peerCerts        []*x509.Certificate
	verifiedChains   [][]*x509.Certificate
	alpn             string
	serverName       string
	sessionAppData   []byte
	peerExts         []Extension
	resMaster        []byte        // resumption_master_secret
	ticketNonce      atomic.Uint64 // server: nonce counter for NewSessionTicket
	peerTakesTickets bool          // server: the client offered psk_dhe_ke
	clientRandom     []byte        // key log

	// read side, guarded by inMu
	inMu       sync.Mutex
	in         halfConn
	raw        []byte  // buffered bytes from conn: raw[rawStart:rawEnd]
	rawp       *[]byte // raw's pool handle
	rawStart   int
	rawEnd     int
	input      []byte // decrypted application data not yet returned
	hsBuf      []byte // handshake bytes not yet consumed
	readErr    error
	ccsAllowed bool // a compatibility ChangeCipherSpec may arrive now (once)
	// uselessInRow counts records in a row that delivered nothing.
	uselessInRow int
	// skipEarlyData (server): the client offered early_data, which this
	// server never accepts. Until its first record decrypts (or its
	// second ClientHello arrives, after a HelloRetryRequest), application
	// data records it cannot read are 0-RTT data and are skipped, up to
	// earlySkipBudget bytes (RFC 8446 §4.2.10).
	skipEarlyData   bool
	earlySkipBudget int
	// allowPlainAlert (server): between switching to the client's
	// handshake key and the first record protected with it, an
	// unprotected alert is read as an alert. A client that refuses our
	// certificate may send it so; OpenSSL reads it the same way.
	allowPlainAlert bool
	// post-handshake message allowance (token bucket)
	postHSStarted bool
	postHSTokens  float64
	postHSLast    time.Time

	// write side, guarded by outMu
	outMu           sync.Mutex
	out             halfConn
	outBuf          []byte
	sendBuf         []byte // buffered handshake flight
	buffering       bool
	writeErr        error
	closeNotifySent bool
	firstRecord     bool // the next unprotected record is the first ClientHello
	// rekeyAfter overrides keyUpdateAfter (tests set it small; the
	// sequence number itself must match the peer's, so it cannot be faked).
	rekeyAfter uint64
}

// NetConn returns the underlying connection.
func (c *Conn) NetConn() net.Conn { return c.conn }

// LocalAddr returns the underlying connection's local address.
func (c *Conn) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// RemoteAddr returns the underlying connection's remote address.
func (c *Conn) RemoteAddr() net.Addr { return c.conn.RemoteAddr() }

// SetDeadline sets both deadlines on the underlying connection. A read
// that times out can be retried; a write that times out leaves the
// connection unusable for writing (a record may be half sent).
func (c *Conn) SetDeadline(t time.Time) error { return c.conn.SetDeadline(t) }

// SetReadDeadline sets the read deadline on the underlying connection.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.conn.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline on the underlying connection.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.conn.SetWriteDeadline(t) }

// Handshake runs the handshake if it has not run yet.
func (c *Conn) Handshake() error { return c.HandshakeContext(context.Background()) }

// HandshakeContext runs the handshake; cancelling ctx closes the
// connection and aborts it.
func (c *Conn) HandshakeContext(ctx context.Context) error {
	if c.handshakeDone.Load() {
		return nil
	}
	c.handshakeMu.Lock()
	defer c.handshakeMu.Unlock()
	if c.handshakeErr != nil {
		return c.handshakeErr
	}
	if c.handshakeDone.Load() {
		return nil
	}
	if c.config == nil {
		c.handshakeErr = errors.New("tls13: nil Config")
		return c.handshakeErr
	}
	if err := c.config.check(); err != nil {
		c.handshakeErr = err
		return err
	}
	if done := ctx.Done(); done != nil {
		stop := make(chan struct{})
		finished := make(chan struct{})
		go func() {
			defer close(finished)
			select {
			case <-done:
				c.conn.Close()
			case <-stop:
			}
		}()
		defer func() { close(stop); <-finished }()
	}
	// The handshake reads records as Read does, so it holds inMu for its
	// whole run: a Close from another goroutine must not give the read
	// buffer back while the handshake is still filling it.
	c.inMu.Lock()
	var err error
	if c.isClient {
		err = c.clientHandshake()
	} else {
		err = c.serverHandshake()
	}
	if err == nil {
		c.outMu.Lock()
		err = c.flushLocked()
		c.outMu.Unlock()
	}
	if err == nil {
		c.releaseRaw()
	}
	c.inMu.Unlock()
	if ctxErr := ctx.Err(); err != nil && ctxErr != nil {
		err = ctxErr
	}
	if err != nil {
		c.handshakeErr = err
		return err
	}
	c.stateReady.Store(true)
	c.handshakeDone.Store(true)
	return nil
}

// ConnectionState reports the negotiated parameters.
func (c *Conn) ConnectionState() ConnectionState {
	st := ConnectionState{HandshakeComplete: c.handshakeDone.Load()}
	if !c.stateReady.Load() {
		return st
	}
	st.Version = VersionTLS13
	st.CipherSuite = c.suite.id
	st.Group = c.group
	st.DidResume = c.didResume
	st.PeerCertificates = c.peerCerts
	st.VerifiedChains = c.verifiedChains
	st.NegotiatedProtocol = c.alpn
	st.ServerName = c.serverName
	st.SessionAppData = c.sessionAppData
	st.PeerExtensions = c.peerExts
	return st
}

// ---- application data ----

var errWriteClosed = errors.New("tls13: write side closed (close_notify sent)")

// Read reads application data, running the handshake first if needed.
func (c *Conn) Read(b []byte) (int, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	if len(b) == 0 {
		return 0, nil
	}
	c.inMu.Lock()
	defer c.inMu.Unlock()
	for len(c.input) == 0 {
		typ, data, err := c.readRecord()
		if err != nil {
			return 0, err
		}
		switch typ {
		case recordTypeApplicationData:
			if len(c.hsBuf) > 0 {
				return 0, c.abort(AlertUnexpectedMessage, "application data inside a fragmented handshake message")
			}
			if len(data) == 0 {
				// Legal (§5.4), but a run of them is a busy loop.
				if err := c.countUseless(); err != nil {
					return 0, err
				}
				continue
			}
			c.uselessInRow = 0
			c.input = data
		case recordTypeAlert:
			if len(c.hsBuf) > 0 {
				return 0, c.abort(AlertUnexpectedMessage, "alert inside a fragmented handshake message")
			}
			if err := c.handleAlert(data); err != nil {
				return 0, err
			}
		case recordTypeHandshake:
			c.uselessInRow = 0
			c.hsBuf = append(c.hsBuf, data...)
			if err := c.handlePostHandshake(); err != nil {
				return 0, err
			}
		}
	}
	n := copy(b, c.input)
	c.input = c.input[n:]
	return n, nil
}

// Write sends application data, running the handshake first if needed.
func (c *Conn) Write(b []byte) (int, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.writeErr != nil {
		return 0, c.writeErr
	}
	n := 0
	for len(b) > 0 {
		m := len(b)
		if m > maxPlaintext {
			m = maxPlaintext
		}
		if err := c.writeOneRecordLocked(recordTypeApplicationData, b[:m]); err != nil {
			return n, err
		}
		n += m
		b = b[m:]
	}
	return n, nil
}

// Close sends close_notify (when the handshake completed and no write is
// in progress) and closes the underlying connection.
func (c *Conn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return net.ErrClosed
	}
	if c.handshakeDone.Load() && c.outMu.TryLock() {
		if !c.closeNotifySent && c.writeErr == nil {
			c.closeNotifySent = true
			// Do not block forever on a peer that does not read.
			c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			c.sendAlertLocked(AlertCloseNotify, 1)
			c.writeErr = errWriteClosed
		}
		c.outMu.Unlock()
	}
	err := c.conn.Close()
	// Give the read buffer back unless a Read is still running (it will
	// fail on the closed connection; the GC takes the buffer then).
	if c.inMu.TryLock() {
		c.input = nil
		c.rawStart = c.rawEnd
		c.releaseRaw()
		c.inMu.Unlock()
	}
	return err
}

// CloseWrite sends close_notify; the peer sees EOF and the connection can
// still be read (until the peer replies with its own close_notify).
func (c *Conn) CloseWrite() error {
	if !c.handshakeDone.Load() {
		return errors.New("tls13: CloseWrite before the handshake completed")
	}
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.closeNotifySent {
		return nil
	}
	if c.writeErr != nil {
		return c.writeErr
	}
	c.closeNotifySent = true
	err := c.sendAlertLocked(AlertCloseNotify, 1)
	c.writeErr = errWriteClosed
	return err
}

// ---- helpers ----

func (c *Conn) randReader() io.Reader {
	if c.config.Rand != nil {
		return c.config.Rand
	}
	return rand.Reader
}

func (c *Conn) randBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	r := c.config.Rand
	if r == nil {
		r = rand.Reader
	}
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

func (c *Conn) keyLog(label string, secret []byte) {
	w := c.config.KeyLogWriter
	if w == nil {
		return
	}
	line := fmt.Sprintf("%s %s %s\n", label, hex.EncodeToString(c.clientRandom), hex.EncodeToString(secret))
	w.Write([]byte(line))
}
