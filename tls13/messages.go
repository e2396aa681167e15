package tls13

import (
	"crypto/tls"

	"golang.org/x/crypto/cryptobyte"
)

// Every message type has marshal() []byte and unmarshal([]byte) bool. The
// byte slices include the 4-byte handshake header. unmarshal checks every
// length and rejects trailing bytes; semantic rules (which alert to send)
// are the handshake's business. Parsed slices alias the input.

type keyShare struct {
	group tls.CurveID
	data  []byte
}

type pskIdentity struct {
	label               []byte
	obfuscatedTicketAge uint32
}

// handshakeMessage is what every handshake message type offers: unmarshal
// takes a whole message, its 4-byte header included, checks every length
// and rejects trailing bytes; marshal is its inverse (nil when a field is
// longer than its length prefix). A decoded message keeps its input as
// its encoding, so marshal after unmarshal returns the bytes received.
type handshakeMessage interface {
	marshal() []byte
	unmarshal(data []byte) bool
}

var (
	_ handshakeMessage = (*clientHelloMsg)(nil)
	_ handshakeMessage = (*serverHelloMsg)(nil)
	_ handshakeMessage = (*encryptedExtensionsMsg)(nil)
	_ handshakeMessage = (*certificateMsg)(nil)
	_ handshakeMessage = (*certificateRequestMsg)(nil)
	_ handshakeMessage = (*certificateVerifyMsg)(nil)
	_ handshakeMessage = (*finishedMsg)(nil)
	_ handshakeMessage = (*newSessionTicketMsg)(nil)
	_ handshakeMessage = (*keyUpdateMsg)(nil)
)

// addHandshakeHeader wraps body into a handshake message of type typ.
func marshalHandshake(typ uint8, body func(b *cryptobyte.Builder)) []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddUint8(typ)
	b.AddUint24LengthPrefixed(body)
	out, err := b.Bytes()
	if err != nil {
		// Only reachable when a field exceeds its length prefix, which
		// callers prevent; an empty message makes the peer fail cleanly.
		return nil
	}
	return out
}

// readHandshakeBody checks the header of data and returns the body.
func readHandshakeBody(data []byte, typ uint8) (cryptobyte.String, bool) {
	s := cryptobyte.String(data)
	var t uint8
	var body cryptobyte.String
	if !s.ReadUint8(&t) || t != typ || !s.ReadUint24LengthPrefixed(&body) || !s.Empty() {
		return nil, false
	}
	return body, true
}

// extensionSet detects duplicate extension types in one message. A
// message may carry thousands of (empty) extensions, so past a few the
// set switches to a map to stay linear.
type extensionSet struct {
	seen []uint16
	many map[uint16]struct{}
}

func (e *extensionSet) add(t uint16) bool {
	if e.many != nil {
		if _, dup := e.many[t]; dup {
			return false
		}
		e.many[t] = struct{}{}
		return true
	}
	for _, s := range e.seen {
		if s == t {
			return false
		}
	}
	e.seen = append(e.seen, t)
	if len(e.seen) > 32 {
		e.many = make(map[uint16]struct{}, 2*len(e.seen))
		for _, s := range e.seen {
			e.many[s] = struct{}{}
		}
	}
	return true
}

// clientHelloMsg is RFC 8446 §4.1.2's ClientHello.
type clientHelloMsg struct {
	raw                []byte
	vers               uint16
	random             []byte
	sessionID          []byte
	cipherSuites       []uint16
	compressionMethods []uint8

	serverName        string
	supportedGroups   []tls.CurveID
	sigAlgs           []uint16
	sigAlgsCert       []uint16
	alpnProtocols     []string
	supportedVersions []uint16
	cookie            []byte
	// keyShares holds the shares of groups this package implements (a
	// share of any other group is never used, so it costs no memory);
	// keyShareList is the whole received list and keyShareCount its
	// length, for the server's order checks.
	keyShares     []keyShare
	keyShareList  []byte
	keyShareCount int
	pskModes      []uint8
	pskIdentities []pskIdentity
	pskBinders    [][]byte
	earlyData     bool

	hasSupportedGroups bool
	hasKeyShare        bool
	hasSigAlgs         bool
	hasPSKModes        bool

	// customExtensions (marshal) go after the standard ones, before
	// pre_shared_key.
	customExtensions []Extension
	// extensions (unmarshal) lists every extension in wire order.
	extensions []Extension
	// duplicateExtension and pskNotLast record violations the server
	// answers with illegal_parameter.
	duplicateExtension bool
	pskNotLast         bool
}

// addUint16ListExtension writes extension typ whose data is a vector of
// 16-bit values with a 2-byte length (supported_groups,
// signature_algorithms, signature_algorithms_cert).
func addUint16ListExtension[T ~uint16](b *cryptobyte.Builder, typ uint16, list []T) {
	b.AddUint16(typ)
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, v := range list {
				b.AddUint16(uint16(v))
			}
		})
	})
}

func (m *clientHelloMsg) marshal() []byte {
	if m.raw != nil {
		return m.raw
	}
	m.raw = marshalHandshake(typeClientHello, func(b *cryptobyte.Builder) {
		b.AddUint16(m.vers)
		b.AddBytes(m.random)
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.sessionID) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, s := range m.cipherSuites {
				b.AddUint16(s)
			}
		})
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.compressionMethods) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			if m.serverName != "" {
				b.AddUint16(extServerName)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
					b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
						b.AddUint8(0) // host_name
						b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(m.serverName)) })
					})
				})
			}
			if len(m.supportedVersions) > 0 {
				b.AddUint16(extSupportedVersions)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
					b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) {
						for _, v := range m.supportedVersions {
							b.AddUint16(v)
						}
					})
				})
			}
			if len(m.supportedGroups) > 0 {
				addUint16ListExtension(b, extSupportedGroups, m.supportedGroups)
			}
			if len(m.sigAlgs) > 0 {
				addUint16ListExtension(b, extSignatureAlgorithms, m.sigAlgs)
			}
			if len(m.sigAlgsCert) > 0 {
				addUint16ListExtension(b, extSigAlgsCert, m.sigAlgsCert)
			}
			if len(m.alpnProtocols) > 0 {
				b.AddUint16(extALPN)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
					b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
						for _, p := range m.alpnProtocols {
							b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(p)) })
						}
					})
				})
			}
			if len(m.cookie) > 0 {
				b.AddUint16(extCookie)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
					b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.cookie) })
				})
			}
			if m.hasKeyShare || len(m.keyShares) > 0 {
				b.AddUint16(extKeyShare)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
					b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
						for _, ks := range m.keyShares {
							b.AddUint16(uint16(ks.group))
							b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(ks.data) })
						}
					})
				})
			}
			if len(m.pskModes) > 0 {
				b.AddUint16(extPSKModes)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
					b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.pskModes) })
				})
			}
			if m.earlyData {
				b.AddUint16(extEarlyData)
				b.AddUint16(0)
			}
			for _, e := range m.customExtensions {
				b.AddUint16(e.Type)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(e.Data) })
			}
			if len(m.pskIdentities) > 0 {
				b.AddUint16(extPreSharedKey)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
					b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
						for _, id := range m.pskIdentities {
							b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(id.label) })
							b.AddUint32(id.obfuscatedTicketAge)
						}
					})
					b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
						for _, binder := range m.pskBinders {
							b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(binder) })
						}
					})
				})
			}
		})
	})
	return m.raw
}

// bindersLen is the length of the binders list at the end of raw,
// including its 2-byte length prefix.
func (m *clientHelloMsg) bindersLen() int {
	if len(m.pskBinders) == 0 {
		return 0
	}
	n := 2
	for _, b := range m.pskBinders {
		n += 1 + len(b)
	}
	return n
}

// truncatedForBinders returns the ClientHello up to (excluding) the binders
// list (RFC 8446 §4.2.11.2).
func (m *clientHelloMsg) truncatedForBinders() []byte {
	raw := m.marshal()
	return raw[:len(raw)-m.bindersLen()]
}

// setBinders writes binders of the same lengths as the current ones into
// raw in place.
func (m *clientHelloMsg) setBinders(binders [][]byte) {
	raw := m.marshal()
	off := len(raw) - m.bindersLen() + 2
	for i, b := range binders {
		off++
		copy(raw[off:], b)
		m.pskBinders[i] = raw[off : off+len(b)]
		off += len(b)
	}
}

func (m *clientHelloMsg) unmarshal(data []byte) bool {
	*m = clientHelloMsg{raw: data}
	s, ok := readHandshakeBody(data, typeClientHello)
	if !ok {
		return false
	}
	var sid, suites, comp cryptobyte.String
	if !s.ReadUint16(&m.vers) || !s.ReadBytes(&m.random, 32) ||
		!s.ReadUint8LengthPrefixed(&sid) || len(sid) > 32 ||
		!s.ReadUint16LengthPrefixed(&suites) || len(suites) == 0 || len(suites)%2 != 0 ||
		!s.ReadUint8LengthPrefixed(&comp) || len(comp) == 0 {
		return false
	}
	m.sessionID = sid
	for !suites.Empty() {
		var v uint16
		suites.ReadUint16(&v)
		m.cipherSuites = append(m.cipherSuites, v)
	}
	m.compressionMethods = comp
	if s.Empty() {
		return true // no extensions at all: legal syntax (TLS 1.2 and older)
	}
	var exts cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&exts) || !s.Empty() {
		return false
	}
	var set extensionSet
	for !exts.Empty() {
		var typ uint16
		var ext cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&ext) {
			return false
		}
		if len(m.pskIdentities) > 0 {
			m.pskNotLast = true
		}
		m.extensions = append(m.extensions, Extension{Type: typ, Data: ext})
		if !set.add(typ) {
			m.duplicateExtension = true // answered with illegal_parameter
			continue
		}
		switch typ {
		case extServerName:
			var list cryptobyte.String
			if !ext.ReadUint16LengthPrefixed(&list) || list.Empty() || !ext.Empty() {
				return false
			}
			sawHostName := false
			for !list.Empty() {
				var nameType uint8
				var name cryptobyte.String
				// host_name (0) is the only defined type, at most once
				// (RFC 6066 §3).
				if !list.ReadUint8(&nameType) || nameType != 0 || sawHostName ||
					!list.ReadUint16LengthPrefixed(&name) || len(name) == 0 {
					return false
				}
				sawHostName = true
				m.serverName = string(name)
			}
		case extSupportedVersions:
			var list cryptobyte.String
			if !ext.ReadUint8LengthPrefixed(&list) || list.Empty() || len(list)%2 != 0 || !ext.Empty() {
				return false
			}
			for !list.Empty() {
				var v uint16
				list.ReadUint16(&v)
				m.supportedVersions = append(m.supportedVersions, v)
			}
		case extSupportedGroups:
			var list cryptobyte.String
			if !ext.ReadUint16LengthPrefixed(&list) || list.Empty() || len(list)%2 != 0 || !ext.Empty() {
				return false
			}
			m.hasSupportedGroups = true
			for !list.Empty() {
				var v uint16
				list.ReadUint16(&v)
				m.supportedGroups = append(m.supportedGroups, tls.CurveID(v))
			}
		case extSignatureAlgorithms, extSigAlgsCert:
			var list cryptobyte.String
			if !ext.ReadUint16LengthPrefixed(&list) || list.Empty() || len(list)%2 != 0 || !ext.Empty() {
				return false
			}
			var algs []uint16
			for !list.Empty() {
				var v uint16
				list.ReadUint16(&v)
				algs = append(algs, v)
			}
			if typ == extSignatureAlgorithms {
				m.hasSigAlgs = true
				m.sigAlgs = algs
			} else {
				m.sigAlgsCert = algs
			}
		case extALPN:
			var list cryptobyte.String
			if !ext.ReadUint16LengthPrefixed(&list) || list.Empty() || !ext.Empty() {
				return false
			}
			for !list.Empty() {
				var p cryptobyte.String
				if !list.ReadUint8LengthPrefixed(&p) || p.Empty() {
					return false
				}
				m.alpnProtocols = append(m.alpnProtocols, string(p))
			}
		case extCookie:
			var c cryptobyte.String
			if !ext.ReadUint16LengthPrefixed(&c) || c.Empty() || !ext.Empty() {
				return false
			}
			m.cookie = c
		case extKeyShare:
			var list cryptobyte.String
			if !ext.ReadUint16LengthPrefixed(&list) || !ext.Empty() {
				return false
			}
			m.hasKeyShare = true
			m.keyShareList = list
			for !list.Empty() {
				var g uint16
				var d cryptobyte.String
				if !list.ReadUint16(&g) || !list.ReadUint16LengthPrefixed(&d) || d.Empty() {
					return false
				}
				m.keyShareCount++
				if isSupportedGroup(tls.CurveID(g)) {
					m.keyShares = append(m.keyShares, keyShare{group: tls.CurveID(g), data: d})
				}
			}
		case extPSKModes:
			var list cryptobyte.String
			if !ext.ReadUint8LengthPrefixed(&list) || list.Empty() || !ext.Empty() {
				return false
			}
			m.hasPSKModes = true
			m.pskModes = list
		case extEarlyData:
			if !ext.Empty() {
				return false
			}
			m.earlyData = true
		case extPreSharedKey:
			var ids, binders cryptobyte.String
			if !ext.ReadUint16LengthPrefixed(&ids) || ids.Empty() ||
				!ext.ReadUint16LengthPrefixed(&binders) || binders.Empty() || !ext.Empty() {
				return false
			}
			for !ids.Empty() {
				var id pskIdentity
				var label cryptobyte.String
				if !ids.ReadUint16LengthPrefixed(&label) || label.Empty() || !ids.ReadUint32(&id.obfuscatedTicketAge) {
					return false
				}
				id.label = label
				m.pskIdentities = append(m.pskIdentities, id)
			}
			for !binders.Empty() {
				var b cryptobyte.String
				if !binders.ReadUint8LengthPrefixed(&b) || len(b) < 32 {
					return false
				}
				m.pskBinders = append(m.pskBinders, b)
			}
			if len(m.pskBinders) != len(m.pskIdentities) {
				return false
			}
		}
	}
	return true
}

// serverHelloMsg is RFC 8446 §4.1.3's ServerHello, also used for
// HelloRetryRequest (random == helloRetryRequestRandom).
type serverHelloMsg struct {
	raw               []byte
	vers              uint16
	random            []byte
	sessionID         []byte
	cipherSuite       uint16
	compressionMethod uint8

	supportedVersion        uint16
	serverShare             keyShare
	selectedIdentityPresent bool
	selectedIdentity        uint16
	cookie                  []byte
	selectedGroup           tls.CurveID // HelloRetryRequest only

	extensions         []Extension // unmarshal: wire order
	duplicateExtension bool
}

// helloRetryRequestRandom is SHA-256("HelloRetryRequest") (RFC 8446 §4.1.3).
var helloRetryRequestRandom = []byte{
	0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
	0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
}

func (m *serverHelloMsg) isHelloRetryRequest() bool {
	return string(m.random) == string(helloRetryRequestRandom)
}

func (m *serverHelloMsg) marshal() []byte {
	if m.raw != nil {
		return m.raw
	}
	m.raw = marshalHandshake(typeServerHello, func(b *cryptobyte.Builder) {
		b.AddUint16(m.vers)
		b.AddBytes(m.random)
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.sessionID) })
		b.AddUint16(m.cipherSuite)
		b.AddUint8(m.compressionMethod)
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			b.AddUint16(extSupportedVersions)
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddUint16(m.supportedVersion) })
			if m.serverShare.group != 0 {
				b.AddUint16(extKeyShare)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
					b.AddUint16(uint16(m.serverShare.group))
					b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.serverShare.data) })
				})
			}
			if m.selectedGroup != 0 {
				b.AddUint16(extKeyShare)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddUint16(uint16(m.selectedGroup)) })
			}
			if len(m.cookie) > 0 {
				b.AddUint16(extCookie)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
					b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.cookie) })
				})
			}
			if m.selectedIdentityPresent {
				b.AddUint16(extPreSharedKey)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddUint16(m.selectedIdentity) })
			}
		})
	})
	return m.raw
}

func (m *serverHelloMsg) unmarshal(data []byte) bool {
	*m = serverHelloMsg{raw: data}
	s, ok := readHandshakeBody(data, typeServerHello)
	if !ok {
		return false
	}
	var sid cryptobyte.String
	if !s.ReadUint16(&m.vers) || !s.ReadBytes(&m.random, 32) ||
		!s.ReadUint8LengthPrefixed(&sid) || len(sid) > 32 ||
		!s.ReadUint16(&m.cipherSuite) || !s.ReadUint8(&m.compressionMethod) {
		return false
	}
	m.sessionID = sid
	if s.Empty() {
		return true // a TLS 1.2-style ServerHello without extensions
	}
	var exts cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&exts) || !s.Empty() {
		return false
	}
	hrr := m.isHelloRetryRequest()
	var set extensionSet
	for !exts.Empty() {
		var typ uint16
		var ext cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&ext) {
			return false
		}
		m.extensions = append(m.extensions, Extension{Type: typ, Data: ext})
		if !set.add(typ) {
			m.duplicateExtension = true // answered with illegal_parameter
			continue
		}
		switch typ {
		case extSupportedVersions:
			if !ext.ReadUint16(&m.supportedVersion) || !ext.Empty() {
				return false
			}
		case extKeyShare:
			if hrr {
				var g uint16
				if !ext.ReadUint16(&g) || !ext.Empty() {
					return false
				}
				m.selectedGroup = tls.CurveID(g)
			} else {
				var g uint16
				var d cryptobyte.String
				if !ext.ReadUint16(&g) || !ext.ReadUint16LengthPrefixed(&d) || d.Empty() || !ext.Empty() {
					return false
				}
				m.serverShare = keyShare{group: tls.CurveID(g), data: d}
			}
		case extCookie:
			var c cryptobyte.String
			if !ext.ReadUint16LengthPrefixed(&c) || c.Empty() || !ext.Empty() {
				return false
			}
			m.cookie = c
		case extPreSharedKey:
			if !ext.ReadUint16(&m.selectedIdentity) || !ext.Empty() {
				return false
			}
			m.selectedIdentityPresent = true
		}
	}
	return true
}

// encryptedExtensionsMsg is RFC 8446 §4.3.1.
type encryptedExtensionsMsg struct {
	raw           []byte
	alpnProtocol  string
	serverNameAck bool
	earlyData     bool

	extensions         []Extension // unmarshal: wire order
	duplicateExtension bool
}

func (m *encryptedExtensionsMsg) marshal() []byte {
	if m.raw != nil {
		return m.raw
	}
	m.raw = marshalHandshake(typeEncryptedExtensions, func(b *cryptobyte.Builder) {
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			if m.serverNameAck {
				b.AddUint16(extServerName)
				b.AddUint16(0)
			}
			if m.alpnProtocol != "" {
				b.AddUint16(extALPN)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
					b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
						b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(m.alpnProtocol)) })
					})
				})
			}
			if m.earlyData {
				b.AddUint16(extEarlyData)
				b.AddUint16(0)
			}
		})
	})
	return m.raw
}

func (m *encryptedExtensionsMsg) unmarshal(data []byte) bool {
	*m = encryptedExtensionsMsg{raw: data}
	s, ok := readHandshakeBody(data, typeEncryptedExtensions)
	if !ok {
		return false
	}
	var exts cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&exts) || !s.Empty() {
		return false
	}
	var set extensionSet
	for !exts.Empty() {
		var typ uint16
		var ext cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&ext) {
			return false
		}
		m.extensions = append(m.extensions, Extension{Type: typ, Data: ext})
		if !set.add(typ) {
			m.duplicateExtension = true // answered with illegal_parameter
			continue
		}
		switch typ {
		case extServerName:
			if !ext.Empty() {
				return false
			}
			m.serverNameAck = true
		case extALPN:
			var list, p cryptobyte.String
			if !ext.ReadUint16LengthPrefixed(&list) || !list.ReadUint8LengthPrefixed(&p) ||
				p.Empty() || !list.Empty() || !ext.Empty() {
				return false
			}
			m.alpnProtocol = string(p)
		case extEarlyData:
			if !ext.Empty() {
				return false
			}
			m.earlyData = true
		}
	}
	return true
}

// certificateMsg is RFC 8446 §4.4.2's Certificate. Per-entry extensions
// are parsed for syntax and dropped (we offer none that apply).
type certificateMsg struct {
	raw          []byte
	context      []byte
	certificates [][]byte
	// entryExtensionTypes lists the per-certificate extension types seen
	// (a client that offered none must reject them).
	entryExtensionTypes []uint16
}

func (m *certificateMsg) marshal() []byte {
	if m.raw != nil {
		return m.raw
	}
	m.raw = marshalHandshake(typeCertificate, func(b *cryptobyte.Builder) {
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.context) })
		b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, c := range m.certificates {
				b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(c) })
				b.AddUint16(0) // no per-certificate extensions
			}
		})
	})
	return m.raw
}

func (m *certificateMsg) unmarshal(data []byte) bool {
	*m = certificateMsg{raw: data}
	s, ok := readHandshakeBody(data, typeCertificate)
	if !ok {
		return false
	}
	var ctx, list cryptobyte.String
	if !s.ReadUint8LengthPrefixed(&ctx) || !s.ReadUint24LengthPrefixed(&list) || !s.Empty() {
		return false
	}
	m.context = ctx
	for !list.Empty() {
		var cert, exts cryptobyte.String
		if !list.ReadUint24LengthPrefixed(&cert) || cert.Empty() || !list.ReadUint16LengthPrefixed(&exts) {
			return false
		}
		for !exts.Empty() {
			var typ uint16
			var ext cryptobyte.String
			if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&ext) {
				return false
			}
			m.entryExtensionTypes = append(m.entryExtensionTypes, typ)
		}
		m.certificates = append(m.certificates, cert)
	}
	return true
}

// certificateRequestMsg is RFC 8446 §4.3.2.
type certificateRequestMsg struct {
	raw        []byte
	context    []byte
	sigAlgs    []uint16
	extensions []Extension
}

func (m *certificateRequestMsg) marshal() []byte {
	if m.raw != nil {
		return m.raw
	}
	m.raw = marshalHandshake(typeCertificateRequest, func(b *cryptobyte.Builder) {
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.context) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			addUint16ListExtension(b, extSignatureAlgorithms, m.sigAlgs)
		})
	})
	return m.raw
}

func (m *certificateRequestMsg) unmarshal(data []byte) bool {
	*m = certificateRequestMsg{raw: data}
	s, ok := readHandshakeBody(data, typeCertificateRequest)
	if !ok {
		return false
	}
	var ctx, exts cryptobyte.String
	if !s.ReadUint8LengthPrefixed(&ctx) || !s.ReadUint16LengthPrefixed(&exts) || !s.Empty() {
		return false
	}
	m.context = ctx
	var set extensionSet
	for !exts.Empty() {
		var typ uint16
		var ext cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&ext) || !set.add(typ) {
			return false
		}
		m.extensions = append(m.extensions, Extension{Type: typ, Data: ext})
		if typ == extSignatureAlgorithms {
			var list cryptobyte.String
			if !ext.ReadUint16LengthPrefixed(&list) || list.Empty() || len(list)%2 != 0 || !ext.Empty() {
				return false
			}
			for !list.Empty() {
				var v uint16
				list.ReadUint16(&v)
				m.sigAlgs = append(m.sigAlgs, v)
			}
		}
	}
	return len(m.sigAlgs) > 0 // signature_algorithms is mandatory here
}

// certificateVerifyMsg is RFC 8446 §4.4.3.
type certificateVerifyMsg struct {
	raw       []byte
	scheme    uint16
	signature []byte
}

func (m *certificateVerifyMsg) marshal() []byte {
	if m.raw != nil {
		return m.raw
	}
	m.raw = marshalHandshake(typeCertificateVerify, func(b *cryptobyte.Builder) {
		b.AddUint16(m.scheme)
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.signature) })
	})
	return m.raw
}

func (m *certificateVerifyMsg) unmarshal(data []byte) bool {
	*m = certificateVerifyMsg{raw: data}
	s, ok := readHandshakeBody(data, typeCertificateVerify)
	if !ok {
		return false
	}
	var sig cryptobyte.String
	if !s.ReadUint16(&m.scheme) || !s.ReadUint16LengthPrefixed(&sig) || sig.Empty() || !s.Empty() {
		return false
	}
	m.signature = sig
	return true
}

// finishedMsg is RFC 8446 §4.4.4. The length of verifyData is checked
// against the suite's hash by the handshake.
type finishedMsg struct {
	raw        []byte
	verifyData []byte
}

func (m *finishedMsg) marshal() []byte {
	if m.raw != nil {
		return m.raw
	}
	m.raw = marshalHandshake(typeFinished, func(b *cryptobyte.Builder) { b.AddBytes(m.verifyData) })
	return m.raw
}

func (m *finishedMsg) unmarshal(data []byte) bool {
	*m = finishedMsg{raw: data}
	s, ok := readHandshakeBody(data, typeFinished)
	if !ok || len(s) < 32 {
		return false
	}
	m.verifyData = s
	return true
}

// newSessionTicketMsg is RFC 8446 §4.6.1.
type newSessionTicketMsg struct {
	raw          []byte
	lifetime     uint32
	ageAdd       uint32
	nonce        []byte
	label        []byte
	maxEarlyData uint32
	extensions   []Extension // wire order (marshal: written as given)

	duplicateExtension bool
}

func (m *newSessionTicketMsg) marshal() []byte {
	if m.raw != nil {
		return m.raw
	}
	m.raw = marshalHandshake(typeNewSessionTicket, func(b *cryptobyte.Builder) {
		b.AddUint32(m.lifetime)
		b.AddUint32(m.ageAdd)
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.nonce) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.label) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, e := range m.extensions {
				b.AddUint16(e.Type)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(e.Data) })
			}
		})
	})
	return m.raw
}

func (m *newSessionTicketMsg) unmarshal(data []byte) bool {
	*m = newSessionTicketMsg{raw: data}
	s, ok := readHandshakeBody(data, typeNewSessionTicket)
	if !ok {
		return false
	}
	var nonce, label, exts cryptobyte.String
	if !s.ReadUint32(&m.lifetime) || !s.ReadUint32(&m.ageAdd) ||
		!s.ReadUint8LengthPrefixed(&nonce) || !s.ReadUint16LengthPrefixed(&label) || label.Empty() ||
		!s.ReadUint16LengthPrefixed(&exts) || !s.Empty() {
		return false
	}
	m.nonce, m.label = nonce, label
	var set extensionSet
	for !exts.Empty() {
		var typ uint16
		var ext cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&ext) {
			return false
		}
		m.extensions = append(m.extensions, Extension{Type: typ, Data: ext})
		if !set.add(typ) {
			m.duplicateExtension = true // answered with illegal_parameter
			continue
		}
		if typ == extEarlyData {
			if !ext.ReadUint32(&m.maxEarlyData) || !ext.Empty() {
				return false
			}
		}
	}
	return true
}

// keyUpdateMsg is RFC 8446 §4.6.3. requestUpdate holds the raw byte; values
// other than 0 and 1 are the handshake's illegal_parameter.
type keyUpdateMsg struct {
	raw           []byte
	requestUpdate uint8
}

func (m *keyUpdateMsg) marshal() []byte {
	if m.raw != nil {
		return m.raw
	}
	m.raw = []byte{typeKeyUpdate, 0, 0, 1, m.requestUpdate}
	return m.raw
}

func (m *keyUpdateMsg) unmarshal(data []byte) bool {
	*m = keyUpdateMsg{raw: data}
	s, ok := readHandshakeBody(data, typeKeyUpdate)
	if !ok || !s.ReadUint8(&m.requestUpdate) || !s.Empty() {
		return false
	}
	return true
}

// messageHashMsg builds the synthetic message_hash message that replaces
// ClientHello1 in the transcript after a HelloRetryRequest (§4.4.1).
func messageHashMsg(hashOfCH1 []byte) []byte {
	out := make([]byte, 4+len(hashOfCH1))
	out[0] = typeMessageHash
	out[3] = byte(len(hashOfCH1))
	copy(out[4:], hashOfCH1)
	return out
}
