package tls13

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
)

// rawHello builds a ClientHello offering X25519 and P-256 but sharing
// only X25519, so a server preferring P-256 must send a HelloRetryRequest.
func rawHello(t *testing.T) (*clientHelloMsg, []byte) {
	_, x, err := newClientKeyShare(X25519)
	if err != nil {
		t.Fatal(err)
	}
	return &clientHelloMsg{
		vers: 0x0303, random: make([]byte, 32), sessionID: make([]byte, 32),
		cipherSuites: []uint16{TLS_AES_128_GCM_SHA256}, compressionMethods: []uint8{0},
		serverName: "example.test", supportedGroups: []tls.CurveID{X25519, CurveP256},
		sigAlgs: supportedSignatureSchemes, supportedVersions: []uint16{VersionTLS13},
		pskModes: []uint8{pskModeDHE}, keyShares: []keyShare{{group: X25519, data: x}},
		customExtensions: []Extension{{Type: 0xFE4D, Data: []byte{1}}},
	}, x
}

func writePlainRecord(w io.Writer, typ uint8, data []byte) error {
	_, err := w.Write(append([]byte{typ, 3, 3, byte(len(data) >> 8), byte(len(data))}, data...))
	return err
}

// readPlainRecord reads one record, skipping ChangeCipherSpec.
func readPlainRecord(t *testing.T, r io.Reader) (uint8, []byte) {
	t.Helper()
	for {
		hdr := make([]byte, 5)
		if _, err := io.ReadFull(r, hdr); err != nil {
			t.Fatalf("reading a record: %v", err)
		}
		body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
		if _, err := io.ReadFull(r, body); err != nil {
			t.Fatalf("reading a record body: %v", err)
		}
		if hdr[0] != recordTypeChangeCipherSpec {
			return hdr[0], body
		}
	}
}

func TestServerSecondClientHelloRules(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(ch2 *clientHelloMsg, hrr *serverHelloMsg)
	}{
		{"application extension changed", func(ch2 *clientHelloMsg, hrr *serverHelloMsg) {
			ch2.customExtensions = []Extension{{Type: 0xFE4D, Data: []byte{2}}}
		}},
		{"cipher suites changed", func(ch2 *clientHelloMsg, hrr *serverHelloMsg) {
			ch2.cipherSuites = []uint16{TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384}
		}},
		{"random changed", func(ch2 *clientHelloMsg, hrr *serverHelloMsg) {
			ch2.random = append([]byte{1}, make([]byte, 31)...)
		}},
		{"cookie not echoed", func(ch2 *clientHelloMsg, hrr *serverHelloMsg) {
			ch2.cookie = nil
		}},
		{"share for another group", func(ch2 *clientHelloMsg, hrr *serverHelloMsg) {
			_, x, _ := newClientKeyShare(X25519)
			ch2.keyShares = []keyShare{{group: X25519, data: x}}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c1, c2 := net.Pipe()
			defer c1.Close()
			defer c2.Close()
			scfg := testServerConfig(t)
			scfg.CurvePreferences = []tls.CurveID{CurveP256}
			done := make(chan error, 1)
			go func() { done <- Server(c2, scfg).Handshake() }()
			ch1, _ := rawHello(t)
			if err := writePlainRecord(c1, recordTypeHandshake, ch1.marshal()); err != nil {
				t.Fatal(err)
			}
			typ, body := readPlainRecord(t, c1)
			var hrr serverHelloMsg
			if typ != recordTypeHandshake || !hrr.unmarshal(body) || !hrr.isHelloRetryRequest() || hrr.selectedGroup != CurveP256 {
				t.Fatalf("want a HelloRetryRequest for P-256, got type %d", typ)
			}
			// The compatibility ChangeCipherSpec follows the HRR in the
			// same write; drain it (net.Pipe is unbuffered).
			ccs := make([]byte, 6)
			if _, err := io.ReadFull(c1, ccs); err != nil || ccs[0] != recordTypeChangeCipherSpec {
				t.Fatalf("want a ChangeCipherSpec after the HRR: %x %v", ccs, err)
			}
			ch2 := *ch1
			ch2.raw = nil
			_, p, _ := newClientKeyShare(CurveP256)
			ch2.keyShares = []keyShare{{group: CurveP256, data: p}}
			ch2.cookie = hrr.cookie
			tc.mutate(&ch2, &hrr)
			if err := writePlainRecord(c1, recordTypeHandshake, ch2.marshal()); err != nil {
				t.Fatal(err)
			}
			typ, body = readPlainRecord(t, c1)
			if typ != recordTypeAlert || len(body) != 2 || Alert(body[1]) != AlertIllegalParameter {
				t.Fatalf("got record type %d %x, want an illegal_parameter alert", typ, body)
			}
			if err := <-done; !errors.Is(err, AlertIllegalParameter) {
				t.Fatalf("server error %v", err)
			}
		})
	}
	t.Run("valid retry completes", func(t *testing.T) {
		scfg := testServerConfig(t)
		scfg.CurvePreferences = []tls.CurveID{CurveP256}
		ccfg := testClientConfig(t)
		ccfg.CurvePreferences = []tls.CurveID{X25519, CurveP256}
		s := runSession(t, ccfg, scfg)
		if s.cerr != nil || s.serr != nil || s.client.ConnectionState().Group != CurveP256 {
			t.Fatalf("client %v server %v", s.cerr, s.serr)
		}
	})
}
