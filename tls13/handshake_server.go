package tls13

import (
	"crypto/hmac"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"slices"
	"time"

	"golang.org/x/crypto/cryptobyte"
)

// serverHandshakeState carries one server handshake.
type serverHandshakeState struct {
	c           *Conn
	ch          *clientHelloMsg
	ch1         *clientHelloMsg // set after a HelloRetryRequest
	suite       *cipherSuite
	group       tls.CurveID
	clientShare []byte
	cert        *tls.Certificate
	sigScheme   uint16
	psk         []byte
	pskIndex    int
	ticket      *ticketState
	ts          *transcript
	hrrPrefix   []byte // message_hash(ClientHello1) ‖ HelloRetryRequest
	cookie      []byte
	info        *ClientHelloInfo
	clientAge   time.Duration
	// Kept between the server's flight and the client's Finished.
	cHS, cAP   []byte
	expectedCF []byte // the client's Finished message, predicted
}

func (c *Conn) serverHandshake() error {
	hs := &serverHandshakeState{c: c}
	ch, err := hs.readClientHello()
	if err != nil {
		return err
	}
	c.ccsAllowed = true
	if ch.earlyData {
		// Never accepted (no early_data in EncryptedExtensions): the
		// client's 0-RTT records are skipped, §4.2.10.
		c.skipEarlyData, c.earlySkipBudget = true, maxEarlyDataSkip
	}
	hs.ch = ch
	if err := hs.checkClientHello(ch); err != nil {
		return err
	}
	if err := hs.negotiate(ch); err != nil {
		return err
	}
	if hs.clientShare == nil {
		if err := hs.sendHelloRetryRequest(); err != nil {
			return err
		}
	}
	if err := hs.checkResumption(); err != nil {
		return err
	}
	if err := hs.runHook(); err != nil {
		return err
	}
	if err := hs.pickCertificate(); err != nil {
		return err
	}
	if err := hs.sendServerFlight(); err != nil {
		return err
	}
	if err := hs.sendSessionTickets(); err != nil {
		return err
	}
	// The whole flight, tickets included, goes out in one write.
	if err := c.flush(); err != nil {
		return err
	}
	return hs.readClientFinished()
}

func (hs *serverHandshakeState) readClientHello() (*clientHelloMsg, error) {
	c := hs.c
	msg, err := c.readHandshakeMsg(maxClientHelloSize)
	if err != nil {
		return nil, err
	}
	if msg[0] != typeClientHello {
		return nil, c.abort(AlertUnexpectedMessage, "expected ClientHello, got message type %d", msg[0])
	}
	ch := new(clientHelloMsg)
	if !ch.unmarshal(msg) {
		return nil, c.abort(AlertDecodeError, "malformed ClientHello")
	}
	if len(c.hsBuf) != 0 {
		// The client must wait for our answer; anything behind its
		// ClientHello would have to straddle a key change.
		return nil, c.abort(AlertUnexpectedMessage, "data after the ClientHello")
	}
	return ch, nil
}

// checkClientHello applies the RFC 8446 §4.1.2/§4.2/§9.2 rules.
func (hs *serverHandshakeState) checkClientHello(ch *clientHelloMsg) error {
	c := hs.c
	if ch.vers <= 0x0300 {
		// SSL 3.0 or older in legacy_version: abort even when
		// supported_versions offers TLS 1.3 (Appendix D.5).
		return c.abort(AlertProtocolVersion, "legacy_version %#04x", ch.vers)
	}
	if !slices.Contains(ch.supportedVersions, VersionTLS13) {
		return c.abort(AlertProtocolVersion, "client does not offer TLS 1.3")
	}
	if len(ch.compressionMethods) != 1 || ch.compressionMethods[0] != 0 {
		return c.abort(AlertIllegalParameter, "legacy_compression_methods is not [0]")
	}
	if ch.duplicateExtension {
		return c.abort(AlertIllegalParameter, "duplicate extension in ClientHello")
	}
	if ch.pskNotLast {
		return c.abort(AlertIllegalParameter, "pre_shared_key is not the last extension")
	}
	if len(ch.pskIdentities) > 0 && !ch.hasPSKModes {
		return c.abort(AlertMissingExtension, "pre_shared_key without psk_key_exchange_modes")
	}
	if ch.hasSupportedGroups != ch.hasKeyShare {
		return c.abort(AlertMissingExtension, "supported_groups and key_share must come together")
	}
	if !ch.hasSupportedGroups {
		return c.abort(AlertMissingExtension, "no supported_groups/key_share (only psk_dhe_ke and certificates are supported)")
	}
	return hs.checkKeyShareOrder(ch)
}

// checkKeyShareOrder enforces §4.2.8: each share's group is in
// supported_groups, in the same order, once. It walks both lists once
// (no count cap: the cost is bounded by the ClientHello's size, and
// shares of groups we do not implement cost only this walk).
func (hs *serverHandshakeState) checkKeyShareOrder(ch *clientHelloMsg) error {
	c := hs.c
	list := cryptobyte.String(ch.keyShareList)
	next := 0 // supported_groups index after the previous share's group
	var seen [maxGroups]bool
	for !list.Empty() {
		var g uint16
		var d cryptobyte.String
		list.ReadUint16(&g)
		list.ReadUint16LengthPrefixed(&d)
		group := tls.CurveID(g)
		if i := groupIndex(group); i >= 0 {
			if seen[i] {
				return c.abort(AlertIllegalParameter, "duplicate key share group %#04x", g)
			}
			seen[i] = true
		}
		for next < len(ch.supportedGroups) && ch.supportedGroups[next] != group {
			next++
		}
		if next == len(ch.supportedGroups) {
			if !slices.Contains(ch.supportedGroups, group) {
				return c.abort(AlertIllegalParameter, "key share for group %#04x not in supported_groups", g)
			}
			return c.abort(AlertIllegalParameter, "key shares not in supported_groups order (or a duplicate group %#04x)", g)
		}
		next++
	}
	return nil
}

// negotiate picks suite and group; clientShare stays nil when a
// HelloRetryRequest is needed.
func (hs *serverHandshakeState) negotiate(ch *clientHelloMsg) error {
	c := hs.c
	hs.suite = nil
	for _, id := range c.config.cipherSuites() {
		if slices.Contains(ch.cipherSuites, id) && suiteByID(id) != nil {
			hs.suite = suiteByID(id)
			break
		}
	}
	if hs.suite == nil {
		return c.abort(AlertHandshakeFailure, "no common cipher suite")
	}
	var mutual []tls.CurveID
	for _, g := range c.config.curvePreferences() {
		if isSupportedGroup(g) && slices.Contains(ch.supportedGroups, g) {
			mutual = append(mutual, g)
		}
	}
	if len(mutual) == 0 {
		return c.abort(AlertHandshakeFailure, "no common group")
	}
	hs.group, hs.clientShare = mutual[0], nil
	for _, g := range mutual {
		for _, ks := range ch.keyShares {
			if ks.group == g {
				hs.group, hs.clientShare = g, ks.data
				return nil
			}
		}
	}
	return nil
}

func (hs *serverHandshakeState) sendHelloRetryRequest() error {
	c := hs.c
	ch1 := hs.ch
	cookie, err := c.randBytes(32)
	if err != nil {
		return err
	}
	hs.cookie = cookie
	hrr := &serverHelloMsg{
		vers:             0x0303,
		random:           helloRetryRequestRandom,
		sessionID:        ch1.sessionID,
		cipherSuite:      hs.suite.id,
		supportedVersion: VersionTLS13,
		selectedGroup:    hs.group,
		cookie:           cookie,
	}
	hs.hrrPrefix = append(messageHashMsg(hs.suite.hashOf(ch1.marshal())), hrr.marshal()...)
	c.startFlight()
	if err := c.writeHandshake(hrr.marshal()); err != nil {
		return err
	}
	if err := c.writeCCS(); err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		return err
	}
	ch2, err := hs.readClientHello()
	if err != nil {
		return err
	}
	if !sameExceptRetryFields(ch1, ch2) {
		return c.abort(AlertIllegalParameter, "second ClientHello differs from the first beyond what HelloRetryRequest allows")
	}
	if subtle.ConstantTimeCompare(ch2.cookie, cookie) != 1 {
		return c.abort(AlertIllegalParameter, "cookie not echoed")
	}
	if ch2.earlyData {
		return c.abort(AlertIllegalParameter, "early_data in the second ClientHello")
	}
	c.skipEarlyData = false // 0-RTT data came before the second ClientHello
	if ch2.keyShareCount != 1 || len(ch2.keyShares) != 1 || ch2.keyShares[0].group != hs.group {
		return c.abort(AlertIllegalParameter, "second ClientHello must carry exactly one share, for group %#04x", uint16(hs.group))
	}
	if err := hs.checkClientHello(ch2); err != nil {
		return err
	}
	suite := hs.suite
	if err := hs.negotiate(ch2); err != nil {
		return err
	}
	if hs.suite != suite || hs.clientShare == nil {
		return c.abort(AlertIllegalParameter, "second ClientHello changes the negotiation")
	}
	hs.ch1, hs.ch = ch1, ch2
	return nil
}

// sameExceptRetryFields compares two ClientHellos, ignoring what a retry
// may change (§4.1.2): key_share, cookie, pre_shared_key, early_data,
// padding.
func sameExceptRetryFields(a, b *clientHelloMsg) bool {
	if a.vers != b.vers || string(a.random) != string(b.random) || string(a.sessionID) != string(b.sessionID) ||
		!slices.Equal(a.cipherSuites, b.cipherSuites) || string(a.compressionMethods) != string(b.compressionMethods) {
		return false
	}
	keep := func(exts []Extension) []Extension {
		var out []Extension
		for _, e := range exts {
			switch e.Type {
			case extKeyShare, extCookie, extPreSharedKey, extEarlyData, extPadding:
				continue
			}
			out = append(out, e)
		}
		return out
	}
	ea, eb := keep(a.extensions), keep(b.extensions)
	if len(ea) != len(eb) {
		return false
	}
	for i := range ea {
		if ea[i].Type != eb[i].Type || string(ea[i].Data) != string(eb[i].Data) {
			return false
		}
	}
	return true
}

// checkResumption opens the offered tickets and verifies the binder of the
// first usable one. Unusable tickets are skipped silently; a bad binder
// is fatal.
func (hs *serverHandshakeState) checkResumption() error {
	c := hs.c
	ch := hs.ch
	keys := c.config.TicketKeys
	if keys == nil || len(ch.pskIdentities) == 0 || !slices.Contains(ch.pskModes, pskModeDHE) {
		return nil
	}
	now := c.config.time()
	for i, id := range ch.pskIdentities {
		if i >= 8 {
			break // bound the work a ClientHello can cause
		}
		pt := keys.open(id.label)
		if pt == nil {
			continue
		}
		var st ticketState
		if !st.unmarshal(pt) {
			continue
		}
		if now.Before(st.createdAt.Add(-time.Minute)) || !now.Before(st.createdAt.Add(st.lifetime)) || st.lifetime > maxTicketLifetime {
			continue
		}
		// The client's view of the ticket's age (§4.2.11.1); a ticket the
		// client itself holds past its lifetime is not used.
		clientAge := time.Duration(id.obfuscatedTicketAge-st.ageAdd) * time.Millisecond
		if clientAge > st.lifetime {
			continue
		}
		ts := suiteByID(st.suite)
		suite := hs.suite
		if ts.hashLen != suite.hashLen {
			// Prefer a suite the client offers that shares the ticket's hash.
			suite = nil
			for _, sid := range c.config.cipherSuites() {
				if cs := suiteByID(sid); cs != nil && cs.hashLen == ts.hashLen && slices.Contains(ch.cipherSuites, sid) {
					suite = cs
					break
				}
			}
			if suite == nil || hs.hrrPrefix != nil {
				continue // after an HRR the suite is fixed
			}
		}
		early := suite.earlySecret(st.psk)
		h := suite.newHash()
		h.Write(hs.hrrPrefix)
		// Binders of identities before i are skipped; all of them are
		// at the end of the ClientHello.
		h.Write(ch.truncatedForBinders())
		want := suite.finishedMAC(suite.binderKey(early), h.Sum(nil))
		if !hmac.Equal(want, ch.pskBinders[i]) {
			return c.abort(AlertDecryptError, "PSK binder does not verify")
		}
		hs.suite = suite
		hs.psk = st.psk
		hs.pskIndex = i
		t := st
		hs.ticket = &t
		hs.clientAge = clientAge
		return nil
	}
	return nil
}

func (hs *serverHandshakeState) runHook() error {
	c := hs.c
	ch := hs.ch
	info := &ClientHelloInfo{
		ServerName:       ch.serverName,
		CipherSuites:     ch.cipherSuites,
		SupportedGroups:  ch.supportedGroups,
		SignatureSchemes: ch.sigAlgs,
		SupportedProtos:  ch.alpnProtocols,
		Extensions:       ch.extensions,
		Conn:             c,
	}
	if hs.ticket != nil {
		info.Resumption = &ResumptionInfo{
			PSK:       hs.ticket.psk,
			AppData:   hs.ticket.appData,
			CreatedAt: hs.ticket.createdAt,
			Lifetime:  hs.ticket.lifetime,
			ClientAge: hs.clientAge,
		}
	}
	hs.info = info
	if c.config.OnClientHello != nil {
		if err := c.config.OnClientHello(info); err != nil {
			return c.abort(AlertHandshakeFailure, "ClientHello refused: %v", err)
		}
		if info.RejectResumption {
			hs.psk, hs.ticket = nil, nil
		}
	}
	return nil
}

func (hs *serverHandshakeState) pickCertificate() error {
	c := hs.c
	ch := hs.ch
	if hs.psk != nil {
		return nil
	}
	if !ch.hasSigAlgs {
		return c.abort(AlertMissingExtension, "certificate authentication needs signature_algorithms")
	}
	if c.config.GetCertificate != nil {
		cert, err := c.config.GetCertificate(hs.info)
		if err != nil || cert == nil {
			return c.abort(AlertHandshakeFailure, "no certificate for %q: %v", ch.serverName, err)
		}
		hs.cert = cert
		hs.sigScheme = pickScheme(cert, ch.sigAlgs)
	} else {
		// The first certificate whose key fits, preferring one whose
		// leaf matches the SNI when there are several.
		for i := range c.config.Certificates {
			cert := &c.config.Certificates[i]
			s := pickScheme(cert, ch.sigAlgs)
			if s == 0 {
				continue
			}
			if hs.cert == nil {
				hs.cert, hs.sigScheme = cert, s
			}
			if len(c.config.Certificates) == 1 || ch.serverName == "" {
				break
			}
			if leafMatches(cert, ch.serverName) {
				hs.cert, hs.sigScheme = cert, s
				break
			}
		}
	}
	if hs.cert == nil || hs.sigScheme == 0 || len(hs.cert.Certificate) == 0 {
		return c.abort(AlertHandshakeFailure, "no certificate and signature scheme in common")
	}
	return nil
}

// sendServerFlight buffers ServerHello, the compatibility CCS (unless one
// answered a HelloRetryRequest), EncryptedExtensions, Certificate and
// CertificateVerify (full handshakes) and Finished, and switches to the
// application write key.
func (hs *serverHandshakeState) sendServerFlight() error {
	c := hs.c
	ch := hs.ch
	s := hs.suite
	serverShare, shared, err := serverKeyExchange(hs.group, hs.clientShare)
	if err != nil {
		if err == errBadKeyShare {
			return c.abort(AlertIllegalParameter, "invalid key share for group %#04x", uint16(hs.group))
		}
		return c.abort(AlertInternalError, "%v", err)
	}
	random, err := c.randBytes(32)
	if err != nil {
		return err
	}
	c.clientRandom = ch.random
	// ALPN: the server's preference among the client's protocols.
	if len(ch.alpnProtocols) > 0 && len(c.config.NextProtos) > 0 {
		for _, p := range c.config.NextProtos {
			if slices.Contains(ch.alpnProtocols, p) {
				c.alpn = p
				break
			}
		}
		if c.alpn == "" {
			return c.abort(AlertNoApplicationProtocol, "no ALPN protocol in common")
		}
	}
	sh := &serverHelloMsg{
		vers:             0x0303,
		random:           random,
		sessionID:        ch.sessionID,
		cipherSuite:      s.id,
		supportedVersion: VersionTLS13,
		serverShare:      keyShare{group: hs.group, data: serverShare},
	}
	if hs.psk != nil {
		sh.selectedIdentityPresent = true
		sh.selectedIdentity = uint16(hs.pskIndex)
		c.didResume = true
		c.sessionAppData = hs.ticket.appData
	}
	c.suite, c.group, c.serverName = s, hs.group, ch.serverName
	c.peerExts = ch.extensions

	hs.ts = newTranscript(s)
	hs.ts.add(hs.hrrPrefix, ch.marshal(), sh.marshal())
	c.startFlight()
	if err := c.writeHandshake(sh.marshal()); err != nil {
		return err
	}
	if hs.hrrPrefix == nil {
		if err := c.writeCCS(); err != nil {
			return err
		}
	}
	early := s.earlySecret(hs.psk)
	hsSecret := s.handshakeSecret(early, shared)
	th := hs.ts.sum()
	hs.cHS = s.deriveSecret(hsSecret, "c hs traffic", th)
	sHS := s.deriveSecret(hsSecret, "s hs traffic", th)
	c.keyLog("CLIENT_HANDSHAKE_TRAFFIC_SECRET", hs.cHS)
	c.keyLog("SERVER_HANDSHAKE_TRAFFIC_SECRET", sHS)
	if err := c.setWriteKey(s, sHS); err != nil {
		return err
	}
	ee := &encryptedExtensionsMsg{alpnProtocol: c.alpn, serverNameAck: ch.serverName != "" && hs.psk == nil}
	if err := hs.send(ee.marshal()); err != nil {
		return err
	}
	if hs.psk == nil {
		cm := &certificateMsg{certificates: hs.cert.Certificate}
		if err := hs.send(cm.marshal()); err != nil {
			return err
		}
		sig, err := sign(hs.cert, hs.sigScheme, c.randReader(), signedContent(serverSignatureContext, hs.ts.sum()))
		if err != nil {
			return c.abort(AlertInternalError, "signing: %v", err)
		}
		cv := &certificateVerifyMsg{scheme: hs.sigScheme, signature: sig}
		if err := hs.send(cv.marshal()); err != nil {
			return err
		}
	}
	sf := &finishedMsg{verifyData: s.finishedMAC(sHS, hs.ts.sum())}
	if err := hs.send(sf.marshal()); err != nil {
		return err
	}
	master := s.masterSecret(hsSecret)
	th = hs.ts.sum()
	hs.cAP = s.deriveSecret(master, "c ap traffic", th)
	sAP := s.deriveSecret(master, "s ap traffic", th)
	c.keyLog("CLIENT_TRAFFIC_SECRET_0", hs.cAP)
	c.keyLog("SERVER_TRAFFIC_SECRET_0", sAP)
	c.keyLog("EXPORTER_SECRET", s.deriveSecret(master, "exp master", th))
	if err := c.setWriteKey(s, sAP); err != nil {
		return err
	}
	// We never request a client certificate, so the client's Finished is
	// predictable: roll the transcript forward and send the tickets in
	// this flight (no extra round trip, no write/write deadlock on
	// unbuffered transports).
	hs.expectedCF = (&finishedMsg{verifyData: s.finishedMAC(hs.cHS, th)}).marshal()
	hs.ts.add(hs.expectedCF)
	c.resMaster = s.deriveSecret(master, "res master", hs.ts.sum())
	c.stateReady.Store(true)
	return nil
}

// sendSessionTickets buffers Config.TicketsPerHandshake tickets (at most
// 16) behind the server's Finished.
func (hs *serverHandshakeState) sendSessionTickets() error {
	c := hs.c
	// Tickets only for clients that can use them (psk_dhe_ke, §4.2.9).
	c.peerTakesTickets = slices.Contains(hs.ch.pskModes, pskModeDHE)
	if c.config.TicketKeys != nil && c.peerTakesTickets {
		n := c.config.TicketsPerHandshake
		if n == 0 {
			n = 1
		} else if n > 16 {
			n = 16
		}
		for i := 0; i < n; i++ {
			msg, err := c.newTicketMsg()
			if err != nil {
				return c.abort(AlertInternalError, "ticket: %v", err)
			}
			if err := c.writeHandshake(msg); err != nil {
				return err
			}
		}
	}
	return nil
}

// readClientFinished reads the client's second flight (its Finished; no
// client certificate is ever requested) and switches to the application
// read key.
func (hs *serverHandshakeState) readClientFinished() error {
	c := hs.c
	s := hs.suite
	if err := c.setReadKey(s, hs.cHS); err != nil {
		return err
	}
	c.allowPlainAlert = true
	msg, err := c.readHandshakeMsg(maxHandshakeSize)
	if err != nil {
		return err
	}
	if msg[0] != typeFinished {
		return c.abort(AlertUnexpectedMessage, "expected client Finished, got message type %d", msg[0])
	}
	var cf finishedMsg
	if !cf.unmarshal(msg) || len(cf.verifyData) != s.hashLen {
		return c.abort(AlertDecodeError, "malformed Finished")
	}
	if !hmac.Equal(cf.verifyData, hs.expectedCF[4:]) {
		return c.abort(AlertDecryptError, "client Finished does not verify")
	}
	c.ccsAllowed = false
	return c.setReadKey(s, hs.cAP)
}

// send writes a handshake message and adds it to the transcript.
func (hs *serverHandshakeState) send(msg []byte) error {
	if err := hs.c.writeHandshake(msg); err != nil {
		return err
	}
	hs.ts.add(msg)
	return nil
}

// newTicketMsg builds a sealed NewSessionTicket (server).
func (c *Conn) newTicketMsg() ([]byte, error) {
	nonce := make([]byte, 8)
	binary.BigEndian.PutUint64(nonce, c.ticketNonce.Add(1))
	psk := c.suite.resumptionPSK(c.resMaster, nonce)
	ageAddB, err := c.randBytes(4)
	if err != nil {
		return nil, err
	}
	lifetime := c.config.ticketLifetime()
	st := &ServerTicket{PSK: psk, Lifetime: lifetime}
	var exts []Extension
	if c.config.TicketExtensions != nil {
		exts = c.config.TicketExtensions(c, st)
	}
	state := ticketState{
		suite: c.suite.id, createdAt: c.config.time(), lifetime: lifetime,
		ageAdd: binary.BigEndian.Uint32(ageAddB), psk: psk, alpn: c.alpn,
		serverName: c.serverName, appData: st.AppData,
	}
	pt, err := state.marshal()
	if err != nil {
		return nil, err
	}
	sealed, err := c.config.TicketKeys.seal(pt)
	clear(pt)
	if err != nil {
		return nil, err
	}
	m := &newSessionTicketMsg{
		lifetime: uint32(lifetime / time.Second), ageAdd: state.ageAdd,
		nonce: nonce, label: sealed, extensions: exts,
	}
	return m.marshal(), nil
}

// SendSessionTicket (server) sends one more NewSessionTicket now; the
// Config.TicketExtensions hook runs for it.
func (c *Conn) SendSessionTicket() error {
	if c.isClient {
		return errNotServer
	}
	if c.config.TicketKeys == nil {
		return errNoTicketKeys
	}
	if err := c.Handshake(); err != nil {
		return err
	}
	if !c.peerTakesTickets {
		return errors.New("tls13: the client did not offer psk_dhe_ke; it cannot use tickets")
	}
	// Build outside the write lock: the TicketExtensions hook may use the
	// Conn (e.g. Write) without deadlocking.
	msg, err := c.newTicketMsg()
	if err != nil {
		return err
	}
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.writeErr != nil {
		return c.writeErr
	}
	return c.writeRecordLocked(recordTypeHandshake, msg)
}

// leafMatches reports whether cert's leaf is valid for name.
func leafMatches(cert *tls.Certificate, name string) bool {
	leaf := cert.Leaf
	if leaf == nil {
		if len(cert.Certificate) == 0 {
			return false
		}
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return false
		}
	}
	return leaf.VerifyHostname(name) == nil
}
