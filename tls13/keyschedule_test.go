package tls13

import (
	"bytes"
	"crypto/ecdh"
	"encoding/hex"
	"strings"
	"testing"
)

// unhex decodes the space-separated hex of RFC 8448.
func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func expectHex(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	if w := unhex(t, want); !bytes.Equal(got, w) {
		t.Errorf("%s:\n got %x\nwant %x", what, got, w)
	}
}

// TestRFC8448Simple1RTT checks the key schedule against RFC 8448 §3.
func TestRFC8448Simple1RTT(t *testing.T) {
	s := suiteByID(TLS_AES_128_GCM_SHA256)

	clientPriv, err := ecdh.X25519().NewPrivateKey(unhex(t, `49 af 42 ba 7f 79 94 85 2d 71 3e f2 78
		4b cb ca a7 91 1d e2 6a dc 56 42 cb 63 45 40 e7 ea 50 05`))
	if err != nil {
		t.Fatal(err)
	}
	serverPub, err := ecdh.X25519().NewPublicKey(unhex(t, `c9 82 88 76 11 20 95 fe 66 76 2b db f7 c6
		72 e1 56 d6 cc 25 3b 83 3d f1 dd 69 b1 b0 4e 75 1f 0f`))
	if err != nil {
		t.Fatal(err)
	}
	shared, err := clientPriv.ECDH(serverPub)
	if err != nil {
		t.Fatal(err)
	}
	expectHex(t, "(EC)DHE", shared, `8b d4 05 4f b5 5b 9d 63 fd fb ac f9 f0 4b 9f 0d
		35 e6 d6 3f 53 75 63 ef d4 62 72 90 0f 89 49 2d`)

	early := s.earlySecret(nil)
	expectHex(t, "early secret", early, `33 ad 0a 1c 60 7e c0 3b 09 e6 cd 98 93 68 0c
		e2 10 ad f3 00 aa 1f 26 60 e1 b2 2e 10 f1 70 f9 2a`)
	expectHex(t, "derived (early)", s.deriveSecret(early, "derived", s.emptyHash()),
		`6f 26 15 a1 08 c7 02 c5 67 8f 54 fc 9d ba b6 97 16 c0 76 18 9c 48 25 0c eb ea c3 57 6c 36 11 ba`)

	hs := s.handshakeSecret(early, shared)
	expectHex(t, "handshake secret", hs, `1d c8 26 e9 36 06 aa 6f dc 0a ad c1 2f 74 1b
		01 04 6a a6 b9 9f 69 1e d2 21 a9 f0 ca 04 3f be ac`)

	helloHash := unhex(t, `86 0c 06 ed c0 78 58 ee 8e 78 f0 e7 42 8c 58 ed
		d6 b4 3f 2c a3 e6 e9 5f 02 ed 06 3c f0 e1 ca d8`)
	cHS := s.deriveSecret(hs, "c hs traffic", helloHash)
	sHS := s.deriveSecret(hs, "s hs traffic", helloHash)
	expectHex(t, "c hs traffic", cHS, `b3 ed db 12 6e 06 7f 35 a7 80 b3 ab f4 5e
		2d 8f 3b 1a 95 07 38 f5 2e 96 00 74 6a 0e 27 a5 5a 21`)
	expectHex(t, "s hs traffic", sHS, `b6 7b 7d 69 0c c1 6c 4e 75 e5 42 13 cb 2d
		37 b4 e9 c9 12 bc de d9 10 5d 42 be fd 59 d3 91 ad 38`)

	key, iv := s.trafficKey(sHS)
	expectHex(t, "server handshake key", key, `3f ce 51 60 09 c2 17 27 d0 f2 e4 e8 6e e4 03 bc`)
	expectHex(t, "server handshake iv", iv, `5d 31 3e b2 67 12 76 ee 13 00 0b 30`)
	key, iv = s.trafficKey(cHS)
	expectHex(t, "client handshake key", key, `db fa a6 93 d1 76 2c 5b 66 6a f5 d9 50 25 8d 01`)
	expectHex(t, "client handshake iv", iv, `5b d3 c7 1b 83 6e 0b 76 bb 73 26 5f`)

	expectHex(t, "server finished key", s.expandLabel(sHS, "finished", nil, 32),
		`00 8d 3b 66 f8 16 ea 55 9f 96 b5 37 e8 85 c3 1f c0 68 bf 49 2c 65 2f 01 f2 88 a1 d8 cd c1 9f c8`)
	expectHex(t, "client finished key", s.expandLabel(cHS, "finished", nil, 32),
		`b8 0a d0 10 15 fb 2f 0b d6 5f f7 d4 da 5d 6b f8 3f 84 82 1d 1f 87 fd c7 d3 c7 5b 5a 7b 42 d9 c4`)

	master := s.masterSecret(hs)
	expectHex(t, "master secret", master, `18 df 06 84 3d 13 a0 8b f2 a4 49 84 4c 5f 8a
		47 80 01 bc 4d 4c 62 79 84 d5 a4 1d a8 d0 40 29 19`)
	finHash := unhex(t, `96 08 10 2a 0f 1c cc 6d b6 25 0b 7b 7e 41 7b 1a
		00 0e aa da 3d aa e4 77 7a 76 86 c9 ff 83 df 13`)
	expectHex(t, "c ap traffic", s.deriveSecret(master, "c ap traffic", finHash),
		`9e 40 64 6c e7 9a 7f 9d c0 5a f8 88 9b ce 65 52 87 5a fa 0b 06 df 00 87 f7 92 eb b7 c1 75 04 a5`)
	expectHex(t, "s ap traffic", s.deriveSecret(master, "s ap traffic", finHash),
		`a1 1a f9 f0 55 31 f8 56 ad 47 11 6b 45 a9 50 32 82 04 b4 f4 4b fb 6b 3a 4b 4f 1f 3f cb 63 16 43`)
	expectHex(t, "exp master", s.deriveSecret(master, "exp master", finHash),
		`fe 22 f8 81 17 6e da 18 eb 8f 44 52 9e 67 92 c5 0c 9a 3f 89 45 2f 68 d8 ae 31 1b 43 09 d3 cf 50`)
	cfHash := unhex(t, `20 91 45 a9 6e e8 e2 a1 22 ff 81 00 47 cc 95 26
		84 65 8d 60 49 e8 64 29 42 6d b8 7c 54 ad 14 3d`)
	resMaster := s.deriveSecret(master, "res master", cfHash)
	expectHex(t, "res master", resMaster, `7d f2 35 f2 03 1d 2a 05 12 87 d0 2b 02 41
		b0 bf da f8 6c c8 56 23 1f 2d 5a ba 46 c4 34 ec 19 6c`)

	// The NewSessionTicket of §3 has ticket_nonce 00 00; its PSK is the
	// one §4 resumes with.
	expectHex(t, "resumption PSK", s.resumptionPSK(resMaster, []byte{0, 0}),
		`4e cd 0e b6 ec 3b 4d 87 f5 d6 02 8f 92 2c a4 c5 85 1a 27 7f d4 13 11 c9 e6 2d 2c 94 92 e1 c4 f3`)
}

// TestRFC8448ResumptionBinder checks the PSK binder of RFC 8448 §4 (we do
// not do 0-RTT; only the binder and resumption parts apply).
func TestRFC8448ResumptionBinder(t *testing.T) {
	s := suiteByID(TLS_AES_128_GCM_SHA256)
	psk := unhex(t, `4e cd 0e b6 ec 3b 4d 87 f5 d6 02 8f 92 2c a4 c5
		85 1a 27 7f d4 13 11 c9 e6 2d 2c 94 92 e1 c4 f3`)
	early := s.earlySecret(psk)
	expectHex(t, "early secret (PSK)", early, `9b 21 88 e9 b2 fc 6d 64 d7 1d c3 29 90 0e 20
		bb 41 91 50 00 f6 78 aa 83 9c bb 79 7c b7 d8 33 2c`)
	bk := s.binderKey(early)
	expectHex(t, "binder key", bk, `69 fe 13 1a 3b ba d5 d6 3c 64 ee bc c3 0e 39 5b
		9d 81 07 72 6a 13 d0 74 e3 89 db c8 a4 e4 72 56`)
	expectHex(t, "binder finished key", s.expandLabel(bk, "finished", nil, 32),
		`55 88 67 3e 72 cb 59 c8 7d 22 0c af fe 94 f2 de a9 a3 b1 60 9f 7d 50 e9 0a 48 22 7d b9 ed 7e aa`)
	truncatedHash := unhex(t, `63 22 4b 2e 45 73 f2 d3 45 4c a8 4b 9d
		00 9a 04 f6 be 9e 05 71 1a 83 96 47 3a ef a0 1e 92 4a 14`)
	expectHex(t, "binder", s.finishedMAC(bk, truncatedHash),
		`3a dd 4f b2 d8 fd f8 22 a0 ca 3c f7 67 8e f5 e8 8d ae 99 01 41 c5 92 4d 57 bb 6f a3 1b 9e 5f 9d`)
}

// TestBinderCoversCustomExtensions checks that the binder region ends
// exactly before the binders list and includes application extensions.
func TestBinderCoversCustomExtensions(t *testing.T) {
	m := &clientHelloMsg{
		vers: 0x0303, random: make([]byte, 32), sessionID: make([]byte, 32),
		cipherSuites: []uint16{TLS_AES_128_GCM_SHA256}, compressionMethods: []uint8{0},
		supportedVersions: []uint16{VersionTLS13}, pskModes: []uint8{pskModeDHE},
		customExtensions: []Extension{{Type: 0xFE4F, Data: []byte("token")}},
		pskIdentities:    []pskIdentity{{label: []byte("ticket"), obfuscatedTicketAge: 7}},
		pskBinders:       [][]byte{make([]byte, 32)},
	}
	raw := m.marshal()
	trunc := m.truncatedForBinders()
	if len(raw)-len(trunc) != 2+1+32 {
		t.Fatalf("binders region is %d bytes, want 35", len(raw)-len(trunc))
	}
	if !bytes.Contains(trunc, []byte("token")) {
		t.Fatal("custom extension is not covered by the binder")
	}
	binder := bytes.Repeat([]byte{0xAB}, 32)
	m.setBinders([][]byte{binder})
	var back clientHelloMsg
	if !back.unmarshal(m.marshal()) {
		t.Fatal("unmarshal of own ClientHello failed")
	}
	if !bytes.Equal(back.pskBinders[0], binder) || back.pskNotLast || back.duplicateExtension {
		t.Fatalf("round trip: binder %x notLast %v dup %v", back.pskBinders[0], back.pskNotLast, back.duplicateExtension)
	}
	last := back.extensions[len(back.extensions)-1]
	prev := back.extensions[len(back.extensions)-2]
	if last.Type != extPreSharedKey || prev.Type != 0xFE4F {
		t.Fatalf("extension order: ... %#04x %#04x", prev.Type, last.Type)
	}
}
