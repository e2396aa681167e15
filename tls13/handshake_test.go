package tls13

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"testing"
)

var allSuites = []uint16{TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256}
var allGroups = []tls.CurveID{X25519MLKEM768, X25519, CurveP256}

func echoCheck(t *testing.T, w io.Writer, r io.Reader) {
	t.Helper()
	msg := []byte("hello over tls13")
	errc := make(chan error, 1)
	go func() { _, err := w.Write(msg); errc <- err }()
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if string(buf) != string(msg) {
		t.Fatalf("got %q", buf)
	}
}

func TestClientAgainstStdlibServer(t *testing.T) {
	p := getPKI(t)
	for _, suite := range allSuites {
		for _, group := range allGroups {
			t.Run(fmt.Sprintf("%04x/%v", suite, group), func(t *testing.T) {
				c1, c2 := net.Pipe()
				defer c1.Close()
				defer c2.Close()
				scfg := &tls.Config{Certificates: []tls.Certificate{p.ecdsa, p.rsa}, CurvePreferences: []tls.CurveID{group}, MinVersion: tls.VersionTLS13}
				ccfg := testClientConfig(t)
				ccfg.CipherSuites = []uint16{suite}
				ccfg.CurvePreferences = []tls.CurveID{group}
				client := Client(c1, ccfg)
				server := tls.Server(c2, scfg)
				cerr, serr := handshakePair(t, client, server)
				if cerr != nil || serr != nil {
					t.Fatalf("client %v, server %v", cerr, serr)
				}
				st := client.ConnectionState()
				if st.CipherSuite != suite || st.Group != group {
					t.Fatalf("negotiated %04x %v", st.CipherSuite, st.Group)
				}
				echoCheck(t, client, server)
				echoCheck(t, server, client)
			})
		}
	}
}

func TestStdlibClientAgainstServer(t *testing.T) {
	p := getPKI(t)
	for _, suite := range allSuites {
		for _, group := range allGroups {
			t.Run(fmt.Sprintf("%04x/%v", suite, group), func(t *testing.T) {
				c1, c2 := net.Pipe()
				defer c1.Close()
				defer c2.Close()
				scfg := testServerConfig(t)
				scfg.CipherSuites = []uint16{suite}
				scfg.CurvePreferences = []tls.CurveID{group}
				ccfg := &tls.Config{RootCAs: p.pool, ServerName: "example.test", CurvePreferences: []tls.CurveID{group}}
				client := tls.Client(c1, ccfg)
				server := Server(c2, scfg)
				cerr, serr := handshakePair(t, client, server)
				if cerr != nil || serr != nil {
					t.Fatalf("client %v, server %v", cerr, serr)
				}
				st := client.ConnectionState()
				if st.CipherSuite != suite || st.CurveID != group {
					t.Fatalf("negotiated %04x %v", st.CipherSuite, st.CurveID)
				}
				echoCheck(t, client, server)
				echoCheck(t, server, client)
			})
		}
	}
}
