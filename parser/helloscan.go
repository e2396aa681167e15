package parser

// helloScan is a ClientHello scan that stops where the bytes present end
// and resumes from there when more arrive. The record layer and the
// message body are each walked once, an item (a field, an extension's
// header, an extension's body) read only when all its bytes are present,
// so a ClientHello fed in n pieces costs O(its length), not O(n × its
// length): 1-byte records one per segment cannot make the router rescan.
//
// Fed the prefixes of one byte stream in order, it reports after each
// exactly what a fresh scan of that prefix reports (FuzzReassembler
// checks): ScanClientHello is a fresh helloScan run once.
type helloScan struct {
	// The record layer.
	recPos  int  // offset of the record header being read
	recSeen bool // the header at recPos was checked and counted
	// identified: the first record's header and handshake type are
	// present and checked, so the bytes are a ClientHello's.
	identified bool
	have       int // handshake bytes in the records before recPos
	total      int // the message's length with its header, -1 until known
	avail      int // handshake bytes present
	done       bool
	hdr        [tlsHandshakeHeaderLen]byte

	// The body.
	phase   scanPhase
	at      int // handshake bytes the body walk consumed
	left    int // declared bytes left in the message (or extension block)
	item    int // length of the item the phase reads next
	extType uint16
	pskSeen bool
	rd      hsReader
	exts    extFilter
	// steps counts record headers walked and body items tried: the work
	// of the scan, which tests hold to O(bytes) however the bytes arrive.
	steps int
}

// scanPhase is the next item the body walk reads.
type scanPhase uint8

const (
	phaseHandshakeHeader scanPhase = iota // waiting for the handshake header
	phaseHead                             // legacy_version, random, session id length
	phaseSessionID                        // session id, cipher suites length
	phaseCipherSuites                     // cipher suites, compression methods length
	phaseCompression                      // compression methods
	phaseExtensionsLength
	phaseExtensionHeader
	phaseExtensionBody
	phaseEnd // the body is read (or malformed): nothing more to walk
)

func (s *helloScan) reset() {
	*s = helloScan{total: -1}
}

// advance scans b, which extends the bytes of earlier calls (b[:len of the
// last call] unchanged), into h, which holds what earlier calls found.
func (s *helloScan) advance(b []byte, cfg *HelloConfig, h *ClientHello) HelloStatus {
	if st := s.advanceRecords(b, h); st == HelloNotClientHello || st == HelloMalformed {
		return st
	}
	if s.walkBody(b, cfg, h) == stepMalformed {
		return HelloMalformed
	}
	if s.done {
		h.Complete = true
		h.Missing = 0
		return HelloComplete
	}
	return HelloIncomplete
}

// advanceRecords is advance's first half: it checks that b starts a
// ClientHello and walks the record layer. HelloComplete means every byte
// of the message is present (the body is not read yet).
func (s *helloScan) advanceRecords(b []byte, h *ClientHello) HelloStatus {
	if !s.identified {
		if !recordPrefixOK(b) {
			h.reset()
			return HelloNotClientHello
		}
		if len(b) > tlsRecordHeaderLen && b[5] != tlsHandshakeClientHello && be16(b[3:5]) != 0 {
			h.reset()
			return HelloNotClientHello
		}
		h.IsClientHello = true
		s.identified = len(b) > tlsRecordHeaderLen
	}
	if h.Malformed != MalformedNone {
		return HelloMalformed
	}
	if s.walkRecords(b, h) == stepMalformed {
		// A fresh scan finds a broken record before it reads the body:
		// what earlier calls read of the body is not reported either.
		records, length, why := h.Records, h.Length, h.Malformed
		h.reset()
		h.IsClientHello, h.Records, h.Length, h.Malformed = true, records, length, why
		s.phase = phaseEnd
		return HelloMalformed
	}
	if s.done {
		return HelloComplete
	}
	return HelloIncomplete
}

// walkRecords walks the record layer from where it stopped: it checks
// every record header present, finds the handshake length and sets
// Records, Length, End and Missing, and s.avail and s.done.
func (s *helloScan) walkRecords(b []byte, h *ClientHello) scanStep {
	if s.done {
		return stepOK
	}
	for {
		s.steps++
		pos := s.recPos
		if len(b)-pos < tlsRecordHeaderLen {
			if pos > 0 && pos < len(b) && !recordPrefixOK(b[pos:]) {
				return h.malformed(MalformedRecordType)
			}
			h.Missing = tlsRecordHeaderLen - (len(b) - pos) + hsRemaining(s.have, s.total)
			s.avail = s.have
			return stepOK
		}
		recLen := int(be16(b[pos+3 : pos+5]))
		if !s.recSeen {
			if pos > 0 && !recordPrefixOK(b[pos:pos+3]) {
				return h.malformed(MalformedRecordType)
			}
			if recLen == 0 || recLen > tlsMaxRecordLen {
				return h.malformed(MalformedRecordHeader)
			}
			h.Records++
			s.recSeen = true
		}
		frag := pos + tlsRecordHeaderLen
		fragEnd := frag + recLen
		avail := min(fragEnd, len(b)) - frag
		for k := 0; s.have+k < tlsHandshakeHeaderLen && k < avail; k++ {
			s.hdr[s.have+k] = b[frag+k]
		}
		if s.have < tlsHandshakeHeaderLen && s.have+avail >= 1 && s.hdr[0] != tlsHandshakeClientHello {
			return h.malformed(MalformedRecordType)
		}
		if s.total < 0 && s.have+avail >= tlsHandshakeHeaderLen {
			s.total = tlsHandshakeHeaderLen + (int(s.hdr[1])<<16 | int(s.hdr[2])<<8 | int(s.hdr[3]))
			h.Length = s.total
		}
		if s.total >= 0 && s.have+recLen > s.total {
			return h.malformed(MalformedTrailingRecordBytes)
		}
		if fragEnd > len(b) {
			h.Missing = fragEnd - len(b) + stillNeeded(s.have+recLen, s.total)
			s.avail = s.have + avail
			return stepOK
		}
		s.have += recLen
		s.recPos, s.recSeen = fragEnd, false
		if s.have == s.total {
			h.End = fragEnd
			s.avail, s.done = s.have, true
			return stepOK
		}
	}
}

// need reports whether the next n handshake bytes are present.
func (s *helloScan) need(n int) bool { return s.at+n <= s.avail }

// consume moves the walk past n handshake bytes just read.
func (s *helloScan) consume(n int) { s.at += n }

// walkBody walks the ClientHello body from where it stopped, reading each
// item once all its bytes are present, and fills h.
func (s *helloScan) walkBody(b []byte, cfg *HelloConfig, h *ClientHello) scanStep {
	r := &s.rd
	if s.phase == phaseHandshakeHeader {
		if s.total < 0 {
			return stepStop
		}
		r.init(b)
		r.skip(tlsHandshakeHeaderLen)
		s.at = tlsHandshakeHeaderLen
		s.left = s.total - tlsHandshakeHeaderLen
		if s.left < 2+32+1 {
			s.phase = phaseEnd
			return h.malformed(MalformedHandshakeLength)
		}
		s.phase = phaseHead
	}
	// The buffer grew since the last call: the reader's view of it, too.
	// The walk reads through a copy on the stack, stored back at the end.
	rd := *r
	rd.b = b
	rd.end = min(rd.recEnd, len(b))
	for {
		st := s.step(&rd, cfg, h)
		if st != stepOK {
			if st == stepMalformed {
				s.phase = phaseEnd
			}
			*r = rd
			return st
		}
	}
}

// step reads the item of the current phase if it is present: stepOK to go
// on, stepStop when it is not (or the body is done), stepMalformed.
func (s *helloScan) step(r *hsReader, cfg *HelloConfig, h *ClientHello) scanStep {
	s.steps++
	switch s.phase {
	case phaseHead:
		if !s.need(2 + 32 + 1) {
			return stepStop
		}
		h.LegacyVersion = uint16(r.u16())
		r.skip(32)
		sid := r.u8()
		s.consume(2 + 32 + 1)
		s.left -= 2 + 32 + 1
		if sid > maxSessionIDLen {
			return h.malformed(MalformedSessionID)
		}
		if sid+2 > s.left {
			return h.malformed(MalformedHandshakeLength)
		}
		s.item, s.phase = sid, phaseSessionID
	case phaseSessionID:
		if !s.need(s.item + 2) {
			return stepStop
		}
		r.skip(s.item)
		cs := r.u16()
		s.consume(s.item + 2)
		s.left -= s.item + 2
		if cs == 0 || cs&1 != 0 {
			return h.malformed(MalformedCipherSuites)
		}
		if cs+1 > s.left {
			return h.malformed(MalformedHandshakeLength)
		}
		s.item, s.phase = cs, phaseCipherSuites
	case phaseCipherSuites:
		if !s.need(s.item + 1) {
			return stepStop
		}
		r.skip(s.item)
		cm := r.u8()
		s.consume(s.item + 1)
		s.left -= s.item + 1
		if cm == 0 {
			return h.malformed(MalformedCompression)
		}
		if cm > s.left {
			return h.malformed(MalformedHandshakeLength)
		}
		s.item, s.phase = cm, phaseCompression
	case phaseCompression:
		if !s.need(s.item) {
			return stepStop
		}
		r.skip(s.item)
		s.consume(s.item)
		s.left -= s.item
		if s.left == 0 { // no extensions: a TLS 1.2-or-older hello
			s.phase = phaseEnd
			return stepStop
		}
		if s.left < 2 {
			return h.malformed(MalformedExtensionsLength)
		}
		s.phase = phaseExtensionsLength
	case phaseExtensionsLength:
		if !s.need(2) {
			return stepStop
		}
		el := r.u16()
		s.consume(2)
		s.left -= 2
		if el != s.left {
			return h.malformed(MalformedExtensionsLength)
		}
		s.phase = phaseExtensionHeader
	case phaseExtensionHeader:
		if s.left == 0 {
			s.phase = phaseEnd
			return stepStop
		}
		if s.left < 4 {
			return h.malformed(MalformedExtensionLength)
		}
		if !s.need(4) {
			return stepStop
		}
		typ := uint16(r.u16())
		n := r.u16()
		s.consume(4)
		s.left -= 4
		if n > s.left {
			return h.malformed(MalformedExtensionLength)
		}
		s.left -= n
		if s.pskSeen {
			return h.malformed(MalformedPSKNotLast)
		}
		if m := s.exts.add(&h.extTypes, typ, h.Extensions); m != MalformedNone {
			return h.malformed(m)
		}
		h.Extensions++
		if typ == cfg.MigrationSupport {
			h.MigrationSupport = true
		}
		// What the header alone tells, in the order of the body switch.
		switch {
		case typ == cfg.MigrationToken:
			h.MigrationToken = true
		case typ == extServerName, typ == extSupportedVersions:
		case typ == extPreSharedKey:
			h.PreSharedKey = true
			s.pskSeen = true
		case typ == extEncryptedClientHello:
			h.ECH = true
		case IsGREASE(typ):
			h.GREASE = true
		}
		s.extType, s.item, s.phase = typ, n, phaseExtensionBody
	case phaseExtensionBody:
		n := s.item
		if !s.need(n) {
			return stepStop
		}
		s.consume(n)
		s.phase = phaseExtensionHeader
		switch typ := s.extType; {
		case typ == cfg.MigrationToken:
			h.MigrationTokenData = r.contiguous(n)
			if h.MigrationTokenData == nil {
				r.skip(n)
			}
		case typ == extServerName:
			if st := h.readServerName(r, n); st != stepOK {
				return st
			}
		case typ == extSupportedVersions:
			if st := h.readSupportedVersions(r, n); st != stepOK {
				return st
			}
		default:
			r.skip(n)
		}
	default:
		return stepStop
	}
	if r.short {
		// The item was present (need said so): the record layer and the
		// reader disagree. Stop rather than trust the zeros read.
		s.phase = phaseEnd
		return stepStop
	}
	return stepOK
}
