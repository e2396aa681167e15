package tls13

import (
	"errors"
	"fmt"
	"io"
	"net"
)

// Alert is a TLS alert description (RFC 8446 §6). As an error it means
// that alert was sent to, or received from, the peer.
type Alert uint8

// Alert descriptions.
const (
	AlertCloseNotify                  Alert = 0
	AlertUnexpectedMessage            Alert = 10
	AlertBadRecordMAC                 Alert = 20
	AlertRecordOverflow               Alert = 22
	AlertHandshakeFailure             Alert = 40
	AlertBadCertificate               Alert = 42
	AlertUnsupportedCertificate       Alert = 43
	AlertCertificateRevoked           Alert = 44
	AlertCertificateExpired           Alert = 45
	AlertCertificateUnknown           Alert = 46
	AlertIllegalParameter             Alert = 47
	AlertUnknownCA                    Alert = 48
	AlertAccessDenied                 Alert = 49
	AlertDecodeError                  Alert = 50
	AlertDecryptError                 Alert = 51
	AlertProtocolVersion              Alert = 70
	AlertInsufficientSecurity         Alert = 71
	AlertInternalError                Alert = 80
	AlertInappropriateFallback        Alert = 86
	AlertUserCanceled                 Alert = 90
	AlertMissingExtension             Alert = 109
	AlertUnsupportedExtension         Alert = 110
	AlertUnrecognizedName             Alert = 112
	AlertBadCertificateStatusResponse Alert = 113
	AlertUnknownPSKIdentity           Alert = 115
	AlertCertificateRequired          Alert = 116
	AlertNoApplicationProtocol        Alert = 120
)

var alertNames = map[Alert]string{
	AlertCloseNotify: "close notify", AlertUnexpectedMessage: "unexpected message",
	AlertBadRecordMAC: "bad record MAC", AlertRecordOverflow: "record overflow",
	AlertHandshakeFailure: "handshake failure", AlertBadCertificate: "bad certificate",
	AlertUnsupportedCertificate: "unsupported certificate", AlertCertificateRevoked: "revoked certificate",
	AlertCertificateExpired: "expired certificate", AlertCertificateUnknown: "unknown certificate",
	AlertIllegalParameter: "illegal parameter", AlertUnknownCA: "unknown certificate authority",
	AlertAccessDenied: "access denied", AlertDecodeError: "error decoding message",
	AlertDecryptError: "error decrypting message", AlertProtocolVersion: "protocol version not supported",
	AlertInsufficientSecurity: "insufficient security level", AlertInternalError: "internal error",
	AlertInappropriateFallback: "inappropriate fallback", AlertUserCanceled: "user canceled",
	AlertMissingExtension: "missing extension", AlertUnsupportedExtension: "unsupported extension",
	AlertUnrecognizedName: "unrecognized name", AlertBadCertificateStatusResponse: "bad certificate status response",
	AlertUnknownPSKIdentity: "unknown PSK identity", AlertCertificateRequired: "certificate required",
	AlertNoApplicationProtocol: "no application protocol",
}

func (a Alert) String() string { return "tls13: " + a.name() }

// name is the alert's description without the package prefix.
func (a Alert) name() string {
	if s, ok := alertNames[a]; ok {
		return s
	}
	return fmt.Sprintf("alert(%d)", uint8(a))
}

// isCertificateAlert reports the alerts a peer sends when it refuses the
// certificate it was shown (RFC 8446 §6.2).
func (a Alert) isCertificateAlert() bool {
	switch a {
	case AlertBadCertificate, AlertUnsupportedCertificate, AlertCertificateRevoked,
		AlertCertificateExpired, AlertCertificateUnknown, AlertUnknownCA:
		return true
	}
	return false
}

func (a Alert) Error() string { return a.String() }

// AlertError reports a fatal alert together with the local reason for it.
// Errors returned by a Conn can be tested with errors.As(err, &AlertError{})
// or errors.Is(err, AlertXxx).
type AlertError struct {
	Alert    Alert
	Received bool // true: the peer sent it; false: this side sent it
	// Reason says why this side sent it; for a received alert it says
	// what the alert means here, when that is known (e.g. "the peer
	// rejected our certificate"), and is empty otherwise.
	Reason string
}

func (e *AlertError) Error() string {
	if e.Received {
		if e.Reason != "" {
			return "tls13: received alert: " + e.Alert.name() + " (" + e.Reason + ")"
		}
		return "tls13: received alert: " + e.Alert.name()
	}
	if e.Reason != "" {
		return e.Alert.String() + ": " + e.Reason
	}
	return e.Alert.String()
}

// Is makes errors.Is(err, AlertIllegalParameter) work.
func (e *AlertError) Is(target error) bool {
	a, ok := target.(Alert)
	return ok && a == e.Alert
}

// alertNone means "verified" in verifySignature's result.
const alertNone Alert = 255

// abort sends a fatal alert (best effort) and returns the matching error.
func (c *Conn) abort(a Alert, format string, args ...any) error {
	err := &AlertError{Alert: a, Reason: fmt.Sprintf(format, args...)}
	c.outMu.Lock()
	if c.writeErr == nil {
		c.sendAlertLocked(a, 2)
		c.writeErr = err
	}
	c.outMu.Unlock()
	c.setReadErr(err)
	return err
}

// setReadErrUnlessTimeout keeps a read deadline's timeout retryable:
// net/http interrupts background reads with a past deadline and then
// reads on. Buffered partial records stay in raw and are completed later.
func (c *Conn) setReadErrUnlessTimeout(err error) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return
	}
	c.setReadErr(err)
}

func (c *Conn) setReadErr(err error) {
	if c.readErr == nil {
		c.readErr = err
	}
}

// sendAlertLocked writes an alert record; outMu must be held.
func (c *Conn) sendAlertLocked(a Alert, level uint8) error {
	// A half-built flight goes out first: the peer needs its ServerHello
	// to read an alert protected under the handshake keys.
	if err := c.writeRecordLocked(recordTypeAlert, []byte{level, byte(a)}); err != nil {
		return err
	}
	if c.buffering {
		return c.flushLocked()
	}
	return nil
}

// handleAlert processes a received alert record. It returns nil when the
// alert was a registered notification (or user_canceled) and reading
// continues.
func (c *Conn) handleAlert(data []byte) error {
	if len(data) != 2 {
		return c.abort(AlertDecodeError, "alert record of %d bytes", len(data))
	}
	level, desc := data[0], Alert(data[1])
	switch {
	case desc == AlertCloseNotify:
		c.setReadErr(io.EOF)
		// Reply and stop writing (checklist: §6.1). Errors are moot: the
		// peer may already have closed.
		c.outMu.Lock()
		if !c.closeNotifySent && c.writeErr == nil {
			c.closeNotifySent = true
			c.sendAlertLocked(AlertCloseNotify, 1)
			c.writeErr = errWriteClosed
		}
		c.outMu.Unlock()
		return io.EOF
	case desc == AlertUserCanceled:
		return c.countUseless()
	case level == 1 && c.handshakeDone.Load() && c.config.isNotification(uint8(desc)):
		if c.config.OnNotification != nil {
			c.config.OnNotification(c, uint8(desc))
		}
		return nil
	}
	err := &AlertError{Alert: desc, Received: true}
	if !c.isClient && desc.isCertificateAlert() {
		err.Reason = "the peer rejected our certificate"
	}
	c.setReadErr(err)
	c.outMu.Lock()
	if c.writeErr == nil {
		c.writeErr = err
	}
	c.outMu.Unlock()
	return err
}
