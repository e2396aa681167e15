package parser

import (
	"math/rand/v2"

	"github.com/anysched/anysched/codepoint"
)

// Default code points of the draft's extensions; the numbers live in
// package codepoint, shared with the TLS side.
const (
	DefaultMigrationSupport = codepoint.MigrationSupport
	DefaultMigrationToken   = codepoint.MigrationToken
)

// TLS code points the scanner reads.
const (
	tlsRecordHandshake       uint8  = 22
	tlsHandshakeClientHello  uint8  = 1
	tlsMaxRecordLen                 = 1 << 14
	tlsRecordHeaderLen              = 5
	tlsHandshakeHeaderLen           = 4
	extServerName            uint16 = 0
	extPreSharedKey          uint16 = 41
	extSupportedVersions     uint16 = 43
	extEncryptedClientHello  uint16 = 0xFE0D
	tlsVersion13             uint16 = 0x0304
	sniHostName              uint8  = 0
	maxSessionIDLen                 = 32
	splitExtensionBodyMaxLen        = 512
)

// MaxExtensions is how many extensions a ClientHello may carry before the
// scanner calls it malformed; real ones carry fewer than 30.
const MaxExtensions = 128

// HelloConfig holds the code points of the extensions the router schedules
// on. They are parameters because the draft has not been assigned numbers.
type HelloConfig struct {
	MigrationSupport uint16 // empty extension in the ClientHello
	MigrationToken   uint16 // MigrationToken in a resumption ClientHello
}

// DefaultHelloConfig returns the default code points (0xFE4D, 0xFE4F).
func DefaultHelloConfig() HelloConfig {
	return HelloConfig{MigrationSupport: DefaultMigrationSupport, MigrationToken: DefaultMigrationToken}
}

var defaultHelloConfig = DefaultHelloConfig()

// HelloStatus is the outcome of ScanClientHello.
type HelloStatus uint8

// Outcomes of ScanClientHello.
const (
	// HelloNotClientHello: the bytes do not start a TLS handshake record
	// carrying a ClientHello.
	HelloNotClientHello HelloStatus = iota
	// HelloIncomplete: the bytes are the start of a ClientHello; Missing
	// more are needed at least. Fields seen so far are filled in.
	HelloIncomplete
	// HelloComplete: the whole ClientHello was read and is well formed.
	HelloComplete
	// HelloMalformed: a ClientHello that breaks the rules; see Malformed.
	HelloMalformed
	// NumHelloStatus is the number of HelloStatus values.
	NumHelloStatus
)

var helloStatusNames = [NumHelloStatus]string{"not_client_hello", "incomplete", "complete", "malformed"}

// String returns a short snake_case name.
func (s HelloStatus) String() string {
	if s < NumHelloStatus {
		return helloStatusNames[s]
	}
	return "unknown_hello_status"
}

// MalformedReason says what is wrong with a malformed ClientHello.
type MalformedReason uint8

// Reasons for HelloMalformed.
const (
	MalformedNone MalformedReason = iota
	// MalformedRecordHeader: a record of the ClientHello has length 0 or
	// above 2^14 (its legacy_record_version is never looked at).
	MalformedRecordHeader
	// MalformedRecordType: a non-handshake record interrupts the ClientHello.
	MalformedRecordType
	// MalformedTrailingRecordBytes: a record holds bytes past the end of the
	// ClientHello message.
	MalformedTrailingRecordBytes
	// MalformedHandshakeLength: a field runs past the end of the message.
	MalformedHandshakeLength
	// MalformedSessionID: legacy_session_id longer than 32 bytes.
	MalformedSessionID
	// MalformedCipherSuites: empty or odd-length cipher_suites.
	MalformedCipherSuites
	// MalformedCompression: empty legacy_compression_methods.
	MalformedCompression
	// MalformedExtensionsLength: the extensions block length does not match
	// the rest of the message (lying length or trailing bytes).
	MalformedExtensionsLength
	// MalformedExtensionLength: an extension runs past the block.
	MalformedExtensionLength
	// MalformedDuplicateExtension: an extension type appears twice.
	MalformedDuplicateExtension
	// MalformedTooManyExtensions: more than MaxExtensions extensions.
	MalformedTooManyExtensions
	// MalformedServerName: the server_name extension is inconsistent.
	MalformedServerName
	// MalformedSupportedVersions: the supported_versions list is
	// inconsistent.
	MalformedSupportedVersions
	// MalformedPSKNotLast: pre_shared_key is not the last extension
	// (RFC 8446 §4.2.11).
	MalformedPSKNotLast
	// NumMalformedReason is the number of MalformedReason values.
	NumMalformedReason
)

var malformedNames = [NumMalformedReason]string{
	"none", "record_header", "record_type", "trailing_record_bytes",
	"handshake_length", "session_id", "cipher_suites", "compression",
	"extensions_length", "extension_length", "duplicate_extension",
	"too_many_extensions", "server_name", "supported_versions", "psk_not_last",
}

// String returns a short snake_case name.
func (m MalformedReason) String() string {
	if m < NumMalformedReason {
		return malformedNames[m]
	}
	return "unknown_malformed_reason"
}

// ClientHello is what ScanClientHello found. Byte slices point into the
// scanned buffer (or, for a host name split across records, into the
// struct itself), so they are valid while that buffer is unchanged and the
// struct is not overwritten.
type ClientHello struct {
	// IsClientHello: the bytes are (the start of) a ClientHello, possibly a
	// malformed one; false only for HelloNotClientHello.
	IsClientHello bool
	// Complete: the whole message was read and is well formed.
	Complete bool
	// Missing is a lower bound on how many more bytes are needed when the
	// status is HelloIncomplete, else 0.
	Missing int
	// Malformed says why the status is HelloMalformed.
	Malformed MalformedReason

	// Records is how many TLS records carried the message (so far).
	Records int
	// Length is the handshake message length including its 4-byte header,
	// 0 until the header was seen.
	Length int
	// End is the offset just past the last record of the ClientHello, when
	// Complete. Later bytes (ChangeCipherSpec, early data) are not read.
	End int
	// LegacyVersion is the ClientHello's legacy_version.
	LegacyVersion uint16
	// Extensions counts the extensions seen.
	Extensions int

	// MigrationSupport: the migration_support extension is present.
	MigrationSupport bool
	// MigrationToken: the migration_token extension is present.
	MigrationToken bool
	// MigrationTokenData is the migration_token extension's body when it lies
	// in one record and was fully received, else nil.
	MigrationTokenData []byte
	// SNI is the first host_name of server_name, nil if none.
	SNI []byte
	// OffersTLS13: supported_versions lists TLS 1.3 (0x0304).
	OffersTLS13 bool
	// PreSharedKey: the pre_shared_key extension is present (resumption).
	PreSharedKey bool
	// ECH: encrypted_client_hello (0xFE0D) is present (real or GREASE ECH).
	ECH bool
	// GREASE: at least one GREASE extension type (RFC 8701) was seen.
	GREASE bool

	sniBuf   [255]byte
	extTypes [MaxExtensions]uint16
}

func (h *ClientHello) reset() {
	h.IsClientHello, h.Complete, h.Missing, h.Malformed = false, false, 0, MalformedNone
	h.Records, h.Length, h.End, h.LegacyVersion, h.Extensions = 0, 0, 0, 0, 0
	h.MigrationSupport, h.MigrationToken, h.MigrationTokenData, h.SNI = false, false, nil, nil
	h.OffersTLS13, h.PreSharedKey, h.ECH, h.GREASE = false, false, false, false
}

// IsGREASE reports whether v is a GREASE value (RFC 8701): 0x0A0A, 0x1A1A,
// ... 0xFAFA.
func IsGREASE(v uint16) bool {
	return v&0x0f0f == 0x0a0a && v>>8 == v&0xff
}

// ScanClientHello reads the client's first TCP payload bytes as TLS records
// and reports whether they carry a ClientHello, whether it is complete (or
// how many bytes are missing) and the extensions the router cares about.
// The handshake message may span several records. cfg nil means
// DefaultHelloConfig. It never allocates and never panics.
func ScanClientHello(payload []byte, cfg *HelloConfig, out *ClientHello) HelloStatus {
	out.reset()
	if cfg == nil {
		cfg = &defaultHelloConfig
	}
	if !recordPrefixOK(payload) {
		return HelloNotClientHello
	}
	if len(payload) > tlsRecordHeaderLen && payload[5] != tlsHandshakeClientHello && be16(payload[3:5]) != 0 {
		return HelloNotClientHello
	}
	out.IsClientHello = true
	if len(payload) >= tlsRecordHeaderLen {
		recLen := int(be16(payload[3:5]))
		if recLen == 0 || recLen > tlsMaxRecordLen {
			out.malformed(MalformedRecordHeader)
			return HelloMalformed
		}
		// The usual case: the whole message in one record, all present.
		if wholeInOneRecord(payload) {
			out.Records, out.Length, out.End = 1, recLen, tlsRecordHeaderLen+recLen
			if out.scanBodyContiguous(payload[tlsRecordHeaderLen+tlsHandshakeHeaderLen:out.End], cfg) == stepMalformed {
				return HelloMalformed
			}
			out.Complete = true
			return HelloComplete
		}
	}
	var scan helloScan
	scan.reset()
	return scan.advance(payload, cfg, out)
}

// wholeInOneRecord reports whether b, which starts a handshake record,
// holds a whole handshake message that fills exactly its first record.
func wholeInOneRecord(b []byte) bool {
	if len(b) < tlsRecordHeaderLen+tlsHandshakeHeaderLen {
		return false
	}
	recLen := int(be16(b[3:5]))
	return recLen >= tlsHandshakeHeaderLen && recLen <= tlsMaxRecordLen && len(b) >= tlsRecordHeaderLen+recLen &&
		int(b[6])<<16|int(b[7])<<8|int(b[8]) == recLen-tlsHandshakeHeaderLen
}

// scanStep is what a step of the scan tells its caller, apart from the
// HelloStatus that ScanClientHello reports: go on, stop reading (the bytes
// ran out, or the message ended; the record layer says which), or the
// ClientHello is malformed (ClientHello.Malformed says why).
type scanStep uint8

const (
	stepOK scanStep = iota
	stepStop
	stepMalformed
)

// recordPrefixOK checks the bytes of a record header that are present:
// content type handshake. The legacy_record_version is not read: RFC 8446
// §5.1 says it "MUST be ignored for all purposes", our tls13 server
// ignores it, Go's crypto/tls takes any value below 0x1000 in a first
// record and OpenSSL any minor of major 3, and old clients send 0x0300 or
// 0x0301. The router must recognise every ClientHello a node accepts,
// else it never pins a legacy client; recognising more costs at most a pin
// for a flow whose first bytes look like a handshake record on a TLS VIP.
func recordPrefixOK(b []byte) bool {
	return len(b) > 0 && b[0] == tlsRecordHandshake
}

func (h *ClientHello) malformed(r MalformedReason) scanStep {
	h.Malformed = r
	h.Complete = false
	h.Missing = 0
	return stepMalformed
}

// hsRemaining is how many handshake bytes are still to come after have,
// given the message length total (-1 while the header is incomplete).
func hsRemaining(have, total int) int {
	if total < 0 {
		return max(tlsHandshakeHeaderLen-have, 0)
	}
	return max(total-have, 0)
}

// stillNeeded is a lower bound on the bytes needed once the current record
// is complete with have handshake bytes: nothing if the message is done,
// else another record header and the rest of the message.
func stillNeeded(have, total int) int {
	if r := hsRemaining(have, total); r > 0 {
		return tlsRecordHeaderLen + r
	}
	return 0
}

// splitBody copies an n-byte extension body that spans records into tmp.
// It returns nil when the body is longer than tmp (then it is skipped) and
// short when not all of it is present.
func splitBody(r *hsReader, n int, tmp []byte) (body []byte, short bool) {
	if n > len(tmp) {
		r.skip(n)
		return nil, r.short
	}
	if !r.copyTo(tmp[:n]) {
		return nil, true
	}
	return tmp[:n], false
}

// readServerName parses server_name (RFC 6066 §3) and keeps the first
// host_name. Returns stepOK when fine.
func (h *ClientHello) readServerName(r *hsReader, n int) scanStep {
	if body := r.contiguous(n); body != nil {
		at, size, st := h.parseServerName(body)
		if size > 0 {
			h.SNI = body[at : at+size : at+size]
		}
		return st
	}
	return h.readServerNameSplit(r, n)
}

// readServerNameSplit handles a server_name body that spans records: it is
// copied to a temporary, and the host name from there into the struct.
func (h *ClientHello) readServerNameSplit(r *hsReader, n int) scanStep {
	var tmp [splitExtensionBodyMaxLen]byte
	body, short := splitBody(r, n, tmp[:])
	if short {
		return stepStop
	}
	if body == nil {
		return stepOK // too long to copy: not inspected
	}
	at, size, st := h.parseServerName(body)
	if size > 0 && size <= len(h.sniBuf) {
		h.SNI = h.sniBuf[:copy(h.sniBuf[:], body[at:at+size])]
	}
	return st
}

// parseServerName checks a server_name body and returns where the first
// host_name lies in it (size 0: none).
func (h *ClientHello) parseServerName(body []byte) (at, size int, st scanStep) {
	if len(body) < 2 || int(be16(body)) != len(body)-2 || len(body) == 2 {
		return 0, 0, h.malformed(MalformedServerName)
	}
	for pos := 2; pos < len(body); {
		if len(body)-pos < 3 {
			return 0, 0, h.malformed(MalformedServerName)
		}
		nameType, nameLen := body[pos], int(be16(body[pos+1:pos+3]))
		if nameLen == 0 || nameLen > len(body)-pos-3 {
			return 0, 0, h.malformed(MalformedServerName)
		}
		if nameType == sniHostName && size == 0 {
			at, size = pos+3, nameLen
		}
		pos += 3 + nameLen
	}
	return at, size, stepOK
}

// readSupportedVersions parses supported_versions (RFC 8446 §4.2.1) and
// notes whether TLS 1.3 is offered. Returns stepOK when fine.
func (h *ClientHello) readSupportedVersions(r *hsReader, n int) scanStep {
	if body := r.contiguous(n); body != nil {
		return h.parseSupportedVersions(body)
	}
	if n == 0 {
		return h.malformed(MalformedSupportedVersions)
	}
	var tmp [splitExtensionBodyMaxLen]byte
	body, short := splitBody(r, n, tmp[:])
	if short {
		return stepStop
	}
	return h.parseSupportedVersions(body) // nil when too long: malformed
}

func (h *ClientHello) parseSupportedVersions(body []byte) scanStep {
	if len(body) < 3 || int(body[0]) != len(body)-1 || body[0]&1 != 0 {
		return h.malformed(MalformedSupportedVersions)
	}
	for v := body[1:]; len(v) >= 2; v = v[2:] {
		if be16(v) == tlsVersion13 {
			h.OffersTLS13 = true
		}
	}
	return stepOK
}

// extHashMul keys the duplicate-extension filter per process, so nobody can
// pick extension types that all collide and make the check quadratic.
var extHashMul = rand.Uint32() | 1

// extFilter finds duplicate extension types without a map: a 256-bit
// filter, and on a filter hit a look through the types seen so far, which
// are kept in the ClientHello (so they need no zeroing per scan).
type extFilter [4]uint64

// add records typ as the n-th extension in seen; it reports a duplicate or
// too many.
func (f *extFilter) add(seen *[MaxExtensions]uint16, typ uint16, n int) MalformedReason {
	if n >= MaxExtensions {
		return MalformedTooManyExtensions
	}
	i := uint32(typ) * extHashMul >> 24
	bit := uint64(1) << (i & 63)
	if f[i>>6]&bit != 0 {
		for _, t := range seen[:n] {
			if t == typ {
				return MalformedDuplicateExtension
			}
		}
	}
	f[i>>6] |= bit
	seen[n] = typ
	return MalformedNone
}

// scanBodyContiguous is helloScan's body walk for a message that lies, complete, in one
// record: plain slice arithmetic, no record hopping. It must find exactly
// what helloScan finds (FuzzScanClientHello re-frames hellos to check).
func (h *ClientHello) scanBodyContiguous(b []byte, cfg *HelloConfig) scanStep {
	if len(b) < 2+32+1 {
		return h.malformed(MalformedHandshakeLength)
	}
	h.LegacyVersion = be16(b[0:2])
	sid := int(b[34])
	b = b[35:]
	if sid > maxSessionIDLen {
		return h.malformed(MalformedSessionID)
	}
	if sid+2 > len(b) {
		return h.malformed(MalformedHandshakeLength)
	}
	cs := int(be16(b[sid : sid+2]))
	b = b[sid+2:]
	if cs == 0 || cs&1 != 0 {
		return h.malformed(MalformedCipherSuites)
	}
	if cs+1 > len(b) {
		return h.malformed(MalformedHandshakeLength)
	}
	cm := int(b[cs])
	b = b[cs+1:]
	if cm == 0 {
		return h.malformed(MalformedCompression)
	}
	if cm > len(b) {
		return h.malformed(MalformedHandshakeLength)
	}
	b = b[cm:]
	if len(b) == 0 {
		return stepOK
	}
	if len(b) < 2 || int(be16(b[0:2])) != len(b)-2 {
		return h.malformed(MalformedExtensionsLength)
	}
	b = b[2:]
	var exts extFilter
	pskSeen := false
	for len(b) > 0 {
		if len(b) < 4 {
			return h.malformed(MalformedExtensionLength)
		}
		typ := be16(b[0:2])
		n := int(be16(b[2:4]))
		if n > len(b)-4 {
			return h.malformed(MalformedExtensionLength)
		}
		body := b[4 : 4+n : 4+n]
		b = b[4+n:]
		if pskSeen {
			return h.malformed(MalformedPSKNotLast)
		}
		if m := exts.add(&h.extTypes, typ, h.Extensions); m != MalformedNone {
			return h.malformed(m)
		}
		h.Extensions++
		if typ == cfg.MigrationSupport {
			h.MigrationSupport = true
		}
		switch {
		case typ == cfg.MigrationToken:
			h.MigrationToken = true
			h.MigrationTokenData = body
		case typ == extServerName:
			at, size, st := h.parseServerName(body)
			if st != stepOK {
				return st
			}
			if size > 0 {
				h.SNI = body[at : at+size : at+size]
			}
		case typ == extSupportedVersions:
			if st := h.parseSupportedVersions(body); st != stepOK {
				return st
			}
		case typ == extPreSharedKey:
			h.PreSharedKey = true
			pskSeen = true
		case typ == extEncryptedClientHello:
			h.ECH = true
		case IsGREASE(typ):
			h.GREASE = true
		}
	}
	return stepOK
}
