package tls13

import (
	"bytes"
	"crypto/hmac"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"slices"
	"time"
)

// clientHandshakeState carries one client handshake.
type clientHandshakeState struct {
	c         *Conn
	hello     *clientHelloMsg
	shares    []*clientKeyShare
	session   *ClientSession
	psk       []byte
	suite     *cipherSuite
	hrrSuite  uint16
	ts        *transcript
	early     []byte
	hsSecret  []byte
	master    []byte
	cHS, sHS  []byte
	cAP, sAP  []byte
	certReq   *certificateRequestMsg
	sentCCS   bool
	customExt []uint16 // types the application added
	hrrPrefix []byte   // message_hash(ClientHello1) ‖ HelloRetryRequest
}

func (c *Conn) clientHandshake() error {
	cfg := c.config
	if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
		// Fail closed: without a name the chain check would accept any
		// certificate the roots signed.
		return errors.New("tls13: Config.ServerName is required unless InsecureSkipVerify is set")
	}
	hs := &clientHandshakeState{c: c}
	return hs.handshake()
}

// handshake runs the client's side in order (RFC 8446 §2): ClientHello,
// ServerHello (after at most one HelloRetryRequest), the server's
// encrypted flight, then the client's Finished.
func (hs *clientHandshakeState) handshake() error {
	c := hs.c
	if err := hs.sendClientHello(); err != nil {
		return err
	}
	sh, err := hs.readServerHello()
	if err != nil {
		return err
	}
	if err := hs.processServerHello(sh); err != nil {
		return err
	}
	if err := hs.readEncryptedExtensions(); err != nil {
		return err
	}
	if !c.didResume {
		if err := hs.readServerCertificate(); err != nil {
			return err
		}
	}
	if err := hs.readServerFinished(); err != nil {
		return err
	}
	return hs.sendClientFinished()
}

// sendClientHello builds the first ClientHello (key shares, the offered
// ticket and its binder, the application's extensions) and sends it.
func (hs *clientHandshakeState) sendClientHello() error {
	c := hs.c
	cfg := c.config
	random, err := c.randBytes(32)
	if err != nil {
		return err
	}
	sessionID, err := c.randBytes(32)
	if err != nil {
		return err
	}
	c.clientRandom = random
	hello := &clientHelloMsg{
		vers:               0x0303,
		random:             random,
		sessionID:          sessionID,
		cipherSuites:       cfg.cipherSuites(),
		compressionMethods: []uint8{0},
		supportedGroups:    cfg.clientCurvePreferences(),
		sigAlgs:            supportedSignatureSchemes,
		sigAlgsCert:        supportedCertSignatureSchemes,
		alpnProtocols:      cfg.NextProtos,
		supportedVersions:  []uint16{VersionTLS13},
		pskModes:           []uint8{pskModeDHE},
		hasKeyShare:        true,
	}
	if cfg.ServerName != "" && net.ParseIP(cfg.ServerName) == nil {
		hello.serverName = cfg.ServerName
	}
	c.serverName = cfg.ServerName
	groups := cfg.clientCurvePreferences()
	shareGroups := []tls.CurveID{groups[0]}
	if groups[0] == X25519MLKEM768 && slices.Contains(groups, X25519) {
		shareGroups = append(shareGroups, X25519)
	}
	for _, g := range shareGroups {
		ks, data, err := newClientKeyShare(g)
		if err != nil {
			return err
		}
		hs.shares = append(hs.shares, ks)
		hello.keyShares = append(hello.keyShares, keyShare{group: g, data: data})
	}
	if s := cfg.Session; s != nil && !s.expired(cfg.time()) && suiteByID(s.suite) != nil {
		// Offer it only if a suite we send shares the ticket's hash.
		for _, id := range hello.cipherSuites {
			if cs := suiteByID(id); cs != nil && cs.hashLen == suiteByID(s.suite).hashLen {
				hs.session = s
				break
			}
		}
	}
	if cfg.ClientHelloExtensions != nil {
		hello.customExtensions = cfg.ClientHelloExtensions(c, hs.session)
		for _, e := range hello.customExtensions {
			hs.customExt = append(hs.customExt, e.Type)
		}
	}
	hs.hello = hello
	if hs.session != nil {
		hs.psk = hs.session.psk
		hs.addPSK()
		if err := hs.computeBinder(nil); err != nil {
			return err
		}
	}
	if err := c.writeHandshake(hello.marshal()); err != nil {
		return err
	}
	c.ccsAllowed = true
	return nil
}

// addPSK places the ticket identity with a placeholder binder.
func (hs *clientHandshakeState) addPSK() {
	s := hs.session
	age := uint32(hs.c.config.time().Sub(s.ReceivedAt) / time.Millisecond)
	hs.hello.pskIdentities = []pskIdentity{{label: s.ticket, obfuscatedTicketAge: age + s.ageAdd}}
	hs.hello.pskBinders = [][]byte{make([]byte, suiteByID(s.suite).hashLen)}
	hs.hello.raw = nil
}

// computeBinder fills the binder; prefix is the transcript before the
// ClientHello (message_hash ‖ HRR after a retry).
func (hs *clientHandshakeState) computeBinder(prefix []byte) error {
	s := suiteByID(hs.session.suite)
	early := s.earlySecret(hs.psk)
	h := s.newHash()
	h.Write(prefix)
	h.Write(hs.hello.truncatedForBinders())
	binder := s.finishedMAC(s.binderKey(early), h.Sum(nil))
	hs.hello.setBinders([][]byte{binder})
	return nil
}

func (hs *clientHandshakeState) offeredSuite(id uint16) bool {
	return slices.Contains(hs.hello.cipherSuites, id)
}

// checkServerHelloCommon applies the rules shared by ServerHello and HRR.
func (hs *clientHandshakeState) checkServerHelloCommon(sh *serverHelloMsg) error {
	c := hs.c
	if sh.duplicateExtension {
		return c.abort(AlertIllegalParameter, "duplicate extension in ServerHello")
	}
	if len(sh.random) == 32 && (string(sh.random[24:]) == "DOWNGRD\x01" || string(sh.random[24:]) == "DOWNGRD\x00") {
		return c.abort(AlertIllegalParameter, "downgrade sentinel in ServerHello.random")
	}
	if sh.supportedVersion == 0 {
		return c.abort(AlertProtocolVersion, "server negotiated a version below TLS 1.3")
	}
	if sh.supportedVersion != VersionTLS13 || sh.vers != 0x0303 {
		return c.abort(AlertIllegalParameter, "server selected version %#04x", sh.supportedVersion)
	}
	if !bytes.Equal(sh.sessionID, hs.hello.sessionID) {
		return c.abort(AlertIllegalParameter, "legacy_session_id not echoed")
	}
	if sh.compressionMethod != 0 {
		return c.abort(AlertIllegalParameter, "compression method %d", sh.compressionMethod)
	}
	if !hs.offeredSuite(sh.cipherSuite) || suiteByID(sh.cipherSuite) == nil {
		return c.abort(AlertIllegalParameter, "cipher suite %#04x was not offered", sh.cipherSuite)
	}
	if hs.hrrSuite != 0 && sh.cipherSuite != hs.hrrSuite {
		return c.abort(AlertIllegalParameter, "ServerHello suite differs from HelloRetryRequest's")
	}
	hrr := sh.isHelloRetryRequest()
	for _, e := range sh.extensions {
		switch e.Type {
		case extSupportedVersions, extKeyShare:
		case extCookie:
			if !hrr {
				return c.abort(AlertIllegalParameter, "cookie in ServerHello")
			}
		case extPreSharedKey:
			if hrr || hs.session == nil {
				return c.abort(AlertUnsupportedExtension, "pre_shared_key not offered")
			}
		default:
			if hs.offeredExtension(e.Type) {
				return c.abort(AlertIllegalParameter, "extension %#04x not allowed in ServerHello", e.Type)
			}
			return c.abort(AlertUnsupportedExtension, "extension %#04x was not offered", e.Type)
		}
	}
	return nil
}

// offeredExtension reports whether the ClientHello carried type t.
func (hs *clientHandshakeState) offeredExtension(t uint16) bool {
	h := hs.hello
	switch t {
	case extServerName:
		return h.serverName != ""
	case extALPN:
		return len(h.alpnProtocols) > 0
	case extSupportedGroups, extSignatureAlgorithms, extSigAlgsCert, extSupportedVersions, extKeyShare, extPSKModes:
		return true
	case extPreSharedKey:
		return hs.session != nil
	case extCookie:
		return len(h.cookie) > 0
	}
	return slices.Contains(hs.customExt, t)
}

// readServerHello reads the ServerHello, answering a HelloRetryRequest
// first when the server sends one.
func (hs *clientHandshakeState) readServerHello() (*serverHelloMsg, error) {
	c := hs.c
	msg, err := c.readHandshakeMsg(maxHandshakeSize)
	if err != nil {
		return nil, err
	}
	sh := new(serverHelloMsg)
	if msg[0] != typeServerHello {
		return nil, c.abort(AlertUnexpectedMessage, "expected ServerHello, got message type %d", msg[0])
	}
	if !sh.unmarshal(msg) {
		return nil, c.abort(AlertDecodeError, "malformed ServerHello")
	}
	if sh.isHelloRetryRequest() {
		if err := hs.handleHRR(sh); err != nil {
			return nil, err
		}
		if msg, err = c.readHandshakeMsg(maxHandshakeSize); err != nil {
			return nil, err
		}
		if msg[0] != typeServerHello {
			return nil, c.abort(AlertUnexpectedMessage, "expected ServerHello, got message type %d", msg[0])
		}
		sh = new(serverHelloMsg)
		if !sh.unmarshal(msg) {
			return nil, c.abort(AlertDecodeError, "malformed ServerHello")
		}
		if sh.isHelloRetryRequest() {
			return nil, c.abort(AlertUnexpectedMessage, "second HelloRetryRequest")
		}
	} else {
		if err := hs.checkServerHelloCommon(sh); err != nil {
			return nil, err
		}
		hs.suite = suiteByID(sh.cipherSuite)
		hs.ts = newTranscript(hs.suite)
		hs.ts.add(hs.hello.marshal())
	}
	if hs.hrrSuite != 0 {
		if err := hs.checkServerHelloCommon(sh); err != nil {
			return nil, err
		}
	}
	return sh, nil
}

func (hs *clientHandshakeState) handleHRR(hrr *serverHelloMsg) error {
	c := hs.c
	if err := hs.checkServerHelloCommon(hrr); err != nil {
		return err
	}
	hs.suite = suiteByID(hrr.cipherSuite)
	hs.hrrSuite = hrr.cipherSuite
	hs.ts = newTranscript(hs.suite)
	hs.hrrPrefix = append(messageHashMsg(hs.suite.hashOf(hs.hello.marshal())), hrr.marshal()...)
	hs.ts.add(hs.hrrPrefix)

	changed := len(hrr.cookie) > 0
	if g := hrr.selectedGroup; g != 0 {
		if !slices.Contains(hs.hello.supportedGroups, g) || !isSupportedGroup(g) {
			return c.abort(AlertIllegalParameter, "HelloRetryRequest selected group %#04x that was not offered", uint16(g))
		}
		for _, ks := range hs.hello.keyShares {
			if ks.group == g {
				return c.abort(AlertIllegalParameter, "HelloRetryRequest selected group %#04x already shared", uint16(g))
			}
		}
		ks, data, err := newClientKeyShare(g)
		if err != nil {
			return err
		}
		hs.shares = []*clientKeyShare{ks}
		hs.hello.keyShares = []keyShare{{group: g, data: data}}
		changed = true
	}
	if !changed {
		return c.abort(AlertIllegalParameter, "HelloRetryRequest changes nothing")
	}
	hs.hello.cookie = hrr.cookie
	hs.hello.earlyData = false
	hs.hello.raw = nil
	if hs.session != nil {
		if suiteByID(hs.session.suite).hashLen != hs.suite.hashLen {
			// The ticket cannot be used with this suite: drop it.
			hs.session, hs.psk = nil, nil
			hs.hello.pskIdentities, hs.hello.pskBinders = nil, nil
		} else {
			hs.addPSK()
		}
	}
	// Middlebox compatibility: CCS before the second ClientHello.
	if err := c.writeCCS(); err != nil {
		return err
	}
	hs.sentCCS = true
	if hs.session != nil {
		if err := hs.computeBinder(hs.hrrPrefix); err != nil {
			return err
		}
	}
	ch2 := hs.hello.marshal()
	if err := c.writeHandshake(ch2); err != nil {
		return err
	}
	hs.ts.add(ch2)
	return nil
}

func (hs *clientHandshakeState) processServerHello(sh *serverHelloMsg) error {
	c := hs.c
	var share *clientKeyShare
	for _, ks := range hs.shares {
		if ks.group == sh.serverShare.group {
			share = ks
		}
	}
	if sh.serverShare.group == 0 {
		return c.abort(AlertMissingExtension, "ServerHello without key_share")
	}
	if share == nil {
		return c.abort(AlertIllegalParameter, "server key share for group %#04x that was not sent", uint16(sh.serverShare.group))
	}
	hs.ts.add(sh.marshal())
	if sh.selectedIdentityPresent {
		if sh.selectedIdentity != 0 || hs.session == nil {
			return c.abort(AlertIllegalParameter, "selected PSK identity %d out of range", sh.selectedIdentity)
		}
		if suiteByID(hs.session.suite).hashLen != hs.suite.hashLen {
			return c.abort(AlertIllegalParameter, "resumption with a suite of another hash")
		}
		c.didResume = true
		c.peerCerts = hs.session.peerCerts
		c.verifiedChains = hs.session.verifiedChains
	} else {
		hs.psk = nil
	}
	shared, err := share.sharedSecret(sh.serverShare.data)
	if err != nil {
		return c.abort(AlertIllegalParameter, "invalid server key share")
	}
	c.group = share.group
	c.suite = hs.suite
	s := hs.suite
	hs.early = s.earlySecret(hs.psk)
	hs.hsSecret = s.handshakeSecret(hs.early, shared)
	th := hs.ts.sum()
	hs.cHS = s.deriveSecret(hs.hsSecret, "c hs traffic", th)
	hs.sHS = s.deriveSecret(hs.hsSecret, "s hs traffic", th)
	c.keyLog("CLIENT_HANDSHAKE_TRAFFIC_SECRET", hs.cHS)
	c.keyLog("SERVER_HANDSHAKE_TRAFFIC_SECRET", hs.sHS)
	if err := c.setReadKey(s, hs.sHS); err != nil {
		return err
	}
	// From here on our alerts travel under the handshake key; the
	// compatibility CCS (unprotected) still goes first in our next flight.
	if err := c.setWriteKey(s, hs.cHS); err != nil {
		return err
	}
	return nil
}

func (hs *clientHandshakeState) readEncryptedExtensions() error {
	c := hs.c
	msg, err := c.readHandshakeMsg(maxHandshakeSize)
	if err != nil {
		return err
	}
	var ee encryptedExtensionsMsg
	if msg[0] != typeEncryptedExtensions {
		return c.abort(AlertUnexpectedMessage, "expected EncryptedExtensions, got type %d", msg[0])
	}
	if !ee.unmarshal(msg) {
		return c.abort(AlertDecodeError, "malformed EncryptedExtensions")
	}
	if ee.duplicateExtension {
		return c.abort(AlertIllegalParameter, "duplicate extension in EncryptedExtensions")
	}
	for _, e := range ee.extensions {
		switch e.Type {
		case extSupportedVersions, extKeyShare, extPreSharedKey, extCookie, extPSKModes,
			extSignatureAlgorithms, extSigAlgsCert, extCertAuthorities:
			return c.abort(AlertIllegalParameter, "extension %#04x not allowed in EncryptedExtensions", e.Type)
		case extEarlyData:
			return c.abort(AlertUnsupportedExtension, "early_data was not offered")
		}
		if !hs.offeredExtension(e.Type) {
			return c.abort(AlertUnsupportedExtension, "extension %#04x was not offered", e.Type)
		}
	}
	if ee.alpnProtocol != "" {
		if !slices.Contains(hs.hello.alpnProtocols, ee.alpnProtocol) {
			return c.abort(AlertIllegalParameter, "server selected ALPN %q that was not offered", ee.alpnProtocol)
		}
		c.alpn = ee.alpnProtocol
	}
	c.peerExts = ee.extensions
	hs.ts.add(msg)
	return nil
}

func (hs *clientHandshakeState) readServerCertificate() error {
	c := hs.c
	msg, err := c.readHandshakeMsg(maxHandshakeSize)
	if err != nil {
		return err
	}
	if msg[0] == typeCertificateRequest {
		cr := new(certificateRequestMsg)
		if !cr.unmarshal(msg) {
			return c.abort(AlertDecodeError, "malformed CertificateRequest")
		}
		hs.certReq = cr
		hs.ts.add(msg)
		if msg, err = c.readHandshakeMsg(maxHandshakeSize); err != nil {
			return err
		}
	}
	if msg[0] != typeCertificate {
		return c.abort(AlertUnexpectedMessage, "expected Certificate, got type %d", msg[0])
	}
	var cm certificateMsg
	if !cm.unmarshal(msg) {
		return c.abort(AlertDecodeError, "malformed Certificate")
	}
	if len(cm.certificates) == 0 {
		return c.abort(AlertDecodeError, "empty server Certificate")
	}
	if len(cm.entryExtensionTypes) > 0 {
		// We request neither OCSP stapling nor SCTs.
		return c.abort(AlertUnsupportedExtension, "certificate entry extension %#04x was not offered", cm.entryExtensionTypes[0])
	}
	if len(cm.context) != 0 {
		return c.abort(AlertIllegalParameter, "server Certificate with a request context")
	}
	hs.ts.add(msg)
	certs := make([]*x509.Certificate, len(cm.certificates))
	for i, der := range cm.certificates {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return c.abort(AlertBadCertificate, "parsing certificate %d: %v", i, err)
		}
		certs[i] = cert
	}
	c.peerCerts = certs
	if !c.config.InsecureSkipVerify {
		opts := x509.VerifyOptions{
			Roots:         c.config.RootCAs,
			CurrentTime:   c.config.time(),
			DNSName:       c.config.ServerName,
			Intermediates: x509.NewCertPool(),
		}
		for _, cert := range certs[1:] {
			opts.Intermediates.AddCert(cert)
		}
		chains, err := certs[0].Verify(opts)
		if err != nil {
			var ua x509.UnknownAuthorityError
			var ci x509.CertificateInvalidError
			switch {
			case errors.As(err, &ua):
				return c.abort(AlertUnknownCA, "%v", err)
			case errors.As(err, &ci) && ci.Reason == x509.Expired:
				return c.abort(AlertCertificateExpired, "%v", err)
			}
			return c.abort(AlertBadCertificate, "%v", err)
		}
		c.verifiedChains = chains
	}

	// CertificateVerify
	msg, err = c.readHandshakeMsg(maxHandshakeSize)
	if err != nil {
		return err
	}
	if msg[0] != typeCertificateVerify {
		return c.abort(AlertUnexpectedMessage, "expected CertificateVerify, got type %d", msg[0])
	}
	var cv certificateVerifyMsg
	if !cv.unmarshal(msg) {
		return c.abort(AlertDecodeError, "malformed CertificateVerify")
	}
	if !slices.Contains(hs.hello.sigAlgs, cv.scheme) {
		return c.abort(AlertIllegalParameter, "signature scheme %#04x was not offered", cv.scheme)
	}
	content := signedContent(serverSignatureContext, hs.ts.sum())
	if a := verifySignature(certs[0].PublicKey, cv.scheme, content, cv.signature); a != alertNone {
		return c.abort(a, "server CertificateVerify (scheme %#04x) does not verify", cv.scheme)
	}
	hs.ts.add(msg)
	return nil
}

func (hs *clientHandshakeState) readServerFinished() error {
	c := hs.c
	s := hs.suite
	msg, err := c.readHandshakeMsg(maxHandshakeSize)
	if err != nil {
		return err
	}
	if msg[0] != typeFinished {
		return c.abort(AlertUnexpectedMessage, "expected Finished, got type %d", msg[0])
	}
	var fin finishedMsg
	if !fin.unmarshal(msg) || len(fin.verifyData) != s.hashLen {
		return c.abort(AlertDecodeError, "malformed Finished")
	}
	want := s.finishedMAC(hs.sHS, hs.ts.sum())
	if !hmac.Equal(want, fin.verifyData) {
		return c.abort(AlertDecryptError, "server Finished does not verify")
	}
	hs.ts.add(msg)
	c.ccsAllowed = false
	hs.master = s.masterSecret(hs.hsSecret)
	th := hs.ts.sum()
	hs.cAP = s.deriveSecret(hs.master, "c ap traffic", th)
	hs.sAP = s.deriveSecret(hs.master, "s ap traffic", th)
	c.keyLog("CLIENT_TRAFFIC_SECRET_0", hs.cAP)
	c.keyLog("SERVER_TRAFFIC_SECRET_0", hs.sAP)
	c.keyLog("EXPORTER_SECRET", s.deriveSecret(hs.master, "exp master", th))
	return c.setReadKey(s, hs.sAP)
}

// sendClientFinished sends the client's second flight: the compatibility
// CCS unless one went before the second ClientHello, an empty Certificate
// when one was requested, and Finished; then it switches to the
// application write key.
func (hs *clientHandshakeState) sendClientFinished() error {
	c := hs.c
	s := hs.suite
	c.startFlight()
	if !hs.sentCCS {
		if err := c.writeCCS(); err != nil {
			return err
		}
	}
	if hs.certReq != nil {
		// No client certificates: an empty Certificate (§4.4.2).
		cm := &certificateMsg{context: hs.certReq.context}
		if err := c.writeHandshake(cm.marshal()); err != nil {
			return err
		}
		hs.ts.add(cm.marshal())
	}
	cf := &finishedMsg{verifyData: s.finishedMAC(hs.cHS, hs.ts.sum())}
	if err := c.writeHandshake(cf.marshal()); err != nil {
		return err
	}
	hs.ts.add(cf.marshal())
	c.resMaster = s.deriveSecret(hs.master, "res master", hs.ts.sum())
	if err := c.flush(); err != nil {
		return err
	}
	return c.setWriteKey(s, hs.cAP)
}
