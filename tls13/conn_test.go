package tls13

// Negative tests on established or resuming connections: tampered and
// truncated records, wrong binders, expired and foreign tickets,
// notification alerts (registered and not), KeyUpdate abuse, limits on
// post-handshake messages, close_notify. Peers are tls13 and crypto/tls
// over real loopback sockets; a verWireConn between a peer and its socket
// rewrites or records records.

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anysched/anysched/tls13/internal/oracle"
)

// verFlipFrom returns a mutate hook that flips one bit in the last byte of
// the first record with index >= from whose type is typ.
func verFlipFrom(from int, typ uint8) func(int, []byte) []byte {
	done := false
	return func(i int, rec []byte) []byte {
		if !done && i >= from && rec[0] == typ {
			rec[len(rec)-1] ^= 0x01
			done = true
		}
		return rec
	}
}

// verSetMutate installs a mutate hook, counting from the next record.
func (w *verWireConn) setMutate(m func(int, []byte) []byte) {
	w.mu.Lock()
	w.written = 0
	w.mutate = m
	w.mu.Unlock()
}

// verWantAlert asserts that err carries alert want, sent or received.
func verWantAlert(t *testing.T, what string, err error, want Alert, received bool) {
	t.Helper()
	a, rcv, ok := verAlertOf(err)
	if !ok || a != want || rcv != received {
		dir := "sent"
		if received {
			dir = "received"
		}
		t.Errorf("%s: error %v, want %s alert %q", what, err, dir, want)
	}
}

func TestNegativeTamperedRecords(t *testing.T) {
	p := verGetPKI(t, verECDSA)
	t.Run("tls13-to-tls13/application-data", func(t *testing.T) {
		pr := verTLS13Pair(t, verTLS13ClientConfig(p), verTLS13ServerConfig(t, p))
		pr.cw.setMutate(verFlipFrom(0, verRecordAppData))
		go pr.client.Write([]byte("tampered\n"))
		_, err := pr.server.Read(make([]byte, 64))
		verWantAlert(t, "server read", err, AlertBadRecordMAC, false)
		_, err = pr.client.Read(make([]byte, 64))
		verWantAlert(t, "client read", err, AlertBadRecordMAC, true)
		if _, err := pr.server.Write([]byte("x")); err == nil {
			t.Errorf("server still writes after a fatal alert")
		}
	})
	t.Run("crypto-tls-client-to-tls13-server/application-data", func(t *testing.T) {
		ln := verListen(t)
		scfg := verTLS13ServerConfig(t, p)
		done := verAcceptOne(ln, func(c net.Conn) error {
			s := Server(c, scfg)
			_, err := s.Read(make([]byte, 64))
			return err
		})
		w := &verWireConn{Conn: verDial(t, ln.Addr().String())}
		c := tls.Client(w, verStdlibClientConfig(p))
		if err := c.Handshake(); err != nil {
			t.Fatal(err)
		}
		w.setMutate(verFlipFrom(0, verRecordAppData))
		c.Write([]byte("tampered\n"))
		verWantAlert(t, "tls13 server read", verWaitErr(t, done, "server"), AlertBadRecordMAC, false)
		if _, err := c.Read(make([]byte, 1)); err == nil || !strings.Contains(err.Error(), "bad record MAC") {
			t.Errorf("crypto/tls client read: %v, want remote bad record MAC", err)
		}
	})
	t.Run("tls13-client-to-crypto-tls-server/application-data", func(t *testing.T) {
		ln := verListen(t)
		done := verAcceptOne(ln, func(c net.Conn) error {
			s := tls.Server(c, verStdlibServerConfig(p))
			_, err := s.Read(make([]byte, 64))
			return err
		})
		w := &verWireConn{Conn: verDial(t, ln.Addr().String())}
		c := Client(w, verTLS13ClientConfig(p))
		if err := c.Handshake(); err != nil {
			t.Fatal(err)
		}
		w.setMutate(verFlipFrom(0, verRecordAppData))
		c.Write([]byte("tampered\n"))
		if err := verWaitErr(t, done, "server"); err == nil || !strings.Contains(err.Error(), "bad record MAC") {
			t.Errorf("crypto/tls server read: %v, want local bad record MAC", err)
		}
		_, err := c.Read(make([]byte, 1))
		verWantAlert(t, "tls13 client read", err, AlertBadRecordMAC, true)
	})
	// The server's encrypted flight (record 0 is the ServerHello, then
	// ChangeCipherSpec, then protected records) tampered on the way.
	for _, peer := range []string{"tls13-server", "crypto-tls-server"} {
		t.Run(peer+"/encrypted-handshake-flight", func(t *testing.T) {
			ln := verListen(t)
			var scfg13 *Config
			if peer == "tls13-server" {
				scfg13 = verTLS13ServerConfig(t, p)
			}
			done := verAcceptOne(ln, func(c net.Conn) error {
				w := &verWireConn{Conn: c, mutate: verFlipFrom(1, verRecordAppData)}
				if scfg13 != nil {
					return Server(w, scfg13).Handshake()
				}
				return tls.Server(w, verStdlibServerConfig(p)).Handshake()
			})
			c := Client(verDial(t, ln.Addr().String()), verTLS13ClientConfig(p))
			verWantAlert(t, "tls13 client handshake", c.Handshake(), AlertBadRecordMAC, false)
			if err := verWaitErr(t, done, "server"); err == nil {
				t.Errorf("server handshake succeeded over a tampered flight")
			}
		})
	}
	t.Run("tls13-server/tampered-ClientHello-random", func(t *testing.T) {
		// The server sees another transcript, so the keys differ: the client
		// cannot open the server's flight.
		ln := verListen(t)
		scfg := verTLS13ServerConfig(t, p)
		done := verAcceptOne(ln, func(c net.Conn) error { return Server(c, scfg).Handshake() })
		w := &verWireConn{Conn: verDial(t, ln.Addr().String())}
		w.setMutate(func(i int, rec []byte) []byte {
			if i == 0 {
				rec[5+4+2+5] ^= 0xff // a byte of ClientHello.random
			}
			return rec
		})
		err := Client(w, verTLS13ClientConfig(p)).Handshake()
		if a, _, ok := verAlertOf(err); !ok || (a != AlertBadRecordMAC && a != AlertDecryptError) {
			t.Errorf("client handshake: %v, want bad_record_mac or decrypt_error", err)
		}
		if verWaitErr(t, done, "server") == nil {
			t.Errorf("server accepted a handshake whose ClientHello was changed in flight")
		}
	})
}

func TestNegativeTruncated(t *testing.T) {
	p := verGetPKI(t, verECDSA)
	t.Run("record cut mid-way then EOF", func(t *testing.T) {
		pr := verTLS13Pair(t, verTLS13ClientConfig(p), verTLS13ServerConfig(t, p))
		pr.sw.setMutate(func(i int, rec []byte) []byte { return rec[:len(rec)/2] })
		pr.server.Write([]byte("this record will be cut"))
		pr.sw.Conn.Close()
		_, err := pr.client.Read(make([]byte, 64))
		if err == nil || err == io.EOF {
			t.Fatalf("client read of a cut record: %v, want an error that is not a clean EOF", err)
		}
	})
	t.Run("EOF without close_notify", func(t *testing.T) {
		pr := verTLS13Pair(t, verTLS13ClientConfig(p), verTLS13ServerConfig(t, p))
		pr.sw.Conn.Close()
		if _, err := pr.client.Read(make([]byte, 64)); err == nil {
			t.Fatalf("client read returned no error after the peer vanished")
		}
	})
	for _, cut := range []int{1, 3, 5, 40} {
		t.Run("server flight cut after "+strconv.Itoa(cut)+" bytes", func(t *testing.T) {
			ln := verListen(t)
			scfg := verTLS13ServerConfig(t, p)
			go func() {
				raw, err := ln.Accept()
				if err != nil {
					return
				}
				w := &verCutConn{Conn: raw, left: cut}
				Server(w, scfg).Handshake()
				raw.Close()
			}()
			c := Client(verDial(t, ln.Addr().String()), verTLS13ClientConfig(p))
			if err := c.Handshake(); err == nil {
				t.Fatalf("client handshake succeeded on a flight cut after %d bytes", cut)
			}
		})
	}
	t.Run("ClientHello shorter than its length field, then EOF", func(t *testing.T) {
		c, done := verRawServer(t, verTLS13ServerConfig(t, p))
		ch := verDefaultHello(t).marshal()
		c.Write(verRecord(verRecordHandshake, ch[:len(ch)-10]))
		c.(*net.TCPConn).CloseWrite()
		if err := verWaitErr(t, done, "server"); err == nil {
			t.Fatalf("server handshake succeeded on a truncated ClientHello")
		}
	})
	t.Run("record header only, then EOF", func(t *testing.T) {
		c, done := verRawServer(t, verTLS13ServerConfig(t, p))
		c.Write([]byte{verRecordHandshake, 3, 3, 0, 100})
		c.(*net.TCPConn).CloseWrite()
		if err := verWaitErr(t, done, "server"); err == nil {
			t.Fatalf("server handshake succeeded on a bare record header")
		}
	})
}

// verCutConn passes the first left bytes written and then closes the
// connection: a peer whose flight is cut by the network.
type verCutConn struct {
	net.Conn
	left int
}

func (c *verCutConn) Write(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, net.ErrClosed
	}
	n := min(len(p), c.left)
	c.left -= n
	if _, err := c.Conn.Write(p[:n]); err != nil {
		return 0, err
	}
	if c.left == 0 {
		c.Conn.Close()
		return n, net.ErrClosed
	}
	return len(p), nil
}

// verResumeCatch runs one full tls13 handshake against scfg and returns a
// ticket for it.
func verResumeCatch(t *testing.T, ccfg, scfg *Config) *ClientSession {
	t.Helper()
	sessions := &verSessionCatcher{}
	c := *ccfg
	c.OnNewSessionTicket = sessions.hook
	pr := verTLS13Pair(t, &c, scfg)
	go func() {
		pr.server.Write([]byte("x"))
	}()
	if _, err := pr.client.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	s := sessions.last()
	if s == nil {
		t.Fatal("no ticket")
	}
	return s
}

func TestNegativeBinderAndTickets(t *testing.T) {
	p := verGetPKI(t, verECDSA)
	t.Run("wrong binder from tls13 client", func(t *testing.T) {
		scfg := verTLS13ServerConfig(t, p)
		sess := verResumeCatch(t, verTLS13ClientConfig(p), scfg)
		ln := verListen(t)
		done := verAcceptOne(ln, func(c net.Conn) error { return Server(c, scfg).Handshake() })
		w := &verWireConn{Conn: verDial(t, ln.Addr().String())}
		w.setMutate(func(i int, rec []byte) []byte {
			if i == 0 {
				rec[len(rec)-1] ^= 0x80 // the last binder's last byte
			}
			return rec
		})
		ccfg := verTLS13ClientConfig(p)
		ccfg.Session = sess
		verWantAlert(t, "client handshake", Client(w, ccfg).Handshake(), AlertDecryptError, true)
		verWantAlert(t, "server handshake", verWaitErr(t, done, "server"), AlertDecryptError, false)
	})
	t.Run("wrong binder from crypto/tls client", func(t *testing.T) {
		scfg := verTLS13ServerConfig(t, p)
		ccfg := verStdlibClientConfig(p)
		ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(2)
		verStdlibClientToTLS13(t, ccfg, scfg)
		ln := verListen(t)
		done := verAcceptOne(ln, func(c net.Conn) error { return Server(c, scfg).Handshake() })
		w := &verWireConn{Conn: verDial(t, ln.Addr().String())}
		w.setMutate(func(i int, rec []byte) []byte {
			if i == 0 {
				rec[len(rec)-1] ^= 0x80
			}
			return rec
		})
		err := tls.Client(w, ccfg).Handshake()
		if err == nil || !strings.Contains(err.Error(), "error decrypting message") {
			t.Errorf("crypto/tls client: %v, want remote decrypt_error", err)
		}
		verWantAlert(t, "server handshake", verWaitErr(t, done, "server"), AlertDecryptError, false)
	})
	// Each case resumes a ticket issued by `issuer` at a server `resumer`;
	// the result must be a silent full handshake or a resumption.
	type ticketCase struct {
		name       string
		issuer     func(t *testing.T) *Config
		resumer    func(t *testing.T, issuer *Config) *Config
		clientMod  func(c *Config)
		wantResume bool
	}
	var fixedNow = time.Now()
	// issuedUnderKey1 issues tickets under the fixed key {1};
	// rotatedFromKey1(n) resumes at a server that started from that key
	// and rotated n times since ({2}, then {3}).
	issuedUnderKey1 := func(t *testing.T) *Config {
		c := verTLS13ServerConfig(t, p)
		c.TicketKeys = NewTicketKeys([32]byte{1})
		return c
	}
	rotatedFromKey1 := func(n int) func(t *testing.T, is *Config) *Config {
		return func(t *testing.T, is *Config) *Config {
			c := *is
			c.TicketKeys = NewTicketKeys([32]byte{1})
			for i := 0; i < n; i++ {
				c.TicketKeys.Rotate([32]byte{byte(2 + i)})
			}
			return &c
		}
	}
	cases := []ticketCase{
		{"same server resumes", func(t *testing.T) *Config { return verTLS13ServerConfig(t, p) },
			func(t *testing.T, is *Config) *Config { return is }, nil, true},
		{"expired at the server", func(t *testing.T) *Config {
			c := verTLS13ServerConfig(t, p)
			c.TicketLifetime = time.Hour
			return c
		}, func(t *testing.T, is *Config) *Config {
			c := *is
			c.Time = func() time.Time { return fixedNow.Add(2 * time.Hour) }
			return &c
		}, nil, false},
		{"foreign ticket keys", func(t *testing.T) *Config { return verTLS13ServerConfig(t, p) },
			func(t *testing.T, is *Config) *Config { return verTLS13ServerConfig(t, p) }, nil, false},
		{"keys rotated once: previous key still opens", issuedUnderKey1, rotatedFromKey1(1), nil, true},
		{"keys rotated twice: ticket no longer opens", issuedUnderKey1, rotatedFromKey1(2), nil, false},
		{"server refuses resumption in OnClientHello", func(t *testing.T) *Config { return verTLS13ServerConfig(t, p) },
			func(t *testing.T, is *Config) *Config {
				c := *is
				c.OnClientHello = func(info *ClientHelloInfo) error {
					if info.Resumption == nil {
						return errors.New("hook saw no resumption on a resuming ClientHello")
					}
					info.RejectResumption = true
					return nil
				}
				return &c
			}, nil, false},
		{"ticket from an AES-128 session, client offers only AES-256 (other hash)", func(t *testing.T) *Config { return verTLS13ServerConfig(t, p) },
			func(t *testing.T, is *Config) *Config { return is },
			func(c *Config) { c.CipherSuites = []uint16{TLS_AES_256_GCM_SHA384} }, false},
		{"ticket from an AES-128 session, client offers only ChaCha20 (same hash)", func(t *testing.T) *Config { return verTLS13ServerConfig(t, p) },
			func(t *testing.T, is *Config) *Config { return is },
			func(c *Config) { c.CipherSuites = []uint16{TLS_CHACHA20_POLY1305_SHA256} }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			issuer := tc.issuer(t)
			ccfg := verTLS13ClientConfig(p)
			ccfg.CipherSuites = []uint16{TLS_AES_128_GCM_SHA256}
			sess := verResumeCatch(t, ccfg, issuer)
			ccfg2 := verTLS13ClientConfig(p)
			ccfg2.Session = sess
			if tc.clientMod != nil {
				tc.clientMod(ccfg2)
			}
			pr := verTLS13Pair(t, ccfg2, tc.resumer(t, issuer))
			cs, ss := pr.client.ConnectionState(), pr.server.ConnectionState()
			if cs.DidResume != tc.wantResume || ss.DidResume != tc.wantResume {
				t.Fatalf("resumed: client %v server %v, want %v", cs.DidResume, ss.DidResume, tc.wantResume)
			}
			// The connection works either way.
			go func() {
				verEchoLine(pr.server)
			}()
			if err := verPingPong(pr.client, "after ticket"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestNegativeNotifications(t *testing.T) {
	p := verGetPKI(t, verECDSA)
	const migrateNotify = 240
	t.Run("unregistered notification is fatal at a tls13 client", func(t *testing.T) {
		scfg := verTLS13ServerConfig(t, p)
		scfg.NotificationAlerts = []uint8{migrateNotify}
		pr := verTLS13Pair(t, verTLS13ClientConfig(p), scfg)
		if err := pr.server.SendNotification(migrateNotify); err != nil {
			t.Fatal(err)
		}
		pr.server.Write([]byte("after\n"))
		_, err := pr.client.Read(make([]byte, 64))
		verWantAlert(t, "client read", err, Alert(migrateNotify), true)
		if _, err := pr.client.Write([]byte("x")); err == nil {
			t.Errorf("client still writes after a fatal alert")
		}
	})
	t.Run("unregistered notification is fatal at a crypto/tls client", func(t *testing.T) {
		scfg := verTLS13ServerConfig(t, p)
		scfg.NotificationAlerts = []uint8{migrateNotify}
		ln := verListen(t)
		done := verAcceptOne(ln, func(c net.Conn) error {
			s := Server(c, scfg)
			if err := s.Handshake(); err != nil {
				return err
			}
			if err := s.SendNotification(migrateNotify); err != nil {
				return err
			}
			_, err := s.Read(make([]byte, 1))
			return err
		})
		c := tls.Client(verDial(t, ln.Addr().String()), verStdlibClientConfig(p))
		_, err := c.Read(make([]byte, 1))
		if err == nil || !strings.Contains(err.Error(), "alert(240)") {
			t.Errorf("crypto/tls client: %v, want remote alert(240)", err)
		}
		c.Close()
		verWaitErr(t, done, "server")
	})
	t.Run("registered notification is delivered and the connection keeps working", func(t *testing.T) {
		got := make(chan uint8, 4)
		scfg := verTLS13ServerConfig(t, p)
		scfg.NotificationAlerts = []uint8{migrateNotify}
		scfg.OnNotification = func(_ *Conn, d uint8) { got <- d }
		ccfg := verTLS13ClientConfig(p)
		ccfg.NotificationAlerts = []uint8{migrateNotify}
		ccfg.OnNotification = func(_ *Conn, d uint8) { got <- d }
		pr := verTLS13Pair(t, ccfg, scfg)
		for _, dir := range []struct {
			from, to *Conn
			receiver string
		}{{pr.server, pr.client, "client"}, {pr.client, pr.server, "server"}} {
			if err := dir.from.SendNotification(migrateNotify); err != nil {
				t.Fatal(err)
			}
			go verEchoLine(dir.from)
			if err := verPingPong(dir.to, dir.receiver+" still alive"); err != nil {
				t.Fatalf("%s after notification: %v", dir.receiver, err)
			}
			select {
			case d := <-got:
				if d != migrateNotify {
					t.Errorf("%s callback got %d", dir.receiver, d)
				}
			case <-time.After(verWait):
				t.Fatalf("%s OnNotification not called", dir.receiver)
			}
		}
	})
	t.Run("SendNotification refuses an unregistered description", func(t *testing.T) {
		pr := verTLS13Pair(t, verTLS13ClientConfig(p), verTLS13ServerConfig(t, p))
		if err := pr.server.SendNotification(migrateNotify); !errors.Is(err, ErrNotNotification) {
			t.Errorf("SendNotification(240) unregistered: %v, want ErrNotNotification", err)
		}
		if err := pr.server.SendNotification(uint8(AlertBadRecordMAC)); !errors.Is(err, ErrNotNotification) {
			t.Errorf("SendNotification(bad_record_mac): %v, want ErrNotNotification", err)
		}
	})
	t.Run("registered description at fatal level is fatal", func(t *testing.T) {
		ccfg := verTLS13ClientConfig(p)
		ccfg.NotificationAlerts = []uint8{migrateNotify}
		ccfg.OnNotification = func(*Conn, uint8) { t.Error("fatal-level alert reached OnNotification") }
		pr := verTLS13Pair(t, ccfg, verTLS13ServerConfig(t, p))
		pr.server.outMu.Lock()
		pr.server.writeRecordLocked(recordTypeAlert, []byte{2, migrateNotify})
		pr.server.outMu.Unlock()
		_, err := pr.client.Read(make([]byte, 1))
		verWantAlert(t, "client read", err, Alert(migrateNotify), true)
	})
}

func TestNegativePostHandshake(t *testing.T) {
	p := verGetPKI(t, verECDSA)
	const migrateRequest = 0xFD
	// verRawPost writes one protected handshake record from the server.
	rawPost := func(s *Conn, msg []byte) {
		s.outMu.Lock()
		s.writeRecordLocked(recordTypeHandshake, msg)
		s.outMu.Unlock()
	}
	t.Run("KeyUpdate request_update=2 is illegal_parameter", func(t *testing.T) {
		pr := verTLS13Pair(t, verTLS13ClientConfig(p), verTLS13ServerConfig(t, p))
		rawPost(pr.server, []byte{typeKeyUpdate, 0, 0, 1, 2})
		_, err := pr.client.Read(make([]byte, 1))
		verWantAlert(t, "client read", err, AlertIllegalParameter, false)
	})
	t.Run("KeyUpdate with a trailing byte is decode_error", func(t *testing.T) {
		pr := verTLS13Pair(t, verTLS13ClientConfig(p), verTLS13ServerConfig(t, p))
		rawPost(pr.server, []byte{typeKeyUpdate, 0, 0, 2, 0, 0})
		_, err := pr.client.Read(make([]byte, 1))
		verWantAlert(t, "client read", err, AlertDecodeError, false)
	})
	t.Run("update_requested is answered once with update_not_requested", func(t *testing.T) {
		kl := &oracle.KeyLog{}
		ccfg := verTLS13ClientConfig(p)
		ccfg.KeyLogWriter = kl
		pr := verTLS13Pair(t, ccfg, verTLS13ServerConfig(t, p))
		go func() {
			for i := 0; i < 3; i++ {
				if verEchoLine(pr.server) != nil {
					return
				}
			}
		}()
		for i := 0; i < 3; i++ {
			if err := pr.client.SendKeyUpdate(true); err != nil {
				t.Fatal(err)
			}
			if err := verPingPong(pr.client, "rekeyed"); err != nil {
				t.Fatalf("round %d: %v", i, err)
			}
		}
		_, _, c2sMsgs, s2cMsgs, err := verDecryptConn(pr.cw, kl)
		if err != nil {
			t.Fatalf("decrypting the recorded connection: %v", err)
		}
		count := func(msgs [][]byte) (req, notReq int) {
			for _, m := range msgs {
				if m[0] == typeKeyUpdate && len(m) == 5 {
					if m[4] == 1 {
						req++
					} else if m[4] == 0 {
						notReq++
					}
				}
			}
			return
		}
		if r, n := count(c2sMsgs); r != 3 || n != 0 {
			t.Errorf("client sent %d requesting and %d plain KeyUpdates, want 3 and 0", r, n)
		}
		if r, n := count(s2cMsgs); r != 0 || n != 3 {
			t.Errorf("server answered with %d requesting and %d plain KeyUpdates, want 0 and 3", r, n)
		}
	})
	t.Run("registered migrate_request reaches the hook", func(t *testing.T) {
		got := make(chan []byte, 1)
		ccfg := verTLS13ClientConfig(p)
		ccfg.HandshakeMessageTypes = []uint8{migrateRequest}
		ccfg.OnHandshakeMessage = func(_ *Conn, typ uint8, body []byte) error {
			if typ == migrateRequest {
				got <- append([]byte(nil), body...)
			}
			return nil
		}
		scfg := verTLS13ServerConfig(t, p)
		scfg.HandshakeMessageTypes = []uint8{migrateRequest}
		pr := verTLS13Pair(t, ccfg, scfg)
		if err := pr.server.SendHandshakeMessage(migrateRequest, []byte{0, 4, 10, 0, 0, 1}); err != nil {
			t.Fatal(err)
		}
		go verEchoLine(pr.server)
		if err := verPingPong(pr.client, "after migrate_request"); err != nil {
			t.Fatal(err)
		}
		select {
		case b := <-got:
			if string(b) != string([]byte{0, 4, 10, 0, 0, 1}) {
				t.Errorf("body %x", b)
			}
		default:
			t.Fatal("OnHandshakeMessage not called before the echo arrived")
		}
	})
	t.Run("unregistered post-handshake type is unexpected_message", func(t *testing.T) {
		scfg := verTLS13ServerConfig(t, p)
		scfg.HandshakeMessageTypes = []uint8{migrateRequest}
		pr := verTLS13Pair(t, verTLS13ClientConfig(p), scfg)
		pr.server.SendHandshakeMessage(migrateRequest, []byte{1})
		_, err := pr.client.Read(make([]byte, 1))
		verWantAlert(t, "client read", err, AlertUnexpectedMessage, false)
	})
	t.Run("SendHandshakeMessage refuses an unregistered type", func(t *testing.T) {
		pr := verTLS13Pair(t, verTLS13ClientConfig(p), verTLS13ServerConfig(t, p))
		if err := pr.server.SendHandshakeMessage(migrateRequest, nil); !errors.Is(err, ErrNotRegistered) {
			t.Errorf("got %v, want ErrNotRegistered", err)
		}
	})
	t.Run("post-handshake message count limit", func(t *testing.T) {
		ccfg := verTLS13ClientConfig(p)
		ccfg.HandshakeMessageTypes = []uint8{migrateRequest}
		ccfg.MaxPostHandshakeMessages = 5
		scfg := verTLS13ServerConfig(t, p)
		scfg.HandshakeMessageTypes = []uint8{migrateRequest}
		scfg.TicketsPerHandshake = -1
		pr := verTLS13Pair(t, ccfg, scfg)
		for i := 0; i < 6; i++ {
			pr.server.SendHandshakeMessage(migrateRequest, []byte{byte(i)})
		}
		_, err := pr.client.Read(make([]byte, 1))
		verWantAlert(t, "client read", err, AlertUnexpectedMessage, false)
	})
	t.Run("oversized post-handshake message", func(t *testing.T) {
		ccfg := verTLS13ClientConfig(p)
		ccfg.HandshakeMessageTypes = []uint8{migrateRequest}
		pr := verTLS13Pair(t, ccfg, verTLS13ServerConfig(t, p))
		// The header announces 2^20 bytes; the receiver must refuse at the
		// header instead of buffering.
		rawPost(pr.server, []byte{migrateRequest, 0x10, 0, 0, 1, 2, 3})
		_, err := pr.client.Read(make([]byte, 1))
		verWantAlert(t, "client read", err, AlertUnexpectedMessage, false)
	})
	t.Run("NewSessionTicket with an extension the client did not allow", func(t *testing.T) {
		scfg := verTLS13ServerConfig(t, p)
		scfg.TicketExtensions = func(*Conn, *ServerTicket) []Extension {
			return []Extension{{Type: 0xFE4F, Data: []byte("token")}}
		}
		ccfg := verTLS13ClientConfig(p)
		ccfg.OnNewSessionTicket = func(*Conn, *ClientSession) {}
		pr := verTLS13Pair(t, ccfg, scfg)
		go pr.server.Write([]byte("x"))
		_, err := pr.client.Read(make([]byte, 1))
		verWantAlert(t, "client read", err, AlertUnsupportedExtension, false)
	})
	t.Run("NewSessionTicket extension allowed by the client arrives", func(t *testing.T) {
		scfg := verTLS13ServerConfig(t, p)
		scfg.TicketExtensions = func(_ *Conn, tk *ServerTicket) []Extension {
			if len(tk.PSK) == 0 {
				t.Error("TicketExtensions got no PSK")
			}
			return []Extension{{Type: 0xFE4F, Data: []byte("token")}}
		}
		sessions := &verSessionCatcher{}
		ccfg := verTLS13ClientConfig(p)
		ccfg.AllowedTicketExtensions = []uint16{0xFE4F}
		ccfg.OnNewSessionTicket = sessions.hook
		pr := verTLS13Pair(t, ccfg, scfg)
		go pr.server.Write([]byte("x"))
		if _, err := pr.client.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		s := sessions.last()
		if s == nil || len(s.Extensions) != 1 || s.Extensions[0].Type != 0xFE4F || string(s.Extensions[0].Data) != "token" {
			t.Fatalf("ticket extensions: %+v", s)
		}
	})
}

func TestNegativeCloseNotify(t *testing.T) {
	p := verGetPKI(t, verECDSA)
	t.Run("crypto/tls CloseWrite → tls13 EOF and close_notify back", func(t *testing.T) {
		ln := verListen(t)
		scfg := verTLS13ServerConfig(t, p)
		done := verAcceptOne(ln, func(c net.Conn) error {
			s := Server(c, scfg)
			b, err := io.ReadAll(s)
			if err != nil {
				return err
			}
			if string(b) != "bye" {
				return errors.New("server read " + string(b))
			}
			if _, err := s.Write([]byte("late")); err == nil {
				return errors.New("server could write after answering close_notify")
			}
			return nil
		})
		c := tls.Client(verDial(t, ln.Addr().String()), verStdlibClientConfig(p))
		c.Write([]byte("bye"))
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(c)
		if err != nil || len(b) != 0 {
			t.Errorf("crypto/tls client after close_notify: %q, %v; want a clean EOF", b, err)
		}
		if err := verWaitErr(t, done, "server"); err != nil {
			t.Error(err)
		}
	})
	t.Run("tls13 CloseWrite → crypto/tls EOF, reply still readable", func(t *testing.T) {
		ln := verListen(t)
		done := verAcceptOne(ln, func(c net.Conn) error {
			s := tls.Server(c, verStdlibServerConfig(p))
			b, err := io.ReadAll(s)
			if err != nil {
				return err
			}
			_, err = s.Write(append([]byte("got "), b...))
			s.Close()
			return err
		})
		c := Client(verDial(t, ln.Addr().String()), verTLS13ClientConfig(p))
		c.Write([]byte("half"))
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if line != "got half" || (err != io.EOF && err != nil) {
			t.Errorf("tls13 client read after CloseWrite: %q, %v", line, err)
		}
		if err := verWaitErr(t, done, "server"); err != nil {
			t.Error(err)
		}
	})
}

// verSendInner seals an arbitrary TLSInnerPlaintext with s's write key and
// sends it as one record, bypassing the engine's framing.
func verSendInner(t *testing.T, s *Conn, inner []byte) {
	t.Helper()
	if err := verTrySendInner(s, inner); err != nil {
		t.Fatal(err)
	}
}

// verTrySendInner is verSendInner for goroutines: it reports instead of
// failing the test.
func verTrySendInner(s *Conn, inner []byte) error {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	nonce, err := s.out.nextNonce()
	if err != nil {
		return err
	}
	n := len(inner) + s.out.aead.Overhead()
	hdr := []byte{recordTypeApplicationData, 3, 3, byte(n >> 8), byte(n)}
	_, err = s.conn.Write(s.out.aead.Seal(hdr, nonce, inner, hdr))
	return err
}

// verSendRaw writes bytes to s's socket as they are.
func verSendRaw(t *testing.T, s *Conn, b []byte) {
	t.Helper()
	s.outMu.Lock()
	defer s.outMu.Unlock()
	if _, err := s.conn.Write(b); err != nil {
		t.Fatal(err)
	}
}

// TestNegativeProtectedRecords checks the record rules of §5 on an
// established connection: inner plaintext padding and types, sizes,
// fragmentation and key-change boundaries, unprotected records.
func TestNegativeProtectedRecords(t *testing.T) {
	p := verGetPKI(t, verECDSA)
	pad := func(b []byte, typ uint8, zeros int) []byte {
		return append(append(append([]byte(nil), b...), typ), make([]byte, zeros)...)
	}
	cases := []struct {
		name string
		send func(t *testing.T, s *Conn)
		want Alert
	}{
		{"all-zero inner plaintext", func(t *testing.T, s *Conn) { verSendInner(t, s, make([]byte, 10)) }, AlertUnexpectedMessage},
		{"inner plaintext of 2^14+1 bytes", func(t *testing.T, s *Conn) {
			verSendInner(t, s, pad(make([]byte, 1<<14+1), recordTypeApplicationData, 0))
		}, AlertRecordOverflow},
		{"protected record of 2^14+257 bytes", func(t *testing.T, s *Conn) {
			verSendInner(t, s, pad(make([]byte, 1<<14), recordTypeApplicationData, 256-16))
		}, AlertRecordOverflow},
		{"empty protected handshake record", func(t *testing.T, s *Conn) { verSendInner(t, s, []byte{recordTypeHandshake}) }, AlertUnexpectedMessage},
		{"empty protected alert record", func(t *testing.T, s *Conn) { verSendInner(t, s, []byte{recordTypeAlert}) }, AlertUnexpectedMessage},
		{"protected ChangeCipherSpec", func(t *testing.T, s *Conn) { verSendInner(t, s, []byte{1, recordTypeChangeCipherSpec}) }, AlertUnexpectedMessage},
		{"inner type 99", func(t *testing.T, s *Conn) { verSendInner(t, s, []byte{1, 99}) }, AlertUnexpectedMessage},
		{"alert of three bytes", func(t *testing.T, s *Conn) { verSendInner(t, s, []byte{1, 240, 0, recordTypeAlert}) }, AlertDecodeError},
		{"alert inside a fragmented handshake message", func(t *testing.T, s *Conn) {
			verSendInner(t, s, []byte{typeNewSessionTicket, 0, 0, recordTypeHandshake})
			verSendInner(t, s, []byte{1, 90, recordTypeAlert}) // user_canceled, otherwise harmless
		}, AlertUnexpectedMessage},
		{"application data inside a fragmented handshake message", func(t *testing.T, s *Conn) {
			verSendInner(t, s, []byte{typeNewSessionTicket, 0, 0, 20, 0, recordTypeHandshake})
			verSendInner(t, s, []byte{'x', recordTypeApplicationData})
		}, AlertUnexpectedMessage},
		{"KeyUpdate not at the end of its record", func(t *testing.T, s *Conn) {
			verSendInner(t, s, []byte{typeKeyUpdate, 0, 0, 1, 0, typeNewSessionTicket, 0, recordTypeHandshake})
		}, AlertUnexpectedMessage},
		{"unprotected handshake record after the handshake", func(t *testing.T, s *Conn) {
			verSendRaw(t, s, verRecord(verRecordHandshake, []byte{typeKeyUpdate, 0, 0, 1, 0}))
		}, AlertUnexpectedMessage},
		{"unprotected alert after the handshake", func(t *testing.T, s *Conn) {
			verSendRaw(t, s, verRecord(verRecordAlert, []byte{1, 0}))
		}, AlertUnexpectedMessage},
		{"ChangeCipherSpec after the handshake", func(t *testing.T, s *Conn) {
			verSendRaw(t, s, verRecord(verRecordCCS, []byte{1}))
		}, AlertUnexpectedMessage},
		{"record with a bad tag", func(t *testing.T, s *Conn) {
			verSendRaw(t, s, verRecord(verRecordAppData, make([]byte, 40)))
		}, AlertBadRecordMAC},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			scfg := verTLS13ServerConfig(t, p)
			scfg.TicketsPerHandshake = -1
			pr := verTLS13Pair(t, verTLS13ClientConfig(p), scfg)
			tc.send(t, pr.server)
			_, err := pr.client.Read(make([]byte, 64))
			verWantAlert(t, "client read", err, tc.want, false)
		})
	}
	t.Run("padding and empty application data are accepted", func(t *testing.T) {
		scfg := verTLS13ServerConfig(t, p)
		scfg.TicketsPerHandshake = -1
		pr := verTLS13Pair(t, verTLS13ClientConfig(p), scfg)
		go func() {
			verSendInner(t, pr.server, pad(nil, recordTypeApplicationData, 0))                   // empty
			verSendInner(t, pr.server, pad([]byte("padded "), recordTypeApplicationData, 1000))  // padding
			verSendInner(t, pr.server, pad(make([]byte, 0), recordTypeApplicationData, 1<<14-1)) // padding only, at the limit
			verSendInner(t, pr.server, pad([]byte("max\n"), recordTypeApplicationData, 0))
		}()
		line, err := bufio.NewReader(pr.client).ReadString('\n')
		if err != nil || line != "padded max\n" {
			t.Fatalf("read %q, %v", line, err)
		}
	})
	t.Run("data after close_notify is ignored", func(t *testing.T) {
		scfg := verTLS13ServerConfig(t, p)
		scfg.TicketsPerHandshake = -1
		pr := verTLS13Pair(t, verTLS13ClientConfig(p), scfg)
		// Both records fit the socket buffer: send them before reading.
		verSendInner(t, pr.server, []byte{1, 0, recordTypeAlert})
		verSendInner(t, pr.server, []byte{'l', 'a', 't', 'e', recordTypeApplicationData})
		b, err := io.ReadAll(pr.client)
		if err != nil || len(b) != 0 {
			t.Fatalf("after close_notify: read %q, %v; want nothing and EOF", b, err)
		}
	})
}

func TestNegativeTicketLifetimes(t *testing.T) {
	p := verGetPKI(t, verECDSA)
	t.Run("server caps the lifetime at 7 days", func(t *testing.T) {
		scfg := verTLS13ServerConfig(t, p)
		scfg.TicketLifetime = 30 * 24 * time.Hour
		sess := verResumeCatch(t, verTLS13ClientConfig(p), scfg)
		if sess.Lifetime <= 0 || sess.Lifetime > 7*24*time.Hour {
			t.Fatalf("ticket lifetime %v, want (0, 7 days]", sess.Lifetime)
		}
	})
	t.Run("client does not offer an expired ticket", func(t *testing.T) {
		scfg := verTLS13ServerConfig(t, p)
		scfg.TicketLifetime = time.Hour
		sess := verResumeCatch(t, verTLS13ClientConfig(p), scfg)
		ccfg := verTLS13ClientConfig(p)
		ccfg.Session = sess
		ccfg.Time = func() time.Time { return sess.ReceivedAt.Add(2 * time.Hour) }
		ln := verListen(t)
		done := verAcceptOne(ln, func(c net.Conn) error { return Server(c, scfg).Handshake() })
		w := &verWireConn{Conn: verDial(t, ln.Addr().String())}
		c := Client(w, ccfg)
		if err := c.Handshake(); err != nil {
			t.Fatal(err)
		}
		verWaitErr(t, done, "server")
		if c.ConnectionState().DidResume {
			t.Fatal("resumed with an expired ticket")
		}
		for _, ty := range verHelloExtTypes(t, w.wroteBytes()) {
			if ty == verExtPreSharedKey {
				t.Fatal("expired ticket offered in pre_shared_key")
			}
		}
	})
	t.Run("OnClientHello error is handshake_failure", func(t *testing.T) {
		scfg := verTLS13ServerConfig(t, p)
		var sawVersions bool
		scfg.OnClientHello = func(info *ClientHelloInfo) error {
			for _, e := range info.Extensions {
				sawVersions = sawVersions || e.Type == verExtSupportedVersions
			}
			return errors.New("refused by policy")
		}
		ln := verListen(t)
		done := verAcceptOne(ln, func(c net.Conn) error { return Server(c, scfg).Handshake() })
		err := tls.Client(verDial(t, ln.Addr().String()), verStdlibClientConfig(p)).Handshake()
		if err == nil || !strings.Contains(err.Error(), "handshake failure") {
			t.Errorf("crypto/tls client: %v, want remote handshake_failure", err)
		}
		verWantAlert(t, "tls13 server", verWaitErr(t, done, "server"), AlertHandshakeFailure, false)
		if !sawVersions {
			t.Errorf("OnClientHello did not see the supported_versions extension")
		}
	})
}

// TestCloseDuringHandshake closes a server whose handshake is blocked
// reading a ClientHello that never completes: Close must not give the read
// buffer back under the running handshake (the race detector watches), and
// the handshake must end with an error instead of hanging.
func TestCloseDuringHandshake(t *testing.T) {
	raw, peer := net.Pipe()
	defer peer.Close()
	srv := Server(raw, testServerConfig(t))
	done := make(chan error, 1)
	go func() { done <- srv.Handshake() }()
	// Half a record header and a few body bytes: the server's read is
	// mid-record when Close comes.
	if _, err := peer.Write([]byte{22, 3, 1, 0, 200, 1, 0, 0}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-done; err == nil {
		t.Fatal("handshake succeeded on a closed connection")
	}
}
