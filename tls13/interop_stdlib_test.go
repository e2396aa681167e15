package tls13

// Interop with Go's crypto/tls over real loopback sockets, both directions:
// every suite × every group, every certificate type, HelloRetryRequest,
// resumption, KeyUpdate and net/http.

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anysched/anysched/internal/certtest"
)

var verSuites = []struct {
	name string
	id   uint16
}{
	{"AES128GCM", TLS_AES_128_GCM_SHA256},
	{"AES256GCM", TLS_AES_256_GCM_SHA384},
	{"CHACHA20", TLS_CHACHA20_POLY1305_SHA256},
}

var verGroups = []struct {
	name string
	id   tls.CurveID
}{
	{"X25519MLKEM768", tls.X25519MLKEM768},
	{"X25519", tls.X25519},
	{"P256", tls.CurveP256},
	{"P384", tls.CurveP384},
	{"P521", tls.CurveP521},
}

// verInteropResult is what both ends saw of one connection.
type verInteropResult struct {
	tls13    ConnectionState
	stdlib   tls.ConnectionState
	sawHRR   bool
	sessions *verSessionCatcher
}

// verTLS13ClientToStdlib runs one tls13 client → crypto/tls server
// connection with a line echoed back, and returns both states.
func verTLS13ClientToStdlib(t *testing.T, ccfg *Config, scfg *tls.Config) verInteropResult {
	t.Helper()
	ln := verListen(t)
	stateCh := make(chan tls.ConnectionState, 1)
	done := verAcceptOne(ln, func(c net.Conn) error {
		s := tls.Server(c, scfg)
		if err := s.Handshake(); err != nil {
			return err
		}
		stateCh <- s.ConnectionState()
		return verEchoLine(s)
	})
	raw := verDial(t, ln.Addr().String())
	w := &verWireConn{Conn: raw}
	res := verInteropResult{sessions: &verSessionCatcher{}}
	cfg := *ccfg
	if cfg.OnNewSessionTicket == nil {
		cfg.OnNewSessionTicket = res.sessions.hook
	}
	c := Client(w, &cfg)
	if err := c.Handshake(); err != nil {
		t.Fatalf("tls13 client handshake: %v (server: %v)", err, verWaitErr(t, done, "server"))
	}
	if err := verPingPong(c, "ping from tls13"); err != nil {
		t.Fatalf("tls13 client ping: %v", err)
	}
	if err := verWaitErr(t, done, "crypto/tls server"); err != nil {
		t.Fatalf("crypto/tls server: %v", err)
	}
	res.tls13 = c.ConnectionState()
	res.stdlib = <-stateCh
	res.sawHRR = verSawHRR(w.readBytes())
	c.Close()
	return res
}

// verStdlibClientToTLS13 runs one crypto/tls client → tls13 server
// connection with a line echoed back, and returns both states.
func verStdlibClientToTLS13(t *testing.T, ccfg *tls.Config, scfg *Config) verInteropResult {
	t.Helper()
	ln := verListen(t)
	stateCh := make(chan ConnectionState, 1)
	done := verAcceptOne(ln, func(c net.Conn) error {
		s := Server(c, scfg)
		if err := s.Handshake(); err != nil {
			return err
		}
		stateCh <- s.ConnectionState()
		return verEchoLine(s)
	})
	raw := verDial(t, ln.Addr().String())
	w := &verWireConn{Conn: raw}
	c := tls.Client(w, ccfg)
	if err := c.Handshake(); err != nil {
		t.Fatalf("crypto/tls client handshake: %v (server: %v)", err, verWaitErr(t, done, "server"))
	}
	if err := verPingPong(c, "ping from crypto/tls"); err != nil {
		t.Fatalf("crypto/tls client ping: %v", err)
	}
	if err := verWaitErr(t, done, "tls13 server"); err != nil {
		t.Fatalf("tls13 server: %v", err)
	}
	res := verInteropResult{stdlib: c.ConnectionState(), tls13: <-stateCh, sawHRR: verSawHRR(w.readBytes())}
	c.Close()
	return res
}

// verCheckAgreement asserts that both ends agree on version, suite and
// group, and that they are the wanted ones.
func verCheckAgreement(t *testing.T, r verInteropResult, suite uint16, group tls.CurveID) {
	t.Helper()
	if r.tls13.Version != tls.VersionTLS13 || r.stdlib.Version != tls.VersionTLS13 {
		t.Errorf("version: tls13 %#x, crypto/tls %#x", r.tls13.Version, r.stdlib.Version)
	}
	if r.tls13.CipherSuite != suite || r.stdlib.CipherSuite != suite {
		t.Errorf("suite: tls13 %#x, crypto/tls %#x, want %#x", r.tls13.CipherSuite, r.stdlib.CipherSuite, suite)
	}
	if group != 0 && (r.tls13.Group != group || r.stdlib.CurveID != group) {
		t.Errorf("group: tls13 %v, crypto/tls %v, want %v", r.tls13.Group, r.stdlib.CurveID, group)
	}
}

func TestInteropStdlibMatrix(t *testing.T) {
	p := verGetPKI(t, verECDSA)
	for _, s := range verSuites {
		for _, g := range verGroups {
			t.Run(fmt.Sprintf("tls13-client/%s/%s", s.name, g.name), func(t *testing.T) {
				ccfg := verTLS13ClientConfig(p)
				ccfg.CipherSuites = []uint16{s.id}
				ccfg.CurvePreferences = []tls.CurveID{g.id}
				scfg := verStdlibServerConfig(p)
				scfg.CurvePreferences = []tls.CurveID{g.id}
				r := verTLS13ClientToStdlib(t, ccfg, scfg)
				verCheckAgreement(t, r, s.id, g.id)
				if r.sawHRR {
					t.Errorf("unexpected HelloRetryRequest")
				}
				if r.tls13.DidResume {
					t.Errorf("first connection claims resumption")
				}
				if len(r.tls13.PeerCertificates) == 0 || !r.tls13.PeerCertificates[0].Equal(p.leaf.Leaf) {
					t.Errorf("peer certificate is not the server's leaf")
				}
				if len(r.tls13.VerifiedChains) == 0 {
					t.Errorf("no verified chain")
				}
			})
			t.Run(fmt.Sprintf("tls13-server/%s/%s", s.name, g.name), func(t *testing.T) {
				scfg := verTLS13ServerConfig(t, p)
				scfg.CipherSuites = []uint16{s.id}
				scfg.CurvePreferences = []tls.CurveID{g.id}
				ccfg := verStdlibClientConfig(p)
				ccfg.CurvePreferences = []tls.CurveID{g.id}
				r := verStdlibClientToTLS13(t, ccfg, scfg)
				verCheckAgreement(t, r, s.id, g.id)
				if r.sawHRR {
					t.Errorf("unexpected HelloRetryRequest")
				}
				if r.tls13.ServerName != verServerName {
					t.Errorf("server saw SNI %q, want %q", r.tls13.ServerName, verServerName)
				}
			})
		}
	}
}

func TestInteropStdlibCertificates(t *testing.T) {
	for _, kind := range verCertKinds {
		p := verGetPKI(t, kind)
		t.Run("tls13-client/"+string(kind), func(t *testing.T) {
			r := verTLS13ClientToStdlib(t, verTLS13ClientConfig(p), verStdlibServerConfig(p))
			if len(r.tls13.PeerCertificates) == 0 || !r.tls13.PeerCertificates[0].Equal(p.leaf.Leaf) {
				t.Fatalf("peer certificate is not the server's leaf")
			}
			if len(r.tls13.VerifiedChains) == 0 || !r.tls13.VerifiedChains[0][len(r.tls13.VerifiedChains[0])-1].Equal(p.caCert) {
				t.Errorf("verified chain does not end at the test CA")
			}
		})
		t.Run("tls13-server/"+string(kind), func(t *testing.T) {
			r := verStdlibClientToTLS13(t, verStdlibClientConfig(p), verTLS13ServerConfig(t, p))
			if len(r.stdlib.PeerCertificates) == 0 || !r.stdlib.PeerCertificates[0].Equal(p.leaf.Leaf) {
				t.Fatalf("crypto/tls saw a different certificate")
			}
		})
	}
	t.Run("tls13-client/untrusted-CA", func(t *testing.T) {
		p, other := verGetPKI(t, verECDSA), verGetPKI(t, verEd25519)
		ln := verListen(t)
		done := verAcceptOne(ln, func(c net.Conn) error { return tls.Server(c, verStdlibServerConfig(p)).Handshake() })
		c := Client(verDial(t, ln.Addr().String()), verTLS13ClientConfig(other))
		err := c.Handshake()
		if a, received, ok := verAlertOf(err); !ok || received || (a != AlertUnknownCA && a != AlertBadCertificate) {
			t.Fatalf("handshake error %v: want a sent unknown_ca or bad_certificate", err)
		}
		if serr := verWaitErr(t, done, "server"); serr == nil || !strings.Contains(serr.Error(), "remote error") {
			t.Errorf("crypto/tls server error %v: want the client's alert", serr)
		}
	})
	t.Run("tls13-client/wrong-name", func(t *testing.T) {
		p := verGetPKI(t, verECDSA)
		ln := verListen(t)
		done := verAcceptOne(ln, func(c net.Conn) error { return tls.Server(c, verStdlibServerConfig(p)).Handshake() })
		cfg := verTLS13ClientConfig(p)
		cfg.ServerName = "other.test"
		c := Client(verDial(t, ln.Addr().String()), cfg)
		err := c.Handshake()
		if a, received, ok := verAlertOf(err); !ok || received || a != AlertBadCertificate {
			t.Fatalf("handshake error %v: want a sent bad_certificate", err)
		}
		verWaitErr(t, done, "server")
	})
}

func TestInteropStdlibHelloRetryRequest(t *testing.T) {
	p := verGetPKI(t, verECDSA)
	// crypto/tls ignores the order of CurvePreferences: it shares
	// X25519MLKEM768 if allowed, else X25519, else P-256. The tls13 client
	// shares its first preference only.
	type hrrCase struct {
		name          string
		clientGroups  []tls.CurveID
		serverGroups  []tls.CurveID
		wantNegotiate tls.CurveID
	}
	clientCases := []hrrCase{
		{"X25519-to-P256", []tls.CurveID{tls.X25519, tls.CurveP256}, []tls.CurveID{tls.CurveP256}, tls.CurveP256},
		{"P256-to-X25519MLKEM768", []tls.CurveID{tls.CurveP256, tls.X25519MLKEM768}, []tls.CurveID{tls.X25519MLKEM768}, tls.X25519MLKEM768},
		{"P256-to-X25519", []tls.CurveID{tls.CurveP256, tls.X25519}, []tls.CurveID{tls.X25519}, tls.X25519},
		{"X25519MLKEM768-to-P256", []tls.CurveID{tls.X25519MLKEM768, tls.CurveP256}, []tls.CurveID{tls.CurveP256}, tls.CurveP256},
	}
	serverCases := []hrrCase{
		{"X25519-to-P256", []tls.CurveID{tls.X25519, tls.CurveP256}, []tls.CurveID{tls.CurveP256}, tls.CurveP256},
		{"X25519MLKEM768-to-P256", []tls.CurveID{tls.X25519MLKEM768, tls.CurveP256}, []tls.CurveID{tls.CurveP256}, tls.CurveP256},
	}
	for _, tc := range clientCases {
		t.Run("tls13-client/"+tc.name, func(t *testing.T) {
			ccfg := verTLS13ClientConfig(p)
			ccfg.CurvePreferences = tc.clientGroups
			scfg := verStdlibServerConfig(p)
			scfg.CurvePreferences = tc.serverGroups
			r := verTLS13ClientToStdlib(t, ccfg, scfg)
			if !r.sawHRR {
				t.Errorf("no HelloRetryRequest on the wire")
			}
			verCheckAgreement(t, r, r.stdlib.CipherSuite, tc.wantNegotiate)
		})
	}
	for _, tc := range serverCases {
		t.Run("tls13-server/"+tc.name, func(t *testing.T) {
			ccfg := verStdlibClientConfig(p)
			ccfg.CurvePreferences = tc.clientGroups
			scfg := verTLS13ServerConfig(t, p)
			scfg.CurvePreferences = tc.serverGroups
			r := verStdlibClientToTLS13(t, ccfg, scfg)
			if !r.sawHRR {
				t.Errorf("no HelloRetryRequest on the wire")
			}
			verCheckAgreement(t, r, r.tls13.CipherSuite, tc.wantNegotiate)
		})
	}
}

func TestInteropStdlibResumption(t *testing.T) {
	p := verGetPKI(t, verECDSA)
	for _, s := range verSuites {
		t.Run("tls13-client/"+s.name, func(t *testing.T) {
			scfg := verStdlibServerConfig(p)
			ccfg := verTLS13ClientConfig(p)
			ccfg.CipherSuites = []uint16{s.id}
			first := verTLS13ClientToStdlib(t, ccfg, scfg)
			sess := first.sessions.last()
			if sess == nil {
				t.Fatal("no NewSessionTicket reached OnNewSessionTicket")
			}
			if sess.CipherSuite() != s.id || len(sess.Ticket()) == 0 || sess.Lifetime <= 0 {
				t.Errorf("session: suite %#x ticket %d bytes lifetime %v", sess.CipherSuite(), len(sess.Ticket()), sess.Lifetime)
			}
			ccfg2 := *ccfg
			ccfg2.Session = sess
			second := verTLS13ClientToStdlib(t, &ccfg2, scfg)
			if !second.tls13.DidResume || !second.stdlib.DidResume {
				t.Fatalf("resumption: tls13 %v, crypto/tls %v", second.tls13.DidResume, second.stdlib.DidResume)
			}
			verCheckAgreement(t, second, s.id, 0)
			if len(second.tls13.PeerCertificates) == 0 {
				t.Errorf("resumed state lost the peer certificates")
			}
			if second.sessions.last() == nil {
				t.Errorf("no fresh ticket on the resumed connection")
			}
		})
		t.Run("tls13-server/"+s.name, func(t *testing.T) {
			scfg := verTLS13ServerConfig(t, p)
			scfg.CipherSuites = []uint16{s.id}
			ccfg := verStdlibClientConfig(p)
			ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			first := verStdlibClientToTLS13(t, ccfg, scfg)
			if first.stdlib.DidResume || first.tls13.DidResume {
				t.Fatalf("first connection claims resumption")
			}
			second := verStdlibClientToTLS13(t, ccfg, scfg)
			if !second.tls13.DidResume || !second.stdlib.DidResume {
				t.Fatalf("resumption: tls13 %v, crypto/tls %v", second.tls13.DidResume, second.stdlib.DidResume)
			}
			verCheckAgreement(t, second, s.id, 0)
			third := verStdlibClientToTLS13(t, ccfg, scfg)
			if !third.tls13.DidResume {
				t.Errorf("resuming the ticket issued on a resumed connection failed")
			}
		})
	}
	t.Run("tls13-server/sibling-with-shared-keys", func(t *testing.T) {
		var secret [32]byte
		secret[0] = 42
		a := verTLS13ServerConfig(t, p)
		a.TicketKeys = NewTicketKeys(secret)
		b := verTLS13ServerConfig(t, p)
		b.TicketKeys = NewTicketKeys(secret)
		ccfg := verStdlibClientConfig(p)
		ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		verStdlibClientToTLS13(t, ccfg, a)
		if r := verStdlibClientToTLS13(t, ccfg, b); !r.tls13.DidResume || !r.stdlib.DidResume {
			t.Fatalf("sibling node with the same ticket keys did not resume")
		}
	})
}

func TestInteropStdlibKeyUpdate(t *testing.T) {
	p := verGetPKI(t, verECDSA)
	// The tls13 side rekeys (with and without update_requested) between
	// rounds of data in both directions; crypto/tls must follow and answer.
	exchange := func(t *testing.T, tc *Conn, peer io.ReadWriter) {
		t.Helper()
		for i, req := range []bool{true, false, true, true} {
			if err := tc.SendKeyUpdate(req); err != nil {
				t.Fatalf("round %d: SendKeyUpdate: %v", i, err)
			}
			msg := fmt.Sprintf("round %d after KeyUpdate(request=%v)", i, req)
			errc := make(chan error, 1)
			go func() { errc <- verEchoLine(peer) }()
			if err := verPingPong(tc, msg); err != nil {
				t.Fatalf("round %d: %v", i, err)
			}
			if err := verWaitErr(t, errc, "peer echo"); err != nil {
				t.Fatalf("round %d: peer: %v", i, err)
			}
		}
		// A bulk transfer after the updates: 256 KiB each way.
		bulk := strings.Repeat("x", 256<<10) + "\n"
		errc := make(chan error, 1)
		go func() { errc <- verEchoLine(peer) }()
		if err := verPingPong(tc, bulk[:len(bulk)-1]); err != nil {
			t.Fatalf("bulk after KeyUpdate: %v", err)
		}
		if err := verWaitErr(t, errc, "peer echo"); err != nil {
			t.Fatalf("bulk: peer: %v", err)
		}
	}
	t.Run("tls13-client", func(t *testing.T) {
		ln := verListen(t)
		srvCh := make(chan *tls.Conn, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				close(srvCh)
				return
			}
			s := tls.Server(c, verStdlibServerConfig(p))
			s.Handshake() // a failure shows up in the client's handshake
			srvCh <- s
		}()
		c := Client(verDial(t, ln.Addr().String()), verTLS13ClientConfig(p))
		if err := c.Handshake(); err != nil {
			t.Fatal(err)
		}
		s := <-srvCh
		if s == nil {
			t.Fatal("accept failed")
		}
		defer s.Close()
		exchange(t, c, s)
	})
	t.Run("tls13-server", func(t *testing.T) {
		ln := verListen(t)
		srvCh := make(chan *Conn, 1)
		scfg := verTLS13ServerConfig(t, p)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				close(srvCh)
				return
			}
			srvCh <- Server(c, scfg)
		}()
		c := tls.Client(verDial(t, ln.Addr().String()), verStdlibClientConfig(p))
		hs := make(chan error, 1)
		go func() { hs <- c.Handshake() }()
		s := <-srvCh
		if s == nil {
			t.Fatal("accept failed")
		}
		defer s.Close()
		if err := s.Handshake(); err != nil {
			t.Fatal(err)
		}
		if err := verWaitErr(t, hs, "crypto/tls handshake"); err != nil {
			t.Fatal(err)
		}
		exchange(t, s, c)
	})
}

func TestInteropHTTP(t *testing.T) {
	p := verGetPKI(t, verECDSA)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %d", r.Method, r.URL.Path, len(body))
	})
	check := func(t *testing.T, client *http.Client, url string) {
		t.Helper()
		for i, body := range []string{"", "hello", strings.Repeat("y", 100<<10)} {
			method := http.MethodGet
			if body != "" {
				method = http.MethodPost
			}
			req, err := http.NewRequest(method, url+fmt.Sprintf("/req%d", i), strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("request %d body: %v", i, err)
			}
			if want := fmt.Sprintf("%s /req%d %d", method, i, len(body)); string(got) != want {
				t.Errorf("request %d: got %q, want %q", i, got, want)
			}
		}
	}
	t.Run("tls13-server-under-http.Server", func(t *testing.T) {
		cfg := verTLS13ServerConfig(t, p)
		cfg.NextProtos = []string{"http/1.1"}
		ln := NewListener(verListen(t), cfg)
		srv := &http.Server{Handler: handler}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		ccfg := verStdlibClientConfig(p)
		ccfg.NextProtos = []string{"http/1.1"}
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: ccfg}}
		t.Cleanup(client.CloseIdleConnections)
		check(t, client, "https://"+ln.Addr().String())
	})
	t.Run("tls13-client-under-http.Transport", func(t *testing.T) {
		srv := httptest.NewUnstartedServer(handler)
		srv.TLS = verStdlibServerConfig(p)
		srv.StartTLS()
		t.Cleanup(srv.Close)
		cfg := verTLS13ClientConfig(p)
		cfg.NextProtos = []string{"http/1.1"}
		var mu sync.Mutex
		var conns []*Conn
		tr := &http.Transport{DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			raw, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			c := Client(raw, cfg)
			if err := c.HandshakeContext(ctx); err != nil {
				raw.Close()
				return nil, err
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			return c, nil
		}}
		client := &http.Client{Transport: tr}
		t.Cleanup(tr.CloseIdleConnections)
		check(t, client, srv.URL)
		mu.Lock()
		defer mu.Unlock()
		if len(conns) == 0 || conns[0].ConnectionState().NegotiatedProtocol != "http/1.1" {
			t.Errorf("ALPN: want http/1.1 on the tls13 client connection")
		}
	})
}

func TestInteropStdlibALPNAndSNI(t *testing.T) {
	p := verGetPKI(t, verECDSA)
	t.Run("tls13-server/ALPN-overlap", func(t *testing.T) {
		scfg := verTLS13ServerConfig(t, p)
		scfg.NextProtos = []string{"h2", "http/1.1"}
		ccfg := verStdlibClientConfig(p)
		ccfg.NextProtos = []string{"http/1.1", "anysched/1"}
		r := verStdlibClientToTLS13(t, ccfg, scfg)
		if r.tls13.NegotiatedProtocol != "http/1.1" || r.stdlib.NegotiatedProtocol != "http/1.1" {
			t.Errorf("ALPN: tls13 %q, crypto/tls %q", r.tls13.NegotiatedProtocol, r.stdlib.NegotiatedProtocol)
		}
	})
	t.Run("tls13-client/ALPN-overlap", func(t *testing.T) {
		ccfg := verTLS13ClientConfig(p)
		ccfg.NextProtos = []string{"anysched/1", "h2"}
		scfg := verStdlibServerConfig(p)
		scfg.NextProtos = []string{"h2"}
		r := verTLS13ClientToStdlib(t, ccfg, scfg)
		if r.tls13.NegotiatedProtocol != "h2" || r.stdlib.NegotiatedProtocol != "h2" {
			t.Errorf("ALPN: tls13 %q, crypto/tls %q", r.tls13.NegotiatedProtocol, r.stdlib.NegotiatedProtocol)
		}
	})
	t.Run("tls13-server/ALPN-no-overlap", func(t *testing.T) {
		// RFC 7301 §3.2: no_application_protocol.
		scfg := verTLS13ServerConfig(t, p)
		scfg.NextProtos = []string{"h2"}
		ln := verListen(t)
		done := verAcceptOne(ln, func(c net.Conn) error { return Server(c, scfg).Handshake() })
		ccfg := verStdlibClientConfig(p)
		ccfg.NextProtos = []string{"http/1.1"}
		err := tls.Client(verDial(t, ln.Addr().String()), ccfg).Handshake()
		if err == nil || !strings.Contains(err.Error(), "no application protocol") {
			t.Errorf("crypto/tls client: %v, want remote no_application_protocol", err)
		}
		verWantAlert(t, "tls13 server", verWaitErr(t, done, "server"), AlertNoApplicationProtocol, false)
	})
	t.Run("tls13-server/GetCertificate-by-SNI", func(t *testing.T) {
		ed := verGetPKI(t, verEd25519)
		scfg := verTLS13ServerConfig(t, p)
		scfg.Certificates = nil
		scfg.GetCertificate = func(info *ClientHelloInfo) (*tls.Certificate, error) {
			switch info.ServerName {
			case verServerName:
				return &p.leaf, nil
			case "ed.test":
				return &ed.leaf, nil
			}
			return nil, errors.New("unknown name " + info.ServerName)
		}
		r := verStdlibClientToTLS13(t, verStdlibClientConfig(p), scfg)
		if !r.stdlib.PeerCertificates[0].Equal(p.leaf.Leaf) || r.tls13.ServerName != verServerName {
			t.Errorf("SNI %q: wrong certificate", r.tls13.ServerName)
		}
		ccfg := verStdlibClientConfig(ed)
		ccfg.ServerName = "ed.test"
		ccfg.InsecureSkipVerify = true // the ed25519 leaf names node.test
		r = verStdlibClientToTLS13(t, ccfg, scfg)
		if !r.stdlib.PeerCertificates[0].Equal(ed.leaf.Leaf) || r.tls13.ServerName != "ed.test" {
			t.Errorf("SNI %q: wrong certificate", r.tls13.ServerName)
		}
	})
}

func TestInteropStdlibClientCertificateRequest(t *testing.T) {
	p := verGetPKI(t, verECDSA)
	t.Run("request: tls13 client answers with no certificate", func(t *testing.T) {
		scfg := verStdlibServerConfig(p)
		scfg.ClientAuth = tls.RequestClientCert
		r := verTLS13ClientToStdlib(t, verTLS13ClientConfig(p), scfg)
		if len(r.stdlib.PeerCertificates) != 0 {
			t.Errorf("server saw %d client certificates", len(r.stdlib.PeerCertificates))
		}
	})
	t.Run("require: server refuses, tls13 client sees its alert", func(t *testing.T) {
		scfg := verStdlibServerConfig(p)
		scfg.ClientAuth = tls.RequireAnyClientCert
		ln := verListen(t)
		done := verAcceptOne(ln, func(c net.Conn) error {
			s := tls.Server(c, scfg)
			return s.Handshake()
		})
		c := Client(verDial(t, ln.Addr().String()), verTLS13ClientConfig(p))
		err := c.Handshake()
		if err == nil {
			// The client finishes its flight before the server judges it;
			// the refusal arrives on the first read.
			_, err = c.Read(make([]byte, 1))
		}
		if a, received, ok := verAlertOf(err); !ok || !received || a != AlertCertificateRequired {
			t.Errorf("tls13 client: %v, want a received certificate_required", err)
		}
		if verWaitErr(t, done, "server") == nil {
			t.Errorf("crypto/tls server accepted a client without a certificate")
		}
	})
}

func TestInteropStdlibSessionTicketAfterHandshake(t *testing.T) {
	p := verGetPKI(t, verECDSA)
	scfg := verTLS13ServerConfig(t, p)
	scfg.TicketsPerHandshake = -1 // only the explicit one below
	ln := verListen(t)
	done := verAcceptOne(ln, func(c net.Conn) error {
		s := Server(c, scfg)
		if err := s.Handshake(); err != nil {
			return err
		}
		if err := verEchoLine(s); err != nil {
			return err
		}
		if err := s.SendSessionTicket(); err != nil {
			return err
		}
		return verEchoLine(s)
	})
	ccfg := verStdlibClientConfig(p)
	cache := tls.NewLRUClientSessionCache(2)
	ccfg.ClientSessionCache = cache
	c := tls.Client(verDial(t, ln.Addr().String()), ccfg)
	if err := verPingPong(c, "before"); err != nil {
		t.Fatal(err)
	}
	if s, ok := cache.Get(verServerName); ok && s != nil {
		t.Fatalf("a ticket arrived although TicketsPerHandshake is -1")
	}
	if err := verPingPong(c, "after"); err != nil {
		t.Fatal(err)
	}
	if err := verWaitErr(t, done, "server"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if r := verStdlibClientToTLS13(t, ccfg, scfg); !r.tls13.DidResume || !r.stdlib.DidResume {
		t.Fatalf("the ticket sent with SendSessionTicket did not resume")
	}
}

func TestInteropHandshakeContextCancel(t *testing.T) {
	p := verGetPKI(t, verECDSA)
	ln := verListen(t)
	accepted := make(chan net.Conn, 1)
	go func() { // a server that never answers
		c, _ := ln.Accept()
		accepted <- c
	}()
	defer func() {
		if c := <-accepted; c != nil {
			c.Close()
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	c := Client(verDial(t, ln.Addr().String()), verTLS13ClientConfig(p))
	errc := make(chan error, 1)
	go func() { errc <- c.HandshakeContext(ctx) }()
	cancel()
	if err := verWaitErr(t, errc, "cancelled handshake"); !errors.Is(err, context.Canceled) {
		t.Errorf("HandshakeContext after cancel: %v, want context.Canceled", err)
	}
}

func TestInteropVerificationSettings(t *testing.T) {
	p := verGetPKI(t, verECDSA)
	other := verGetPKI(t, verEd25519)
	dialStdlib := func(t *testing.T, cfg *Config) error {
		ln := verListen(t)
		done := verAcceptOne(ln, func(c net.Conn) error { return tls.Server(c, verStdlibServerConfig(p)).Handshake() })
		raw := verDial(t, ln.Addr().String())
		err := Client(raw, cfg).Handshake()
		raw.Close() // a client that refused early leaves the server waiting
		verWaitErr(t, done, "server")
		return err
	}
	t.Run("no ServerName and no InsecureSkipVerify fails closed", func(t *testing.T) {
		if err := dialStdlib(t, &Config{RootCAs: p.roots}); err == nil {
			t.Fatal("handshake without a name to verify succeeded")
		}
	})
	t.Run("InsecureSkipVerify accepts an untrusted chain", func(t *testing.T) {
		if err := dialStdlib(t, &Config{RootCAs: other.roots, InsecureSkipVerify: true}); err != nil {
			t.Fatalf("InsecureSkipVerify: %v", err)
		}
	})
	t.Run("IP address as ServerName verifies the IP SAN", func(t *testing.T) {
		if err := dialStdlib(t, &Config{RootCAs: p.roots, ServerName: "127.0.0.1"}); err != nil {
			t.Fatalf("IP SAN: %v", err)
		}
	})
}

func TestInteropReadDeadlineIsRetryable(t *testing.T) {
	// net/http aborts a background read with a deadline in the past and
	// then reads again: a timeout must not poison the connection.
	p := verGetPKI(t, verECDSA)
	ln := verListen(t)
	release := make(chan struct{})
	done := verAcceptOne(ln, func(c net.Conn) error {
		s := tls.Server(c, verStdlibServerConfig(p))
		if err := s.Handshake(); err != nil {
			return err
		}
		<-release
		_, err := io.WriteString(s, "late\n")
		return err
	})
	c := Client(verDial(t, ln.Addr().String()), verTLS13ClientConfig(p))
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(-time.Second))
	_, err := c.Read(make([]byte, 8))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past the deadline: %v, want a timeout", err)
	}
	c.SetReadDeadline(time.Now().Add(verWait))
	close(release)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "late\n" {
		t.Fatalf("read after a timeout: %q, %v", line, err)
	}
	if err := verWaitErr(t, done, "server"); err != nil {
		t.Fatal(err)
	}
}

func TestInteropLargeCertificateChain(t *testing.T) {
	// A leaf with ~24 KiB of subjectAltNames: the Certificate message
	// spans several records in both directions (§5.1).
	names := []string{verServerName}
	for i := 0; len(names) < 800; i++ {
		names = append(names, fmt.Sprintf("host-%04d.a-rather-long-name.test", i))
	}
	ca := certtest.MustCA(t, certtest.CAOptions{Name: "big chain CA"})
	leaf := ca.MustIssue(t, certtest.LeafOptions{CommonName: verServerName, DNSNames: names, WithCA: true})
	if n := len(leaf.TLS.Certificate[0]); n < 20000 {
		t.Fatalf("leaf is only %d bytes", n)
	}
	bigPKI := &verPKI{kind: verECDSA, caCert: ca.Cert, roots: ca.Pool(), leaf: leaf.TLS}
	t.Run("tls13-client", func(t *testing.T) {
		r := verTLS13ClientToStdlib(t, verTLS13ClientConfig(bigPKI), verStdlibServerConfig(bigPKI))
		if len(r.tls13.PeerCertificates) != 2 || len(r.tls13.PeerCertificates[0].DNSNames) != len(names) {
			t.Errorf("peer chain not received whole")
		}
	})
	t.Run("tls13-server", func(t *testing.T) {
		r := verStdlibClientToTLS13(t, verStdlibClientConfig(bigPKI), verTLS13ServerConfig(t, bigPKI))
		if len(r.stdlib.PeerCertificates) != 2 {
			t.Errorf("crypto/tls got %d certificates", len(r.stdlib.PeerCertificates))
		}
	})
}

func TestInteropConcurrentTraffic(t *testing.T) {
	// Both directions at once, with KeyUpdates from the tls13 side while
	// data flows; the race detector watches the engine's locking.
	p := verGetPKI(t, verECDSA)
	const total = 1 << 20
	for _, side := range []string{"tls13-client", "tls13-server"} {
		t.Run(side, func(t *testing.T) {
			local, peer, tc, _ := verMixedPair(t, p, side)
			pump := func(w io.Writer, r io.Reader) <-chan error {
				errc := make(chan error, 2)
				go func() {
					buf := make([]byte, 3000)
					for sent := 0; sent < total; sent += len(buf) {
						if _, err := w.Write(buf); err != nil {
							errc <- err
							return
						}
					}
					errc <- nil
				}()
				go func() {
					_, err := io.CopyN(io.Discard, r, int64((total+2999)/3000*3000))
					errc <- err
				}()
				return errc
			}
			a := pump(local, peer)
			b := pump(peer, local)
			for i := 0; i < 10; i++ {
				if err := tc.SendKeyUpdate(i%2 == 0); err != nil {
					t.Fatalf("SendKeyUpdate %d: %v", i, err)
				}
			}
			for i := 0; i < 2; i++ {
				if err := verWaitErr(t, a, "pump a"); err != nil {
					t.Fatal(err)
				}
				if err := verWaitErr(t, b, "pump b"); err != nil {
					t.Fatal(err)
				}
			}
			peer.Close()
		})
	}
}

// verHelloExtTypes returns the extension types of the first ClientHello in
// the client's recorded bytes, in wire order.
func verHelloExtTypes(t *testing.T, c2s []byte) []uint16 {
	t.Helper()
	recs, _ := verSplitRecords(c2s)
	var msg []byte
	for _, r := range recs {
		if r[0] != verRecordHandshake {
			break
		}
		msg = append(msg, r[5:]...)
		if len(msg) >= 4 && len(msg) >= 4+(int(msg[1])<<16|int(msg[2])<<8|int(msg[3])) {
			break
		}
	}
	var m clientHelloMsg
	if !m.unmarshal(msg) {
		t.Fatalf("recorded ClientHello does not parse")
	}
	var types []uint16
	for _, e := range m.extensions {
		types = append(types, e.Type)
	}
	return types
}

func TestInteropStdlibClientHelloExtensionsUnderBinder(t *testing.T) {
	// The migration layer's ClientHello extensions (migration_support,
	// migration_token) must sit before pre_shared_key and be covered by the
	// binder: crypto/tls verifies the binder over them, so resumption
	// succeeds only if the engine computed it over the final ClientHello.
	p := verGetPKI(t, verECDSA)
	ccfg := verTLS13ClientConfig(p)
	ccfg.ClientHelloExtensions = func(_ *Conn, s *ClientSession) []Extension {
		exts := []Extension{{Type: 0xFE4D}}
		if s != nil {
			exts = append(exts, Extension{Type: 0xFE4F, Data: []byte("a migration token of some length")})
		}
		return exts
	}
	scfg := verStdlibServerConfig(p)
	first := verTLS13ClientToStdlib(t, ccfg, scfg)
	sess := first.sessions.last()
	if sess == nil {
		t.Fatal("no ticket")
	}
	ln := verListen(t)
	done := verAcceptOne(ln, func(c net.Conn) error {
		s := tls.Server(c, scfg)
		if err := verEchoLine(s); err != nil {
			return err
		}
		if !s.ConnectionState().DidResume {
			return errors.New("crypto/tls did not resume")
		}
		return nil
	})
	w := &verWireConn{Conn: verDial(t, ln.Addr().String())}
	ccfg2 := *ccfg
	ccfg2.Session = sess
	c := Client(w, &ccfg2)
	if err := verPingPong(c, "resumed with extensions"); err != nil {
		t.Fatal(err)
	}
	if err := verWaitErr(t, done, "crypto/tls server"); err != nil {
		t.Fatal(err)
	}
	if !c.ConnectionState().DidResume {
		t.Fatal("tls13 client did not resume")
	}
	types := verHelloExtTypes(t, w.wroteBytes())
	if len(types) == 0 || types[len(types)-1] != verExtPreSharedKey {
		t.Fatalf("extension order %x: pre_shared_key must be last", types)
	}
	var sawSupport, sawToken bool
	for _, ty := range types {
		sawSupport = sawSupport || ty == 0xFE4D
		sawToken = sawToken || ty == 0xFE4F
	}
	if !sawSupport || !sawToken {
		t.Errorf("extension order %x lacks 0xfe4d or 0xfe4f", types)
	}
}

func TestInteropStdlibResumptionWithHelloRetryRequest(t *testing.T) {
	// The binder of the second ClientHello covers the transcript with the
	// HelloRetryRequest in it (§4.2.11.2); both stacks must agree.
	p := verGetPKI(t, verECDSA)
	t.Run("tls13-client", func(t *testing.T) {
		scfg := verStdlibServerConfig(p)
		scfg.CurvePreferences = []tls.CurveID{tls.CurveP256}
		ccfg := verTLS13ClientConfig(p)
		ccfg.CurvePreferences = []tls.CurveID{tls.X25519, tls.CurveP256}
		first := verTLS13ClientToStdlib(t, ccfg, scfg)
		sess := first.sessions.last()
		if sess == nil {
			t.Fatal("no ticket")
		}
		ccfg2 := *ccfg
		ccfg2.Session = sess
		r := verTLS13ClientToStdlib(t, &ccfg2, scfg)
		if !r.sawHRR {
			t.Errorf("no HelloRetryRequest on the wire")
		}
		if !r.tls13.DidResume || !r.stdlib.DidResume {
			t.Fatalf("resumption after HRR: tls13 %v, crypto/tls %v", r.tls13.DidResume, r.stdlib.DidResume)
		}
	})
	t.Run("tls13-server", func(t *testing.T) {
		scfg := verTLS13ServerConfig(t, p)
		scfg.CurvePreferences = []tls.CurveID{tls.CurveP256}
		ccfg := verStdlibClientConfig(p)
		ccfg.CurvePreferences = []tls.CurveID{tls.X25519, tls.CurveP256}
		ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(2)
		verStdlibClientToTLS13(t, ccfg, scfg)
		r := verStdlibClientToTLS13(t, ccfg, scfg)
		if !r.sawHRR {
			t.Errorf("no HelloRetryRequest on the wire")
		}
		if !r.tls13.DidResume || !r.stdlib.DidResume {
			t.Fatalf("resumption after HRR: tls13 %v, crypto/tls %v", r.tls13.DidResume, r.stdlib.DidResume)
		}
	})
}

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

// TestStdlibOverPipe: tls13 against crypto/tls in both roles, every suite
// with the groups both offer, over net.Pipe: an unbuffered transport, on
// which each side must drain the other's whole flight before writing its
// own; data flows both ways after the handshake.
func TestStdlibOverPipe(t *testing.T) {
	p := getPKI(t)
	for _, side := range []string{"tls13-client", "tls13-server"} {
		for _, suite := range allSuites {
			for _, group := range allGroups {
				t.Run(fmt.Sprintf("%s/%04x/%v", side, suite, group), func(t *testing.T) {
					c1, c2 := net.Pipe()
					defer c1.Close()
					defer c2.Close()
					var client, server interface {
						net.Conn
						Handshake() error
					}
					var negotiated func() (uint16, tls.CurveID)
					if side == "tls13-client" {
						scfg := &tls.Config{Certificates: []tls.Certificate{p.ecdsa, p.rsa}, CurvePreferences: []tls.CurveID{group}, MinVersion: tls.VersionTLS13}
						ccfg := testClientConfig(t)
						ccfg.CipherSuites = []uint16{suite}
						ccfg.CurvePreferences = []tls.CurveID{group}
						c := Client(c1, ccfg)
						client, server = c, tls.Server(c2, scfg)
						negotiated = func() (uint16, tls.CurveID) { st := c.ConnectionState(); return st.CipherSuite, st.Group }
					} else {
						scfg := testServerConfig(t)
						scfg.CipherSuites = []uint16{suite}
						scfg.CurvePreferences = []tls.CurveID{group}
						ccfg := &tls.Config{RootCAs: p.pool, ServerName: "example.test", CurvePreferences: []tls.CurveID{group}}
						c := tls.Client(c1, ccfg)
						client, server = c, Server(c2, scfg)
						negotiated = func() (uint16, tls.CurveID) { st := c.ConnectionState(); return st.CipherSuite, st.CurveID }
					}
					cerr, serr := handshakePair(t, client, server)
					if cerr != nil || serr != nil {
						t.Fatalf("client %v, server %v", cerr, serr)
					}
					if gotSuite, gotGroup := negotiated(); gotSuite != suite || gotGroup != group {
						t.Fatalf("negotiated %04x %v", gotSuite, gotGroup)
					}
					echoCheck(t, client, server)
					echoCheck(t, server, client)
				})
			}
		}
	}
}
