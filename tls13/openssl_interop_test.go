package tls13

// Interop with OpenSSL 3.0 (`openssl s_server` / `openssl s_client`) over
// loopback: full handshakes for every suite × the groups OpenSSL 3.0 has
// (it predates X25519MLKEM768), every certificate type, and resumption in
// both directions (-num_tickets on s_server, -sess_out/-sess_in on
// s_client). A crypto/tls row runs the same harness as a control.

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var verOpenSSLGroups = []struct {
	name    string // OpenSSL's name
	id      tls.CurveID
	display string
}{
	{"X25519", tls.X25519, "X25519"},
	{"P-256", tls.CurveP256, "P256"},
}

var verOpenSSLSuiteNames = map[uint16]string{
	TLS_AES_128_GCM_SHA256:       "TLS_AES_128_GCM_SHA256",
	TLS_AES_256_GCM_SHA384:       "TLS_AES_256_GCM_SHA384",
	TLS_CHACHA20_POLY1305_SHA256: "TLS_CHACHA20_POLY1305_SHA256",
}

// verHTTPGetOver sends an HTTP/1.0 GET over c (s_server -www answers with
// a status page and closes) and returns the page.
func verHTTPGetOver(c net.Conn) (string, error) {
	c.SetDeadline(time.Now().Add(verWait))
	if _, err := io.WriteString(c, "GET / HTTP/1.0\r\n\r\n"); err != nil {
		return "", err
	}
	page, err := io.ReadAll(c)
	return string(page), err
}

func TestOpenSSLServer(t *testing.T) {
	verOpenSSL(t)
	type run struct {
		name    string
		kind    verCertKind
		suite   uint16
		group   string
		groupID tls.CurveID
	}
	var runs []run
	for _, s := range verSuites {
		for _, g := range verOpenSSLGroups {
			runs = append(runs, run{fmt.Sprintf("%s/%s/%s", verECDSA, s.name, g.display), verECDSA, s.id, g.name, g.id})
		}
	}
	runs = append(runs,
		run{string(verEd25519) + "/AES128GCM/X25519", verEd25519, TLS_AES_128_GCM_SHA256, "X25519", tls.X25519},
		run{string(verRSAPSS) + "/AES128GCM/X25519", verRSAPSS, TLS_AES_128_GCM_SHA256, "X25519", tls.X25519})
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			p := verGetPKI(t, r.kind)
			_, certFile, keyFile := p.writePEM(t)
			srv := verStartOpenSSLServer(t, "-cert", certFile, "-key", keyFile, "-tls1_3", "-www",
				"-num_tickets", "2", "-groups", r.group, "-ciphersuites", verOpenSSLSuiteNames[r.suite])
			sessions := &verSessionCatcher{}
			cfg := verTLS13ClientConfig(p)
			cfg.CipherSuites = []uint16{r.suite}
			cfg.CurvePreferences = []tls.CurveID{r.groupID}
			cfg.OnNewSessionTicket = sessions.hook

			// Full handshake.
			c := Client(verDial(t, srv.addr), cfg)
			page, err := verHTTPGetOver(c)
			if err != nil {
				t.Fatalf("GET over tls13 to s_server: %v (page so far %q)", err, page)
			}
			st := c.ConnectionState()
			c.Close()
			if !strings.Contains(page, "New, TLSv1.3, Cipher is "+verOpenSSLSuiteNames[r.suite]) {
				t.Fatalf("s_server did not report a new TLSv1.3 session with %s:\n%s", verOpenSSLSuiteNames[r.suite], page)
			}
			if st.CipherSuite != r.suite || st.Group != r.groupID || st.DidResume {
				t.Errorf("state: suite %#x group %v resumed %v", st.CipherSuite, st.Group, st.DidResume)
			}
			sess := sessions.last()
			if sess == nil {
				t.Fatal("no ticket from s_server reached OnNewSessionTicket")
			}

			// Resumption with s_server's ticket.
			cfg2 := *cfg
			cfg2.Session = sess
			c2 := Client(verDial(t, srv.addr), &cfg2)
			page, err = verHTTPGetOver(c2)
			if err != nil {
				t.Fatalf("resumed GET: %v", err)
			}
			st2 := c2.ConnectionState()
			c2.Close()
			if !st2.DidResume {
				t.Errorf("tls13 client did not resume with an s_server ticket")
			}
			if !strings.Contains(page, "Reused, TLSv1.3") {
				t.Errorf("s_server did not report a reused session:\n%s", page)
			}
		})
	}
	// Control: the same harness with crypto/tls as the client.
	t.Run("control-crypto-tls", func(t *testing.T) {
		p := verGetPKI(t, verECDSA)
		_, certFile, keyFile := p.writePEM(t)
		srv := verStartOpenSSLServer(t, "-cert", certFile, "-key", keyFile, "-tls1_3", "-www", "-num_tickets", "2")
		cfg := verStdlibClientConfig(p)
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(2)
		for i, want := range []string{"New, TLSv1.3", "Reused, TLSv1.3"} {
			c := tls.Client(verDial(t, srv.addr), cfg)
			page, err := verHTTPGetOver(c)
			c.Close() // s_server serves one connection at a time
			if err != nil || !strings.Contains(page, want) {
				t.Fatalf("connection %d: err %v, want %q in:\n%s", i, err, want, page)
			}
		}
	})
}

// verServedConn is what the tls13 server saw of one s_client connection.
type verServedConn struct {
	state   ConnectionState
	gotLine string
	err     error
}

// verServeForOpenSSL accepts connections on ln with the tls13 server
// config cfg; each connection greets, reads one line, replies and closes.
func verServeForOpenSSL(t *testing.T, ln net.Listener, cfg *Config) <-chan verServedConn {
	t.Helper()
	out := make(chan verServedConn, 8)
	go func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer raw.Close()
				raw.SetDeadline(time.Now().Add(verWait))
				c := Server(raw, cfg)
				var r verServedConn
				defer func() { out <- r }()
				if r.err = c.Handshake(); r.err != nil {
					return
				}
				r.state = c.ConnectionState()
				if _, r.err = io.WriteString(c, "hello from tls13\n"); r.err != nil {
					return
				}
				line, err := bufio.NewReader(c).ReadString('\n')
				r.gotLine, r.err = line, err
				if err == nil {
					_, r.err = io.WriteString(c, "echo "+line)
				}
				c.Close()
			}()
		}
	}()
	return out
}

func TestOpenSSLClient(t *testing.T) {
	verOpenSSL(t)
	type run struct {
		name    string
		kind    verCertKind
		suite   uint16
		group   string
		groupID tls.CurveID
	}
	var runs []run
	for _, s := range verSuites {
		for _, g := range verOpenSSLGroups {
			runs = append(runs, run{fmt.Sprintf("%s/%s/%s", verECDSA, s.name, g.display), verECDSA, s.id, g.name, g.id})
		}
	}
	runs = append(runs,
		run{string(verEd25519) + "/AES128GCM/X25519", verEd25519, TLS_AES_128_GCM_SHA256, "X25519", tls.X25519},
		run{string(verRSAPSS) + "/AES128GCM/X25519", verRSAPSS, TLS_AES_128_GCM_SHA256, "X25519", tls.X25519})
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			p := verGetPKI(t, r.kind)
			caFile, _, _ := p.writePEM(t)
			sessFile := filepath.Join(t.TempDir(), "session.pem")
			cfg := verTLS13ServerConfig(t, p)
			ln := verListen(t)
			served := verServeForOpenSSL(t, ln, cfg)
			args := []string{"-tls1_3", "-servername", verServerName, "-CAfile", caFile,
				"-verify_return_error", "-verify_hostname", verServerName,
				"-groups", r.group, "-ciphersuites", verOpenSSLSuiteNames[r.suite]}

			// Full handshake; the session goes to -sess_out.
			cli := verStartOpenSSLClient(t, ln.Addr().String(), append(args, "-sess_out", sessFile)...)
			cli.waitOutput(t, "hello from tls13")
			io.WriteString(cli.stdin, "ping from openssl\n")
			cli.waitOutput(t, "echo ping from openssl")
			out := cli.finish(t)
			var first verServedConn
			select {
			case first = <-served:
			case <-time.After(verWait):
				t.Fatal("tls13 server did not finish")
			}
			if first.err != nil {
				t.Fatalf("tls13 server: %v", first.err)
			}
			if first.state.CipherSuite != r.suite || first.state.Group != r.groupID || first.state.DidResume {
				t.Errorf("server state: suite %#x group %v resumed %v", first.state.CipherSuite, first.state.Group, first.state.DidResume)
			}
			if first.state.ServerName != verServerName {
				t.Errorf("server saw SNI %q", first.state.ServerName)
			}
			for _, want := range []string{"New, TLSv1.3, Cipher is " + verOpenSSLSuiteNames[r.suite], "Verify return code: 0 (ok)"} {
				if !strings.Contains(out, want) {
					t.Errorf("s_client output lacks %q:\n%s", want, out)
				}
			}
			if fi, err := os.Stat(sessFile); err != nil || fi.Size() == 0 {
				t.Fatalf("s_client saved no session (no NewSessionTicket processed): %v", err)
			}

			// Resumption from -sess_in.
			cli2 := verStartOpenSSLClient(t, ln.Addr().String(), append(args, "-sess_in", sessFile)...)
			cli2.waitOutput(t, "hello from tls13")
			io.WriteString(cli2.stdin, "again\n")
			cli2.waitOutput(t, "echo again")
			out2 := cli2.finish(t)
			var second verServedConn
			select {
			case second = <-served:
			case <-time.After(verWait):
				t.Fatal("tls13 server did not finish")
			}
			if second.err != nil {
				t.Fatalf("tls13 server (resumption): %v", second.err)
			}
			if !second.state.DidResume {
				t.Errorf("tls13 server did not resume the s_client session")
			}
			if !strings.Contains(out2, "Reused, TLSv1.3") {
				t.Errorf("s_client did not report a reused session:\n%s", out2)
			}
		})
	}
}
