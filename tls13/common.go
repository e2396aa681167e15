package tls13

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"time"
)

// VersionTLS13 is the only protocol version this package speaks.
const VersionTLS13 uint16 = 0x0304

// Record content types (RFC 8446 §5.1).
const (
	recordTypeChangeCipherSpec uint8 = 20
	recordTypeAlert            uint8 = 21
	recordTypeHandshake        uint8 = 22
	recordTypeApplicationData  uint8 = 23
)

// Handshake message types (RFC 8446 §4).
const (
	typeClientHello         uint8 = 1
	typeServerHello         uint8 = 2
	typeNewSessionTicket    uint8 = 4
	typeEndOfEarlyData      uint8 = 5
	typeEncryptedExtensions uint8 = 8
	typeCertificate         uint8 = 11
	typeCertificateRequest  uint8 = 13
	typeCertificateVerify   uint8 = 15
	typeFinished            uint8 = 20
	typeKeyUpdate           uint8 = 24
	typeMessageHash         uint8 = 254
)

// Extension code points used by the engine itself (RFC 8446 §4.2).
const (
	extServerName          uint16 = 0
	extStatusRequest       uint16 = 5
	extSupportedGroups     uint16 = 10
	extSignatureAlgorithms uint16 = 13
	extALPN                uint16 = 16
	extSCT                 uint16 = 18
	extPadding             uint16 = 21
	extPreSharedKey        uint16 = 41
	extEarlyData           uint16 = 42
	extSupportedVersions   uint16 = 43
	extCookie              uint16 = 44
	extPSKModes            uint16 = 45
	extCertAuthorities     uint16 = 47
	extSigAlgsCert         uint16 = 50
	extKeyShare            uint16 = 51
)

// pskModeDHE is psk_dhe_ke, the only PSK key exchange mode accepted.
const (
	pskModePlain uint8 = 0
	pskModeDHE   uint8 = 1
)

// Cipher suites (RFC 8446 §B.4). The values equal crypto/tls's constants.
const (
	TLS_AES_128_GCM_SHA256       uint16 = 0x1301
	TLS_AES_256_GCM_SHA384       uint16 = 0x1302
	TLS_CHACHA20_POLY1305_SHA256 uint16 = 0x1303
)

// Supported groups; the values equal crypto/tls's CurveID constants.
const (
	X25519MLKEM768 = tls.X25519MLKEM768 // 0x11EC
	X25519         = tls.X25519         // 0x001D
	CurveP256      = tls.CurveP256      // 0x0017
	CurveP384      = tls.CurveP384      // 0x0018
	CurveP521      = tls.CurveP521      // 0x0019
	// X448 (RFC 7748/8446) and the RFC 7919 finite-field groups have no
	// crypto/tls constant.
	X448      tls.CurveID = 0x001E
	FFDHE2048 tls.CurveID = 0x0100
	FFDHE3072 tls.CurveID = 0x0101
)

// Signature schemes (RFC 8446 §4.2.3).
const (
	sigECDSAP256SHA256 uint16 = 0x0403
	sigECDSAP384SHA384 uint16 = 0x0503
	sigECDSAP521SHA512 uint16 = 0x0603
	sigEd25519         uint16 = 0x0807
	sigRSAPSSSHA256    uint16 = 0x0804
	sigRSAPSSSHA384    uint16 = 0x0805
	sigRSAPSSSHA512    uint16 = 0x0806
	sigRSAPKCS1SHA256  uint16 = 0x0401
	sigRSAPKCS1SHA384  uint16 = 0x0501
	sigRSAPKCS1SHA512  uint16 = 0x0601
)

// Limits.
const (
	maxPlaintext     = 1 << 14
	maxCiphertext    = maxPlaintext + 256
	recordHeaderLen  = 5
	maxHandshakeSize = 1 << 16 // certificate chains fit comfortably
	// maxClientHelloSize is the largest ClientHello that can decode:
	// version, random, a 32-byte session id, 2^16-2 bytes of cipher
	// suites, 255 compression methods and 2^16-1 bytes of extensions
	// (OpenSSL uses the same bound). A longer one is a decode_error
	// without buffering it.
	maxClientHelloSize = 2 + 32 + 1 + 32 + 2 + 65534 + 1 + 255 + 2 + 65535
	// maxCertificateSize bounds the server's Certificate message a client
	// buffers (crypto/tls's bound: long chains with SCTs and OCSP fit).
	maxCertificateSize   = 1 << 18
	maxPostHandshakeSize = 1 << 14 // tickets, KeyUpdate, registered types
	maxTicketLifetime    = 7 * 24 * time.Hour
	// keyUpdateAfter is how many records one key may protect before the
	// writer rekeys on its own (well under the AES-GCM limit of 2^24.5,
	// RFC 8446 §5.5).
	keyUpdateAfter = 1 << 24
	// defaultMaxPostHandshakeMessages is the burst of handshake messages
	// a peer may send after the handshake; the allowance refills at the
	// same number per postHandshakeWindow, so a long-lived connection
	// with many tickets or KeyUpdates is never cut off by a lifetime
	// count, while a flood is.
	defaultMaxPostHandshakeMessages = 4096
	postHandshakeWindow             = time.Minute
	// maxUselessRecords is how many records in a row that deliver nothing
	// (empty application data, user_canceled warnings) are absorbed
	// before the connection is refused with unexpected_message; crypto/tls
	// uses the same number. Without it a peer keeps Read (or the
	// handshake) busy forever.
	maxUselessRecords = 16
	// maxEarlyDataSkip bounds the 0-RTT bytes (record bodies, as they
	// travel) a server skips without decrypting them (RFC 8446 §4.2.10:
	// early data it rejects is skipped "up to the configured
	// max_early_data_size"). This server's tickets never allow early
	// data, so a client only sends it with another server's ticket (an
	// anycast move); 2^16 is four maximal records, above the 16 KiB
	// most servers advertise. BoringSSL also bounds the skip in bytes
	// (16 KiB).
	maxEarlyDataSkip = 1 << 16
)

// Extension is one TLS extension as it travels: its type and its raw data.
type Extension struct {
	Type uint16
	Data []byte
}

// ClientHelloInfo is what the server's hooks see of a received ClientHello.
type ClientHelloInfo struct {
	ServerName       string
	CipherSuites     []uint16
	SupportedGroups  []tls.CurveID
	SignatureSchemes []uint16
	SupportedProtos  []string
	// Extensions holds every extension of the ClientHello in wire order,
	// including GREASE and unknown ones (the retried ClientHello after a
	// HelloRetryRequest, if there was one).
	Extensions []Extension
	// Resumption is the decrypted, unexpired ticket the client offered and
	// whose binder verified, or nil. Set RejectResumption to run a full
	// handshake instead.
	Resumption *ResumptionInfo
	// RejectResumption, set by Config.OnClientHello, makes the server
	// ignore the offered ticket for this connection.
	RejectResumption bool
	// Conn is the connection being established.
	Conn *Conn
}

// ResumptionInfo describes a ticket a client offered, as the server
// decrypted it.
type ResumptionInfo struct {
	PSK       []byte    // the resumption PSK of the ticket
	AppData   []byte    // what the server sealed into the ticket (ServerTicket.AppData)
	CreatedAt time.Time // when the ticket was issued
	Lifetime  time.Duration
	// ClientAge is the ticket age the client reported (obfuscated_ticket_age
	// minus ticket_age_add, §4.2.11.1).
	ClientAge time.Duration
}

// ServerTicket is a NewSessionTicket the server is about to send; the
// Config.TicketExtensions hook may add extensions and sealed data.
type ServerTicket struct {
	// PSK is the resumption PSK this ticket resumes with.
	PSK []byte
	// Lifetime of the ticket (≤ 7 days).
	Lifetime time.Duration
	// AppData is sealed into the ticket and returned in
	// ResumptionInfo.AppData when the ticket is resumed. Hooks may set it.
	AppData []byte
}

// ClientSession is a ticket the client received, with everything needed to
// resume it; pass it as Config.Session to a later Client. It must not be
// modified.
type ClientSession struct {
	// Extensions carried by the NewSessionTicket, in wire order.
	Extensions []Extension
	// Lifetime the server gave the ticket.
	Lifetime time.Duration
	// ReceivedAt is the local time the ticket arrived.
	ReceivedAt time.Time
	// ServerName the session was established with.
	ServerName string

	ticket         []byte
	psk            []byte
	suite          uint16
	ageAdd         uint32
	alpn           string
	peerCerts      []*x509.Certificate
	verifiedChains [][]*x509.Certificate
}

// PSK returns the ticket's resumption PSK (for key derivations that must
// bind to this ticket, e.g. the migration token's HMAC key).
func (s *ClientSession) PSK() []byte { return s.psk }

// CipherSuite returns the suite of the session that issued the ticket.
func (s *ClientSession) CipherSuite() uint16 { return s.suite }

// Ticket returns the opaque ticket identity.
func (s *ClientSession) Ticket() []byte { return s.ticket }

// expired reports whether the ticket is past its lifetime at now.
func (s *ClientSession) expired(now time.Time) bool {
	return now.Sub(s.ReceivedAt) >= s.Lifetime || s.Lifetime <= 0
}

// ConnectionState describes an established connection.
type ConnectionState struct {
	Version            uint16
	HandshakeComplete  bool
	CipherSuite        uint16
	Group              tls.CurveID
	DidResume          bool
	PeerCertificates   []*x509.Certificate
	VerifiedChains     [][]*x509.Certificate
	NegotiatedProtocol string
	ServerName         string
	// SessionAppData, on the server of a resumed connection, is the data
	// sealed into the resumed ticket (ServerTicket.AppData).
	SessionAppData []byte
	// PeerExtensions are the peer's hello extensions in wire order: on a
	// server, the (final) ClientHello's; on a client, EncryptedExtensions'.
	// E.g. a server sends a notification only to clients that announced
	// support for it.
	PeerExtensions []Extension
}

// Config configures a client or a server.
//
// Hook rules: OnClientHello and TicketExtensions during the handshake run
// inside Handshake, so they must not call Read, Write or Handshake on the
// Conn; OnNewSessionTicket, OnNotification and OnHandshakeMessage run
// inside Read and must not call Read (Write and the Send* methods are fine). A Config may be shared by many
// connections and must not be modified once in use (TicketKeys rotate on
// their own lock).
type Config struct {
	// Certificates for the server (the first whose key type fits the
	// client's signature algorithms is used, unless GetCertificate picks).
	Certificates []tls.Certificate
	// GetCertificate, if set, chooses the server certificate by SNI.
	GetCertificate func(*ClientHelloInfo) (*tls.Certificate, error)

	// RootCAs verifies the server chain; nil means the system pool.
	RootCAs *x509.CertPool
	// ServerName is sent as SNI and verified against the certificate.
	ServerName string
	// InsecureSkipVerify disables chain and name verification (tests only).
	InsecureSkipVerify bool

	// NextProtos lists ALPN protocols in preference order.
	NextProtos []string
	// CipherSuites in preference order; nil means all three, AES-128 first.
	CipherSuites []uint16
	// CurvePreferences in preference order. nil means, on a server,
	// every group implemented: X25519MLKEM768, X25519, P-256, P-384,
	// P-521, X448, FFDHE2048, FFDHE3072; on a client X25519MLKEM768,
	// X25519, P-256. The client sends key shares for the first entry (and
	// for X25519 too when the first is X25519MLKEM768). FFDHE runs on
	// math/big, which is not constant time (see keyexchange.go).
	CurvePreferences []tls.CurveID

	// Time returns the current time; nil means time.Now.
	Time func() time.Time
	// Rand supplies randomness for randoms, session ids, ticket fields and
	// nonces; nil means crypto/rand. (Key generation always uses
	// crypto/rand: crypto/ecdh and crypto/mlkem do not take a reader.)
	Rand io.Reader
	// KeyLogWriter receives secrets in NSS key log format.
	KeyLogWriter io.Writer

	// TicketKeys seals and opens session tickets (server). Nil disables
	// tickets on the server.
	TicketKeys *TicketKeys
	// TicketLifetime is the lifetime of issued tickets; 0 means 24 hours,
	// values above 7 days are capped at 7 days.
	TicketLifetime time.Duration
	// TicketsPerHandshake is the number of NewSessionTickets the server
	// sends right after a handshake; 0 means 1, negative means none.
	TicketsPerHandshake int

	// Session, on the client, is a ticket to offer for resumption. An
	// expired session is not offered.
	Session *ClientSession

	// ClientHelloExtensions (client) returns extensions to add to the
	// ClientHello. They are placed before pre_shared_key, so the binders
	// cover them. session is the ticket being offered, or nil. It is
	// called once per connection; a retried ClientHello after a
	// HelloRetryRequest carries the same extensions.
	ClientHelloExtensions func(c *Conn, session *ClientSession) []Extension
	// OnNewSessionTicket (client) receives every NewSessionTicket, with its
	// extensions, as a ClientSession that can resume it. It runs on the
	// goroutine that reads the connection.
	OnNewSessionTicket func(c *Conn, session *ClientSession)
	// AllowedTicketExtensions (client) lists extension types accepted in
	// a NewSessionTicket; any other type is answered with
	// unsupported_extension (RFC 8446 §4.2). early_data is always allowed.
	AllowedTicketExtensions []uint16

	// OnClientHello (server) sees every ClientHello (its extensions and the
	// ticket being resumed, if any) before the server answers. Returning
	// an error aborts the handshake with handshake_failure; setting
	// info.RejectResumption forces a full handshake.
	OnClientHello func(info *ClientHelloInfo) error
	// TicketExtensions (server) returns extensions to put into a
	// NewSessionTicket; it may also set t.AppData.
	TicketExtensions func(c *Conn, t *ServerTicket) []Extension

	// NotificationAlerts registers alert descriptions that are sent and
	// received as non-fatal warnings (Conn.SendNotification). Every other
	// alert stays fatal.
	NotificationAlerts []uint8
	// OnNotification receives a registered notification alert. It runs on
	// the goroutine that reads the connection.
	OnNotification func(c *Conn, desc uint8)

	// HandshakeMessageTypes registers extra post-handshake handshake
	// message types (e.g. draft-03 migrate_request, 0xFD).
	HandshakeMessageTypes []uint8
	// OnHandshakeMessage receives a registered post-handshake message. A
	// non-nil error aborts the connection with unexpected_message.
	OnHandshakeMessage func(c *Conn, typ uint8, body []byte) error

	// MaxPostHandshakeMessages bounds the rate of handshake messages the
	// peer may send after the handshake: a burst of this many, refilled
	// at this many per minute (measured with Time); a message beyond the
	// allowance is refused with unexpected_message. 0 means 4096.
	MaxPostHandshakeMessages int
}

func (c *Config) time() time.Time {
	if c.Time != nil {
		return c.Time()
	}
	return time.Now()
}

func (c *Config) ticketLifetime() time.Duration {
	switch {
	case c.TicketLifetime <= 0:
		return 24 * time.Hour
	case c.TicketLifetime > maxTicketLifetime:
		return maxTicketLifetime
	}
	return c.TicketLifetime
}

// cipherSuites returns the configured TLS 1.3 suites this package
// implements (others are dropped).
func (c *Config) cipherSuites() []uint16 {
	if len(c.CipherSuites) == 0 {
		return defaultCipherSuites
	}
	out := make([]uint16, 0, len(c.CipherSuites))
	for _, id := range c.CipherSuites {
		if suiteByID(id) != nil {
			out = append(out, id)
		}
	}
	return out
}

// clientCurvePreferences is curvePreferences for a client.
func (c *Config) clientCurvePreferences() []tls.CurveID {
	if len(c.CurvePreferences) == 0 {
		return defaultClientCurves
	}
	return c.curvePreferences()
}

// curvePreferences returns the configured groups this package implements
// (a server's default when none are configured).
func (c *Config) curvePreferences() []tls.CurveID {
	if len(c.CurvePreferences) == 0 {
		return defaultCurves
	}
	out := make([]tls.CurveID, 0, len(c.CurvePreferences))
	for _, g := range c.CurvePreferences {
		if isSupportedGroup(g) {
			out = append(out, g)
		}
	}
	return out
}

// check reports a Config that cannot work, naming the field.
func (c *Config) check() error {
	if len(c.cipherSuites()) == 0 {
		return errors.New("tls13: Config.CipherSuites has no TLS 1.3 suite this package supports")
	}
	if len(c.curvePreferences()) == 0 {
		return errors.New("tls13: Config.CurvePreferences has no group this package supports")
	}
	return nil
}

func (c *Config) isNotification(desc uint8) bool {
	for _, d := range c.NotificationAlerts {
		if d == desc {
			return true
		}
	}
	return false
}

func (c *Config) isRegisteredType(t uint8) bool {
	for _, d := range c.HandshakeMessageTypes {
		if d == t {
			return true
		}
	}
	return false
}

func (c *Config) maxPostHandshakeMessages() int {
	if c.MaxPostHandshakeMessages > 0 {
		return c.MaxPostHandshakeMessages
	}
	return defaultMaxPostHandshakeMessages
}

var defaultCipherSuites = []uint16{TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256}

// defaultCurves is the server's default preference: the hybrid post-quantum group, then
// the curves by speed, FFDHE last (slow, and math/big is not constant
// time).
var defaultCurves = []tls.CurveID{X25519MLKEM768, X25519, CurveP256, CurveP384, CurveP521, X448, FFDHE2048, FFDHE3072}

// defaultClientCurves is what a client offers by default, the groups
// crypto/tls offers: any server supports one of them.
var defaultClientCurves = []tls.CurveID{X25519MLKEM768, X25519, CurveP256}

// signature schemes the client offers and accepts, in preference order.
var supportedSignatureSchemes = []uint16{
	sigECDSAP256SHA256, sigEd25519, sigRSAPSSSHA256, sigECDSAP384SHA384,
	sigRSAPSSSHA384, sigRSAPSSSHA512,
}

// signature_algorithms_cert: what the x509 verifier can check in chains.
var supportedCertSignatureSchemes = []uint16{
	sigECDSAP256SHA256, sigEd25519, sigRSAPSSSHA256, sigECDSAP384SHA384,
	sigRSAPSSSHA384, sigRSAPSSSHA512, sigECDSAP521SHA512,
	sigRSAPKCS1SHA256, sigRSAPKCS1SHA384, sigRSAPKCS1SHA512,
}
