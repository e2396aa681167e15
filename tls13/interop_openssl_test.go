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
	{"P-384", tls.CurveP384, "P384"},
	{"P-521", tls.CurveP521, "P521"},
	{"X448", X448, "X448"},
	{"ffdhe2048", FFDHE2048, "FFDHE2048"},
	{"ffdhe3072", FFDHE3072, "FFDHE3072"},
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

// verOpenSSLRun is one OpenSSL interop case: a certificate type, a suite
// and a group OpenSSL 3.0 has.
type verOpenSSLRun struct {
	name    string
	kind    verCertKind
	suite   uint16
	group   string
	groupID tls.CurveID
}

// verOpenSSLRuns is the OpenSSL matrix, the same in both directions: every
// suite × group with ECDSA, plus Ed25519 and RSA-PSS once each.
func verOpenSSLRuns() []verOpenSSLRun {
	var runs []verOpenSSLRun
	for _, s := range verSuites {
		for _, g := range verOpenSSLGroups {
			runs = append(runs, verOpenSSLRun{fmt.Sprintf("%s/%s/%s", verECDSA, s.name, g.display), verECDSA, s.id, g.name, g.id})
		}
	}
	return append(runs,
		verOpenSSLRun{string(verEd25519) + "/AES128GCM/X25519", verEd25519, TLS_AES_128_GCM_SHA256, "X25519", tls.X25519},
		verOpenSSLRun{string(verRSAPSS) + "/AES128GCM/X25519", verRSAPSS, TLS_AES_128_GCM_SHA256, "X25519", tls.X25519})
}

func TestOpenSSLServer(t *testing.T) {
	verOpenSSL(t)
	for _, r := range verOpenSSLRuns() {
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

// verOpenSSLEcho runs one s_client session against a server from
// verServeForOpenSSL: it waits for the greeting, sends line, waits for its
// echo, and returns s_client's output and what the server saw.
func verOpenSSLEcho(t *testing.T, addr string, served <-chan verServedConn, line string, args ...string) (string, verServedConn) {
	t.Helper()
	cli := verStartOpenSSLClient(t, addr, args...)
	cli.waitOutput(t, "hello from tls13")
	io.WriteString(cli.stdin, line+"\n")
	cli.waitOutput(t, "echo "+line)
	out := cli.finish(t)
	select {
	case sc := <-served:
		return out, sc
	case <-time.After(verWait):
		t.Fatal("tls13 server did not finish")
	}
	return out, verServedConn{}
}

// verServeGreeted accepts one connection on ln as a tls13 server, writes
// the greeting s_client waits for, and goes on with then; its result
// arrives on the returned channel.
func verServeGreeted(ln net.Listener, cfg *Config, then func(c *Conn) error) <-chan error {
	served := make(chan error, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer raw.Close()
		raw.SetDeadline(time.Now().Add(verWait))
		c := Server(raw, cfg)
		if _, err := io.WriteString(c, "hello from tls13\n"); err != nil {
			served <- err
			return
		}
		served <- then(c)
	}()
	return served
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
	for _, r := range verOpenSSLRuns() {
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
			out, first := verOpenSSLEcho(t, ln.Addr().String(), served, "ping from openssl", append(args, "-sess_out", sessFile)...)
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
			out2, second := verOpenSSLEcho(t, ln.Addr().String(), served, "again", append(args, "-sess_in", sessFile)...)
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

func TestOpenSSLHelloRetryRequest(t *testing.T) {
	verOpenSSL(t)
	p := verGetPKI(t, verECDSA)
	caFile, certFile, keyFile := p.writePEM(t)
	t.Run("tls13-client", func(t *testing.T) {
		srv := verStartOpenSSLServer(t, "-cert", certFile, "-key", keyFile, "-tls1_3", "-www", "-groups", "P-256")
		cfg := verTLS13ClientConfig(p)
		cfg.CurvePreferences = []tls.CurveID{tls.X25519, tls.CurveP256} // shares X25519 only
		w := &verWireConn{Conn: verDial(t, srv.addr)}
		c := Client(w, cfg)
		page, err := verHTTPGetOver(c)
		c.Close()
		if err != nil || !strings.Contains(page, "New, TLSv1.3") {
			t.Fatalf("GET after HRR: %v\n%s", err, page)
		}
		if !verSawHRR(w.readBytes()) {
			t.Errorf("no HelloRetryRequest from s_server on the wire")
		}
		if g := c.ConnectionState().Group; g != tls.CurveP256 {
			t.Errorf("group %v, want P-256", g)
		}
	})
	t.Run("tls13-server", func(t *testing.T) {
		cfg := verTLS13ServerConfig(t, p)
		cfg.CurvePreferences = []tls.CurveID{tls.CurveP256}
		ln := verListen(t)
		wires := make(chan *verWireConn, 1)
		served := verServeForOpenSSL(t, &verRecordingListener{Listener: ln, conns: wires}, cfg)
		// s_client shares only its first group, X25519.
		_, r := verOpenSSLEcho(t, ln.Addr().String(), served, "ping", "-tls1_3", "-servername", verServerName, "-CAfile", caFile,
			"-verify_return_error", "-groups", "X25519:P-256")
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.state.Group != tls.CurveP256 {
			t.Errorf("group %v, want P-256", r.state.Group)
		}
		if w := <-wires; !verSawHRR(w.wroteBytes()) {
			t.Errorf("tls13 server sent no HelloRetryRequest")
		}
	})
}

// verRecordingListener wraps accepted connections in verWireConn and
// hands each wrapper to conns.
type verRecordingListener struct {
	net.Listener
	conns chan *verWireConn
}

func (l *verRecordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	w := &verWireConn{Conn: c}
	select {
	case l.conns <- w:
	default:
	}
	return w, nil
}

func TestOpenSSLKeyUpdate(t *testing.T) {
	verOpenSSL(t)
	p := verGetPKI(t, verECDSA)
	caFile, certFile, keyFile := p.writePEM(t)
	t.Run("s_client-requests-update-from-tls13-server", func(t *testing.T) {
		ln := verListen(t)
		cfg := verTLS13ServerConfig(t, p)
		served := verServeGreeted(ln, cfg, func(c *Conn) error {
			br := bufio.NewReader(c)
			for i := 0; i < 2; i++ {
				line, err := br.ReadString('\n')
				if err != nil {
					return err
				}
				if _, err := io.WriteString(c, "echo "+line); err != nil {
					return err
				}
			}
			return nil
		})
		cli := verStartOpenSSLClient(t, ln.Addr().String(), "-tls1_3", "-servername", verServerName, "-CAfile", caFile, "-verify_return_error")
		cli.waitOutput(t, "hello from tls13")
		io.WriteString(cli.stdin, "first\n")
		cli.waitOutput(t, "echo first")
		// "K" at the start of a line: KeyUpdate with update_requested.
		io.WriteString(cli.stdin, "K\n")
		cli.waitOutput(t, "KEYUPDATE")
		io.WriteString(cli.stdin, "second\n")
		cli.waitOutput(t, "echo second")
		cli.finish(t)
		if err := verWaitErr(t, served, "tls13 server"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("s_server-requests-update-from-tls13-client", func(t *testing.T) {
		srv := verStartOpenSSLServer(t, "-cert", certFile, "-key", keyFile, "-tls1_3")
		w := &verWireConn{Conn: verDial(t, srv.addr)}
		c := Client(w, verTLS13ClientConfig(p))
		if err := c.Handshake(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 4)
		go func() {
			br := bufio.NewReader(c)
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					close(lines)
					return
				}
				lines <- line
			}
		}()
		next := func() string {
			select {
			case l := <-lines:
				return l
			case <-time.After(verWait):
				t.Fatal("no line from s_server")
				return ""
			}
		}
		io.WriteString(srv.stdin, "before\n")
		if line := next(); line != "before\n" {
			t.Fatalf("read before KeyUpdate: %q", line)
		}
		// "K" at the start of a line makes s_server send a KeyUpdate with
		// update_requested; s_server drops the rest of that read, so wait
		// until the KeyUpdate record reached the client before more data.
		seen := len(w.readBytes())
		io.WriteString(srv.stdin, "K\n")
		verWaitFor(t, "s_server's KeyUpdate record", func() bool { return len(w.readBytes()) > seen })
		io.WriteString(srv.stdin, "after\n")
		if line := next(); line != "after\n" {
			t.Fatalf("read after s_server's KeyUpdate: %q", line)
		}
		// Our answer (update_not_requested) rekeyed our side: OpenSSL must
		// still read what we write.
		io.WriteString(c, "pong after rekey\n")
		verWaitFor(t, "s_server to print our data", func() bool { return strings.Contains(srv.out.String(), "pong after rekey") })
		c.Close()
	})
}

func TestOpenSSLUnknownNotificationIsFatal(t *testing.T) {
	// Why migrate_notify goes only to clients that announced support: a
	// stock stack (OpenSSL here, crypto/tls in conn_test.go)
	// treats the unknown warning alert as fatal (RFC 8446 §6).
	verOpenSSL(t)
	p := verGetPKI(t, verECDSA)
	caFile, _, _ := p.writePEM(t)
	cfg := verTLS13ServerConfig(t, p)
	cfg.NotificationAlerts = []uint8{240}
	ln := verListen(t)
	served := verServeGreeted(ln, cfg, func(c *Conn) error {
		if err := c.SendNotification(240); err != nil {
			return err
		}
		_, err := c.Read(make([]byte, 64))
		return err
	})
	cli := verStartOpenSSLClient(t, ln.Addr().String(), "-tls1_3", "-servername", verServerName, "-CAfile", caFile)
	cli.waitOutput(t, "hello from tls13")
	select {
	case <-cli.exited:
	case <-time.After(verWait):
		t.Fatalf("s_client kept the connection after an unknown alert:\n%s", cli.out.String())
	}
	if out := cli.out.String(); !strings.Contains(out, "alert number 240") {
		t.Errorf("s_client output does not name alert 240:\n%s", out)
	}
	if err := verWaitErr(t, served, "tls13 server"); err == nil {
		t.Errorf("tls13 server read succeeded after s_client gave up")
	}
}
