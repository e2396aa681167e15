package tls13

import (
	"errors"
	"time"
)

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

// ErrNotNotification is returned by SendNotification for a description the
// Config did not register.
var ErrNotNotification = errors.New("tls13: alert description is not a registered notification")

// ErrNotRegistered is returned by SendHandshakeMessage for an unregistered type.
var ErrNotRegistered = errors.New("tls13: handshake message type is not registered")
