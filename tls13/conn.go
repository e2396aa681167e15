package tls13

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
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

// halfConn is one direction's record protection.
type halfConn struct {
	aead   cipher.AEAD
	iv     [12]byte
	nonce  [12]byte
	seq    uint64
	secret []byte
	suite  *cipherSuite
}

func (h *halfConn) setTrafficSecret(s *cipherSuite, secret []byte) error {
	key, iv := s.trafficKey(secret)
	aead, err := s.newAEAD(key)
	clear(key)
	if err != nil {
		return err
	}
	h.aead, h.suite, h.secret, h.seq = aead, s, secret, 0
	copy(h.iv[:], iv)
	return nil
}

// nextNonce returns iv XOR seq (RFC 8446 §5.3) and advances seq.
func (h *halfConn) nextNonce() ([]byte, error) {
	if h.seq == ^uint64(0) {
		return nil, errSeqOverflow
	}
	h.nonce = h.iv
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], h.seq)
	for i := 0; i < 8; i++ {
		h.nonce[4+i] ^= s[i]
	}
	h.seq++
	return h.nonce[:], nil
}

// Client returns a client-side Conn over conn. The handshake runs on the
// first Read, Write or Handshake.
func Client(conn net.Conn, config *Config) *Conn {
	return &Conn{conn: conn, config: config, isClient: true, firstRecord: true}
}

// Server returns a server-side Conn over conn.
func Server(conn net.Conn, config *Config) *Conn {
	return &Conn{conn: conn, config: config}
}

// Dial connects to addr and runs the client handshake. If
// config.ServerName is empty, the host part of addr is used.
func Dial(ctx context.Context, network, addr string, config *Config) (*Conn, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cfg := config
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err == nil {
			c := *config
			c.ServerName = host
			cfg = &c
		}
	}
	c := Client(raw, cfg)
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}

type listener struct {
	net.Listener
	config *Config
}

// NewListener wraps inner so that Accept returns server-side *Conn values
// (as net.Conn); the handshake runs on first use.
func NewListener(inner net.Listener, config *Config) net.Listener {
	return &listener{Listener: inner, config: config}
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Server(c, l.config), nil
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
	if ctxErr := ctx.Err(); err != nil && ctxErr != nil {
		err = ctxErr
	}
	if err != nil {
		c.handshakeErr = err
		return err
	}
	c.inMu.Lock()
	c.releaseRaw()
	c.inMu.Unlock()
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

// ---- record reading ----

// rawBufSize holds one maximal record plus read-ahead. A whole server
// flight (tickets included) must fit, so that on an unbuffered transport
// such as net.Pipe the client drains it before writing its own flight.
const rawBufSize = recordHeaderLen + maxCiphertext + 4096

// rawPool recycles read buffers between handshakes: a connection whose
// handshake left nothing buffered gives its buffer back and takes one
// again on its first application read. During data transfer it keeps it
// (a Get/Put per record would cost more than it saves).
var rawPool = sync.Pool{New: func() any { b := make([]byte, rawBufSize); return &b }}

// releaseRaw returns the read buffer to the pool when nothing in it is
// still referenced (no buffered bytes, no unread plaintext). inMu or the
// handshake must be held.
func (c *Conn) releaseRaw() {
	if c.raw == nil || c.rawStart != c.rawEnd || len(c.input) != 0 {
		return
	}
	p := c.rawp
	c.raw, c.rawp, c.rawStart, c.rawEnd, c.input = nil, nil, 0, 0, nil
	rawPool.Put(p)
}

// fill makes at least n bytes available in raw[rawStart:rawEnd].
func (c *Conn) fill(n int) error {
	if c.raw == nil {
		c.rawp = rawPool.Get().(*[]byte)
		c.raw = *c.rawp
		c.rawStart, c.rawEnd = 0, 0
	}
	if c.rawEnd-c.rawStart >= n {
		return nil
	}
	if c.rawStart == c.rawEnd {
		// Nothing buffered: start over, so one Read can take a whole
		// record (earlier records' plaintext has been consumed).
		c.rawStart, c.rawEnd = 0, 0
	}
	if c.rawStart+n > len(c.raw) {
		copy(c.raw, c.raw[c.rawStart:c.rawEnd])
		c.rawEnd -= c.rawStart
		c.rawStart = 0
	}
	for c.rawEnd-c.rawStart < n {
		m, err := c.conn.Read(c.raw[c.rawEnd:])
		c.rawEnd += m
		if c.rawEnd-c.rawStart >= n {
			return nil
		}
		if err != nil {
			if err == io.EOF && c.rawEnd-c.rawStart > 0 {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// readRecord returns the content type and plaintext of the next record,
// skipping compatibility ChangeCipherSpec records and rejected 0-RTT
// records. The plaintext aliases the read buffer until the next call.
// Protocol violations send an alert.
func (c *Conn) readRecord() (uint8, []byte, error) {
	for {
		if c.readErr != nil {
			return 0, nil, c.readErr
		}
		if err := c.fill(recordHeaderLen); err != nil {
			c.setReadErrUnlessTimeout(err)
			return 0, nil, err
		}
		hdr := c.raw[c.rawStart : c.rawStart+recordHeaderLen]
		typ := hdr[0]
		length := int(hdr[3])<<8 | int(hdr[4])
		skippable := c.in.aead == nil && c.skipEarlyData && typ == recordTypeApplicationData
		if c.in.aead == nil && typ != recordTypeHandshake && typ != recordTypeAlert && typ != recordTypeChangeCipherSpec && !skippable {
			if typ == recordTypeApplicationData {
				return 0, nil, c.abort(AlertUnexpectedMessage, "unprotected application data")
			}
			return 0, nil, c.abort(AlertUnexpectedMessage, "unknown record type %d", typ)
		}
		if hdr[1] != 3 {
			return 0, nil, c.abort(AlertProtocolVersion, "record version %#02x%02x is not TLS", hdr[1], hdr[2])
		}
		if length > maxCiphertext || (c.in.aead == nil && length > maxPlaintext && !skippable) {
			return 0, nil, c.abort(AlertRecordOverflow, "record of %d bytes", length)
		}
		if err := c.fill(recordHeaderLen + length); err != nil {
			c.setReadErrUnlessTimeout(err)
			return 0, nil, err
		}
		rec := c.raw[c.rawStart : c.rawStart+recordHeaderLen+length]
		c.rawStart += recordHeaderLen + length
		hdr, payload := rec[:recordHeaderLen], rec[recordHeaderLen:]

		if typ == recordTypeChangeCipherSpec {
			if !c.ccsAllowed || length != 1 || payload[0] != 1 {
				return 0, nil, c.abort(AlertUnexpectedMessage, "unexpected ChangeCipherSpec")
			}
			// One per handshake (RFC 8446 §5 and Appendix D.4): more would
			// let a peer keep the handshake alive with no-op records.
			c.ccsAllowed = false
			continue
		}
		if skippable {
			// After a HelloRetryRequest the client's 0-RTT records still
			// arrive before its second ClientHello (§4.2.10).
			if err := c.skipEarlyRecord(length); err != nil {
				return 0, nil, err
			}
			continue
		}
		if c.in.aead == nil {
			if length == 0 {
				return 0, nil, c.abort(AlertUnexpectedMessage, "empty %d record", typ)
			}
			return typ, payload, nil
		}
		if typ != recordTypeApplicationData {
			if typ == recordTypeAlert && c.allowPlainAlert && length == 2 {
				return typ, payload, nil
			}
			return 0, nil, c.abort(AlertUnexpectedMessage, "unprotected record of type %d after keys are in use", typ)
		}
		if len(payload) < c.in.aead.Overhead() {
			if c.skipEarlyData {
				if err := c.skipEarlyRecord(length); err != nil {
					return 0, nil, err
				}
				continue
			}
			return 0, nil, c.abort(AlertBadRecordMAC, "record shorter than the AEAD tag")
		}
		nonce, err := c.in.nextNonce()
		if err != nil {
			return 0, nil, c.abort(AlertInternalError, "%v", err)
		}
		pt, err := c.in.aead.Open(payload[:0], nonce, payload, hdr)
		if err != nil {
			if c.skipEarlyData {
				// A 0-RTT record under a key we do not have: it consumed
				// no sequence number of the handshake key.
				c.in.seq--
				if err := c.skipEarlyRecord(length); err != nil {
					return 0, nil, err
				}
				continue
			}
			return 0, nil, c.abort(AlertBadRecordMAC, "record authentication failed")
		}
		c.skipEarlyData, c.allowPlainAlert = false, false
		// TLSInnerPlaintext (content, type byte, padding) is at most
		// 2^14 + 1 bytes (§5.4), whatever the padding.
		if len(pt) > maxPlaintext+1 {
			return 0, nil, c.abort(AlertRecordOverflow, "inner plaintext of %d bytes", len(pt))
		}
		i := len(pt) - 1
		for i >= 0 && pt[i] == 0 {
			i--
		}
		if i < 0 {
			return 0, nil, c.abort(AlertUnexpectedMessage, "inner plaintext without content type")
		}
		inner := pt[i]
		pt = pt[:i]
		switch inner {
		case recordTypeHandshake, recordTypeAlert:
			if len(pt) == 0 {
				return 0, nil, c.abort(AlertUnexpectedMessage, "empty protected %d record", inner)
			}
		case recordTypeApplicationData:
		default:
			return 0, nil, c.abort(AlertUnexpectedMessage, "protected record of type %d", inner)
		}
		return inner, pt, nil
	}
}

// skipEarlyRecord accounts for one skipped 0-RTT record of n bytes.
func (c *Conn) skipEarlyRecord(n int) error {
	if n > c.earlySkipBudget {
		return c.abort(AlertUnexpectedMessage, "more than %d bytes of early data, which this server does not accept", maxEarlyDataSkip)
	}
	c.earlySkipBudget -= n
	return nil
}

// countUseless records a record that delivered nothing and refuses a run
// longer than maxUselessRecords.
func (c *Conn) countUseless() error {
	c.uselessInRow++
	if c.uselessInRow > maxUselessRecords {
		return c.abort(AlertUnexpectedMessage, "more than %d records in a row without content", maxUselessRecords)
	}
	return nil
}

var errWriteClosed = errors.New("tls13: write side closed (close_notify sent)")

// readHandshakeMsg returns the next complete handshake message (header
// included), reading records as needed. During the handshake only
// handshake records (and compatibility CCS) may arrive.
func (c *Conn) readHandshakeMsg(maxSize int) ([]byte, error) {
	for {
		if len(c.hsBuf) >= 4 {
			n := int(c.hsBuf[1])<<16 | int(c.hsBuf[2])<<8 | int(c.hsBuf[3])
			if limit := c.handshakeLimit(c.hsBuf[0], maxSize); n > limit {
				maxSize = limit
				// Refused at the header, before buffering it: a message
				// longer than any valid one of its kind cannot decode
				// (§6.2 decode_error).
				return nil, c.abort(AlertDecodeError, "handshake message of %d bytes exceeds the limit of %d", n, maxSize)
			}
			if len(c.hsBuf) >= 4+n {
				msg := make([]byte, 4+n)
				copy(msg, c.hsBuf)
				c.hsBuf = c.hsBuf[:copy(c.hsBuf, c.hsBuf[4+n:])]
				return msg, nil
			}
		}
		typ, data, err := c.readRecord()
		if err != nil {
			return nil, err
		}
		switch typ {
		case recordTypeHandshake:
			c.uselessInRow = 0
			c.hsBuf = append(c.hsBuf, data...)
		case recordTypeAlert:
			if len(c.hsBuf) > 0 {
				return nil, c.abort(AlertUnexpectedMessage, "alert inside a fragmented handshake message")
			}
			if err := c.handleAlert(data); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
					c.readErr = err
				}
				return nil, err
			}
		default:
			return nil, c.abort(AlertUnexpectedMessage, "record type %d during the handshake", typ)
		}
	}
}

// handshakeLimit is the largest body of a handshake message of type typ
// that can be valid here; maxSize is the caller's general bound.
func (c *Conn) handshakeLimit(typ uint8, maxSize int) int {
	switch {
	case typ == typeClientHello && !c.isClient:
		return maxClientHelloSize
	case typ == typeCertificate && c.isClient:
		return maxCertificateSize
	case typ == typeFinished && c.in.suite != nil:
		return c.in.suite.hashLen // verify_data is exactly one hash (§4.4.4)
	}
	return maxSize
}

// setReadKey switches read protection; a key change must fall on a record
// boundary (§5.1), so no handshake bytes may be pending.
func (c *Conn) setReadKey(s *cipherSuite, secret []byte) error {
	if len(c.hsBuf) != 0 {
		return c.abort(AlertUnexpectedMessage, "key change not on a record boundary")
	}
	if err := c.in.setTrafficSecret(s, secret); err != nil {
		return c.abort(AlertInternalError, "%v", err)
	}
	return nil
}

func (c *Conn) setWriteKey(s *cipherSuite, secret []byte) error {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	return c.out.setTrafficSecret(s, secret)
}

// ---- record writing ----

// writeRecordLocked protects and sends one or more records of typ holding
// data; outMu must be held. In a buffered flight the bytes go to sendBuf.
func (c *Conn) writeRecordLocked(typ uint8, data []byte) error {
	for first := true; first || len(data) > 0; first = false {
		n := len(data)
		if n > maxPlaintext {
			n = maxPlaintext
		}
		if err := c.writeOneRecordLocked(typ, data[:n]); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

func (c *Conn) writeOneRecordLocked(typ uint8, frag []byte) error {
	need := recordHeaderLen + len(frag) + 1 + 16
	if cap(c.outBuf) < need {
		// Small until bulk data needs a full record; then full once.
		n := 2048
		if need > n {
			n = recordHeaderLen + maxPlaintext + 1 + 16
		}
		c.outBuf = make([]byte, 0, n)
	}
	rec := c.outBuf[:recordHeaderLen]
	if c.out.aead == nil {
		vers := uint16(0x0303)
		if c.firstRecord {
			vers = 0x0301 // the initial ClientHello (§5.1)
			c.firstRecord = false
		}
		rec[0], rec[1], rec[2] = typ, byte(vers>>8), byte(vers)
		rec[3], rec[4] = byte(len(frag)>>8), byte(len(frag))
		rec = append(rec, frag...)
	} else {
		limit := c.rekeyAfter
		if limit == 0 {
			limit = keyUpdateAfter
		}
		if c.out.seq >= limit && typ == recordTypeApplicationData && c.handshakeDone.Load() {
			if err := c.sendKeyUpdateLocked(false); err != nil {
				return err
			}
			rec = c.outBuf[:recordHeaderLen]
		}
		nonce, err := c.out.nextNonce()
		if err != nil {
			return err
		}
		sealedLen := len(frag) + 1 + c.out.aead.Overhead()
		rec[0], rec[1], rec[2] = recordTypeApplicationData, 3, 3
		rec[3], rec[4] = byte(sealedLen>>8), byte(sealedLen)
		rec = append(rec, frag...)
		rec = append(rec, typ)
		rec = c.out.aead.Seal(rec[:recordHeaderLen], nonce, rec[recordHeaderLen:], rec[:recordHeaderLen])
	}
	c.outBuf = rec[:0]
	if c.buffering {
		c.sendBuf = append(c.sendBuf, rec...)
		return nil
	}
	if _, err := c.conn.Write(rec); err != nil {
		c.writeErr = err
		return err
	}
	return nil
}

// flushLocked sends the buffered flight.
func (c *Conn) flushLocked() error {
	c.buffering = false
	if len(c.sendBuf) == 0 {
		return nil
	}
	_, err := c.conn.Write(c.sendBuf)
	c.sendBuf = c.sendBuf[:0]
	if err != nil {
		c.writeErr = err
	}
	return err
}

// writeHandshake sends (or buffers) a handshake message.
func (c *Conn) writeHandshake(msg []byte) error {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.writeErr != nil {
		return c.writeErr
	}
	return c.writeRecordLocked(recordTypeHandshake, msg)
}

func (c *Conn) writeCCS() error {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	saved := c.out.aead
	c.out.aead = nil // CCS always travels unprotected
	err := c.writeOneRecordLocked(recordTypeChangeCipherSpec, []byte{1})
	c.out.aead = saved
	return err
}

func (c *Conn) startFlight() {
	c.outMu.Lock()
	c.buffering = true
	c.outMu.Unlock()
}

func (c *Conn) flush() error {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	return c.flushLocked()
}

// ---- application data ----

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

// SendNotification sends a warning-level alert that does not close the
// connection. desc must be registered in Config.NotificationAlerts, and
// the peer must have agreed to receive it (unknown alerts are fatal).
func (c *Conn) SendNotification(desc uint8) error {
	if !c.config.isNotification(desc) {
		return ErrNotNotification
	}
	if err := c.Handshake(); err != nil {
		return err
	}
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.writeErr != nil {
		return c.writeErr
	}
	return c.writeRecordLocked(recordTypeAlert, []byte{1, desc})
}

// SendHandshakeMessage sends a post-handshake message of a type registered
// in Config.HandshakeMessageTypes (e.g. draft-03 migrate_request, 0xFD).
func (c *Conn) SendHandshakeMessage(typ uint8, body []byte) error {
	if !c.config.isRegisteredType(typ) {
		return ErrNotRegistered
	}
	if len(body) > maxPostHandshakeSize-4 {
		return errors.New("tls13: handshake message too large")
	}
	if err := c.Handshake(); err != nil {
		return err
	}
	msg := make([]byte, 4+len(body))
	msg[0], msg[1], msg[2], msg[3] = typ, byte(len(body)>>16), byte(len(body)>>8), byte(len(body))
	copy(msg[4:], body)
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.writeErr != nil {
		return c.writeErr
	}
	return c.writeRecordLocked(recordTypeHandshake, msg)
}

// SendKeyUpdate rekeys the sending direction; with requestPeer the peer is
// asked to rekey too (update_requested).
func (c *Conn) SendKeyUpdate(requestPeer bool) error {
	if err := c.Handshake(); err != nil {
		return err
	}
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.writeErr != nil {
		return c.writeErr
	}
	return c.sendKeyUpdateLocked(requestPeer)
}

func (c *Conn) sendKeyUpdateLocked(requestPeer bool) error {
	m := keyUpdateMsg{}
	if requestPeer {
		m.requestUpdate = 1
	}
	// Write under the old key, then switch.
	if err := c.writeOneRecordLocked(recordTypeHandshake, m.marshal()); err != nil {
		return err
	}
	return c.out.setTrafficSecret(c.out.suite, c.out.suite.nextTrafficSecret(c.out.secret))
}

// ---- post-handshake messages ----

func (c *Conn) handlePostHandshake() error {
	for len(c.hsBuf) >= 4 {
		n := int(c.hsBuf[1])<<16 | int(c.hsBuf[2])<<8 | int(c.hsBuf[3])
		if n > maxPostHandshakeSize {
			return c.abort(AlertUnexpectedMessage, "post-handshake message of %d bytes", n)
		}
		if len(c.hsBuf) < 4+n {
			return nil
		}
		if !c.takePostHandshakeAllowance() {
			return c.abort(AlertUnexpectedMessage, "more than %d post-handshake messages per %v", c.config.maxPostHandshakeMessages(), postHandshakeWindow)
		}
		msg := make([]byte, 4+n)
		copy(msg, c.hsBuf)
		c.hsBuf = c.hsBuf[:copy(c.hsBuf, c.hsBuf[4+n:])]
		if err := c.handlePostHandshakeMsg(msg); err != nil {
			return err
		}
	}
	return nil
}

// takePostHandshakeAllowance spends one message of the peer's
// post-handshake allowance: a token bucket of MaxPostHandshakeMessages,
// refilled at that many per postHandshakeWindow of Config.Time.
func (c *Conn) takePostHandshakeAllowance() bool {
	now := c.config.time()
	capacity := float64(c.config.maxPostHandshakeMessages())
	if !c.postHSStarted {
		c.postHSStarted, c.postHSTokens = true, capacity
	} else if elapsed := now.Sub(c.postHSLast); elapsed > 0 {
		c.postHSTokens = min(capacity, c.postHSTokens+capacity*elapsed.Seconds()/postHandshakeWindow.Seconds())
	}
	c.postHSLast = now
	if c.postHSTokens < 1 {
		return false
	}
	c.postHSTokens--
	return true
}

func (c *Conn) handlePostHandshakeMsg(msg []byte) error {
	switch typ := msg[0]; {
	case typ == typeNewSessionTicket && c.isClient:
		return c.handleNewSessionTicket(msg)
	case typ == typeKeyUpdate:
		var m keyUpdateMsg
		if !m.unmarshal(msg) {
			return c.abort(AlertDecodeError, "malformed KeyUpdate")
		}
		if m.requestUpdate > 1 {
			return c.abort(AlertIllegalParameter, "KeyUpdate request_update %d", m.requestUpdate)
		}
		if err := c.setReadKey(c.in.suite, c.in.suite.nextTrafficSecret(c.in.secret)); err != nil {
			return err
		}
		if m.requestUpdate == 1 {
			c.outMu.Lock()
			defer c.outMu.Unlock()
			if c.writeErr != nil {
				return nil // our side is closed; nothing to rekey
			}
			if err := c.sendKeyUpdateLocked(false); err != nil {
				return err
			}
		}
		return nil
	case c.config.isRegisteredType(typ):
		if c.config.OnHandshakeMessage == nil {
			return nil
		}
		if err := c.config.OnHandshakeMessage(c, typ, msg[4:]); err != nil {
			return c.abort(AlertUnexpectedMessage, "handshake message %d rejected: %v", typ, err)
		}
		return nil
	default:
		return c.abort(AlertUnexpectedMessage, "post-handshake message of type %d", typ)
	}
}

func (c *Conn) handleNewSessionTicket(msg []byte) error {
	var m newSessionTicketMsg
	if !m.unmarshal(msg) {
		return c.abort(AlertDecodeError, "malformed NewSessionTicket")
	}
	if m.duplicateExtension {
		return c.abort(AlertIllegalParameter, "duplicate extension in NewSessionTicket")
	}
	for _, e := range m.extensions {
		if e.Type == extEarlyData || isGREASE(e.Type) {
			continue
		}
		allowed := false
		for _, t := range c.config.AllowedTicketExtensions {
			if t == e.Type {
				allowed = true
			}
		}
		if !allowed {
			return c.abort(AlertUnsupportedExtension, "NewSessionTicket extension %#04x", e.Type)
		}
	}
	if time.Duration(m.lifetime)*time.Second > maxTicketLifetime {
		return c.abort(AlertIllegalParameter, "ticket lifetime %ds exceeds 7 days", m.lifetime)
	}
	if m.lifetime == 0 || c.config.OnNewSessionTicket == nil {
		return nil // a zero lifetime means: do not use (§4.6.1)
	}
	exts := make([]Extension, len(m.extensions))
	copy(exts, m.extensions)
	s := &ClientSession{
		Extensions: exts,
		Lifetime:   time.Duration(m.lifetime) * time.Second,
		ReceivedAt: c.config.time(),
		ServerName: c.serverName,
		ticket:     m.label,
		psk:        c.suite.resumptionPSK(c.resMaster, m.nonce),
		suite:      c.suite.id,
		ageAdd:     m.ageAdd,
		alpn:       c.alpn,
		peerCerts:  c.peerCerts,

		verifiedChains: c.verifiedChains,
	}
	c.config.OnNewSessionTicket(c, s)
	return nil
}

// isGREASE reports RFC 8701 reserved values (0x?A?A).
func isGREASE(v uint16) bool {
	return v&0x0f0f == 0x0a0a && v>>8 == v&0xff
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
