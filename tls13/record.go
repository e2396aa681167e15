package tls13

import (
	"crypto/cipher"
	"encoding/binary"
	"io"
	"sync"
)

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
		// hdr[1:3], legacy_record_version, "MUST be ignored for all
		// purposes" (RFC 8446 §5.1): any value is taken, on every record,
		// so the ingress router, which must recognise every ClientHello a
		// node accepts, does not read it either (parser.recordPrefixOK).
		// A protected record's header is still its AEAD additional data,
		// so a version changed in transit fails authentication there.
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
