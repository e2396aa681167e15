package tls13

// Fuzz targets for every wire decoder of the engine. Each target feeds
// arbitrary bytes to one unmarshal function (which must never panic), and
// when the decoder accepts the input, checks that re-encoding the parsed
// message gives bytes the decoder accepts again with the same meaning: a
// decoder that accepts something its own encoder cannot reproduce is how
// parsers drift apart. Seed corpora from real handshakes (crypto/tls,
// tls13 and OpenSSL peers) live in testdata/fuzz/FuzzXxx; regenerate them
// with TLS13_WRITE_CORPUS=1 go test -run TestVerWriteFuzzCorpus ./tls13.

import (
	"bytes"
	"slices"
	"testing"
)

// verFuzzSeedMessages adds inline seeds built from the handcrafted hello, so
// the targets have a useful start even without the corpus directory.
func verFuzzSeedHello(f *testing.F) {
	h := verDefaultHello(f)
	f.Add(h.marshal())
	h.set(verExtPreSharedKey, verPSKExt([]byte("ticket"), 32))
	f.Add(h.marshal())
}

func FuzzClientHello(f *testing.F) {
	verFuzzSeedHello(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var m clientHelloMsg
		if !m.unmarshal(data) {
			return
		}
		if !bytes.Equal(m.raw, data) {
			t.Fatalf("raw does not alias the input")
		}
		if m.bindersLen() > len(data) {
			t.Fatalf("bindersLen %d exceeds message length %d", m.bindersLen(), len(data))
		}
		if len(m.pskBinders) > 0 && !m.pskNotLast {
			// pre_shared_key is last, so its binders list ends the message.
			if tr := m.truncatedForBinders(); len(tr)+m.bindersLen() != len(data) {
				t.Fatalf("truncated hello %d + binders %d != %d", len(tr), m.bindersLen(), len(data))
			}
		}
		// Re-encode from the parsed fields and parse again.
		m2 := m
		m2.raw = nil
		m2.customExtensions = nil
		out := m2.marshal()
		if out == nil {
			return // a field longer than its prefix; marshal refuses cleanly
		}
		var m3 clientHelloMsg
		if !m3.unmarshal(out) {
			t.Fatalf("re-encoded ClientHello does not parse:\nin  %x\nout %x", data, out)
		}
		if m3.vers != m.vers || !bytes.Equal(m3.random, m.random) || !bytes.Equal(m3.sessionID, m.sessionID) ||
			!slices.Equal(m3.cipherSuites, m.cipherSuites) || !bytes.Equal(m3.compressionMethods, m.compressionMethods) ||
			!slices.Equal(m3.supportedVersions, m.supportedVersions) || !slices.Equal(m3.supportedGroups, m.supportedGroups) ||
			m3.serverName != m.serverName || len(m3.keyShares) != len(m.keyShares) ||
			len(m3.pskIdentities) != len(m.pskIdentities) || !bytes.Equal(m3.cookie, m.cookie) {
			t.Fatalf("ClientHello changed meaning in a round trip:\nin  %x\nout %x", data, out)
		}
	})
}

func FuzzServerHello(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		var m serverHelloMsg
		if !m.unmarshal(data) {
			return
		}
		_ = m.isHelloRetryRequest()
		m2 := m
		m2.raw = nil
		out := m2.marshal()
		if out == nil {
			return
		}
		var m3 serverHelloMsg
		if !m3.unmarshal(out) {
			t.Fatalf("re-encoded ServerHello does not parse:\nin  %x\nout %x", data, out)
		}
		if m3.vers != m.vers || !bytes.Equal(m3.random, m.random) || m3.cipherSuite != m.cipherSuite ||
			m3.supportedVersion != m.supportedVersion || m3.serverShare.group != m.serverShare.group ||
			!bytes.Equal(m3.serverShare.data, m.serverShare.data) || m3.selectedGroup != m.selectedGroup ||
			m3.selectedIdentityPresent != m.selectedIdentityPresent || !bytes.Equal(m3.cookie, m.cookie) {
			t.Fatalf("ServerHello changed meaning in a round trip:\nin  %x\nout %x", data, out)
		}
	})
}

func FuzzEncryptedExtensions(f *testing.F) {
	f.Add([]byte{8, 0, 0, 2, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var m encryptedExtensionsMsg
		if !m.unmarshal(data) {
			return
		}
		m2 := m
		m2.raw = nil
		out := m2.marshal()
		if out == nil {
			return
		}
		var m3 encryptedExtensionsMsg
		if !m3.unmarshal(out) {
			t.Fatalf("re-encoded EncryptedExtensions does not parse:\nin  %x\nout %x", data, out)
		}
		if m3.alpnProtocol != m.alpnProtocol || m3.serverNameAck != m.serverNameAck || m3.earlyData != m.earlyData {
			t.Fatalf("EncryptedExtensions changed meaning in a round trip:\nin  %x\nout %x", data, out)
		}
	})
}

func FuzzCertificate(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		var m certificateMsg
		if !m.unmarshal(data) {
			return
		}
		m2 := m
		m2.raw = nil
		out := m2.marshal()
		if out == nil {
			return
		}
		var m3 certificateMsg
		if !m3.unmarshal(out) {
			t.Fatalf("re-encoded Certificate does not parse:\nin  %x\nout %x", data, out)
		}
		if !bytes.Equal(m3.context, m.context) || len(m3.certificates) != len(m.certificates) {
			t.Fatalf("Certificate changed meaning in a round trip")
		}
		for i := range m.certificates {
			if !bytes.Equal(m3.certificates[i], m.certificates[i]) {
				t.Fatalf("certificate %d changed in a round trip", i)
			}
		}
	})
}

func FuzzCertificateRequest(f *testing.F) {
	f.Add([]byte{13, 0, 0, 11, 0, 0, 8, 0, 13, 0, 4, 0, 2, 4, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		var m certificateRequestMsg
		if !m.unmarshal(data) {
			return
		}
		m2 := m
		m2.raw = nil
		out := m2.marshal()
		if out == nil {
			return
		}
		var m3 certificateRequestMsg
		if !m3.unmarshal(out) {
			t.Fatalf("re-encoded CertificateRequest does not parse:\nin  %x\nout %x", data, out)
		}
		if !bytes.Equal(m3.context, m.context) || !slices.Equal(m3.sigAlgs, m.sigAlgs) {
			t.Fatalf("CertificateRequest changed meaning in a round trip")
		}
	})
}

func FuzzCertificateVerify(f *testing.F) {
	f.Add([]byte{15, 0, 0, 6, 4, 3, 0, 2, 1, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		var m certificateVerifyMsg
		if !m.unmarshal(data) {
			return
		}
		m2 := m
		m2.raw = nil
		out := m2.marshal()
		if !bytes.Equal(out, data) {
			t.Fatalf("CertificateVerify round trip differs:\nin  %x\nout %x", data, out)
		}
	})
}

func FuzzFinished(f *testing.F) {
	f.Add(append([]byte{20, 0, 0, 32}, make([]byte, 32)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		var m finishedMsg
		if !m.unmarshal(data) {
			return
		}
		m2 := m
		m2.raw = nil
		out := m2.marshal()
		if !bytes.Equal(out, data) {
			t.Fatalf("Finished round trip differs:\nin  %x\nout %x", data, out)
		}
	})
}

func FuzzNewSessionTicket(f *testing.F) {
	f.Add([]byte{4, 0, 0, 17, 0, 0, 0, 60, 1, 2, 3, 4, 1, 9, 0, 2, 7, 7, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var m newSessionTicketMsg
		if !m.unmarshal(data) {
			return
		}
		m2 := m
		m2.raw = nil
		out := m2.marshal()
		// Extensions are written back as received, so the encoding is
		// exact.
		if !bytes.Equal(out, data) {
			t.Fatalf("NewSessionTicket round trip differs:\nin  %x\nout %x", data, out)
		}
	})
}

func FuzzKeyUpdate(f *testing.F) {
	f.Add([]byte{24, 0, 0, 1, 0})
	f.Add([]byte{24, 0, 0, 1, 1})
	f.Add([]byte{24, 0, 0, 1, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		var m keyUpdateMsg
		if !m.unmarshal(data) {
			return
		}
		m2 := m
		m2.raw = nil
		if out := m2.marshal(); !bytes.Equal(out, data) {
			t.Fatalf("KeyUpdate round trip differs:\nin  %x\nout %x", data, out)
		}
	})
}
