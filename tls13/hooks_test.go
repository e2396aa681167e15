package tls13

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	extMigrationSupport = 0xFE4D
	extMigrationToken   = 0xFE4F
	alertMigrateNotify  = 240
	typeMigrateRequest  = 0xFD
)

func TestResumptionWithHooks(t *testing.T) {
	scfg := testServerConfig(t)
	var mu sync.Mutex
	var seen []*ClientHelloInfo
	scfg.OnClientHello = func(info *ClientHelloInfo) error {
		mu.Lock()
		seen = append(seen, info)
		mu.Unlock()
		return nil
	}
	scfg.TicketExtensions = func(c *Conn, tk *ServerTicket) []Extension {
		tk.AppData = []byte("sealed-session-id")
		return []Extension{{Type: extMigrationToken, Data: append([]byte("token:"), tk.PSK[:4]...)}}
	}
	var tickets []*ClientSession
	ccfg := testClientConfig(t)
	ccfg.AllowedTicketExtensions = []uint16{extMigrationToken}
	ccfg.OnNewSessionTicket = func(c *Conn, s *ClientSession) { tickets = append(tickets, s) }
	ccfg.ClientHelloExtensions = func(c *Conn, s *ClientSession) []Extension {
		exts := []Extension{{Type: extMigrationSupport}}
		if s != nil {
			exts = append(exts, Extension{Type: extMigrationToken, Data: s.Extensions[0].Data})
		}
		return exts
	}
	s := runSession(t, ccfg, scfg)
	if s.cerr != nil || s.serr != nil {
		t.Fatalf("full handshake: client %v server %v", s.cerr, s.serr)
	}
	if len(tickets) != 1 {
		t.Fatalf("got %d tickets, want 1", len(tickets))
	}
	tk := tickets[0]
	if len(tk.Extensions) != 1 || tk.Extensions[0].Type != extMigrationToken ||
		!bytes.Equal(tk.Extensions[0].Data[6:], tk.PSK()[:4]) {
		t.Fatalf("ticket extensions %+v do not carry the PSK-bound token", tk.Extensions)
	}
	if s.client.ConnectionState().DidResume {
		t.Fatal("first connection claims resumption")
	}

	ccfg2 := *ccfg
	ccfg2.Session = tk
	s = runSession(t, &ccfg2, scfg)
	if s.cerr != nil || s.serr != nil {
		t.Fatalf("resumption: client %v server %v", s.cerr, s.serr)
	}
	cst, sst := s.client.ConnectionState(), s.server.ConnectionState()
	if !cst.DidResume || !sst.DidResume {
		t.Fatalf("DidResume client %v server %v", cst.DidResume, sst.DidResume)
	}
	if pe := sst.PeerExtensions; len(pe) < 3 || pe[len(pe)-3].Type != extMigrationSupport {
		t.Fatalf("server PeerExtensions lack migration_support: %+v", pe)
	}
	if string(sst.SessionAppData) != "sealed-session-id" {
		t.Fatalf("SessionAppData %q", sst.SessionAppData)
	}
	if len(cst.PeerCertificates) == 0 {
		t.Fatal("resumed client lost the peer certificates")
	}
	mu.Lock()
	info := seen[len(seen)-1]
	mu.Unlock()
	if info.Resumption == nil || !bytes.Equal(info.Resumption.PSK, tk.PSK()) {
		t.Fatal("OnClientHello did not see the resumed ticket's PSK")
	}
	if age := info.Resumption.ClientAge; age < 0 || age > time.Minute {
		t.Fatalf("de-obfuscated client ticket age %v", age)
	}
	var types []uint16
	for _, e := range info.Extensions {
		types = append(types, e.Type)
	}
	n := len(types)
	if n < 3 || types[n-1] != extPreSharedKey || types[n-2] != extMigrationToken || types[n-3] != extMigrationSupport {
		t.Fatalf("extension order seen by the server: %#04x", types)
	}
}

func TestServerRejectsResumption(t *testing.T) {
	scfg := testServerConfig(t)
	var tickets []*ClientSession
	ccfg := testClientConfig(t)
	ccfg.OnNewSessionTicket = func(c *Conn, s *ClientSession) { tickets = append(tickets, s) }
	if s := runSession(t, ccfg, scfg); s.cerr != nil || s.serr != nil {
		t.Fatalf("client %v server %v", s.cerr, s.serr)
	}
	scfg.OnClientHello = func(info *ClientHelloInfo) error {
		if info.Resumption == nil {
			t.Error("no resumption offered")
		}
		info.RejectResumption = true
		return nil
	}
	ccfg.Session = tickets[0]
	s := runSession(t, ccfg, scfg)
	if s.cerr != nil || s.serr != nil {
		t.Fatalf("client %v server %v", s.cerr, s.serr)
	}
	if s.client.ConnectionState().DidResume {
		t.Fatal("resumed although the hook refused")
	}
}

func TestTicketKeyRotationAndSiblings(t *testing.T) {
	secretA, secretB, secretC := [32]byte{1}, [32]byte{2}, [32]byte{3}
	scfg := testServerConfig(t)
	scfg.TicketKeys = NewTicketKeys(secretA)
	var tickets []*ClientSession
	ccfg := testClientConfig(t)
	ccfg.OnNewSessionTicket = func(c *Conn, s *ClientSession) { tickets = append(tickets, s) }
	if s := runSession(t, ccfg, scfg); s.cerr != nil || s.serr != nil {
		t.Fatalf("client %v server %v", s.cerr, s.serr)
	}
	ticketA := tickets[0]
	resumes := func(keys *TicketKeys) bool {
		t.Helper()
		sc := *scfg
		sc.TicketKeys = keys
		cc := *ccfg
		cc.Session = ticketA
		s := runSession(t, &cc, &sc)
		if s.cerr != nil || s.serr != nil {
			t.Fatalf("client %v server %v", s.cerr, s.serr)
		}
		return s.client.ConnectionState().DidResume
	}
	if !resumes(NewTicketKeys(secretA)) {
		t.Error("a sibling with the same secret did not resume")
	}
	rotated := NewTicketKeys(secretA)
	rotated.Rotate(secretB)
	if !resumes(rotated) {
		t.Error("the previous key did not open the ticket after one rotation")
	}
	old := rotated.keys[1]
	rotated.Rotate(secretC)
	if old.aesKey != [32]byte{} || old.name != [16]byte{} {
		t.Error("rotated-out key was not zeroed")
	}
	if resumes(rotated) {
		t.Error("a ticket under a rotated-out key resumed")
	}
	if resumes(NewTicketKeys(secretC)) {
		t.Error("a foreign key set resumed")
	}
}

func TestExpiredTicketFallsBack(t *testing.T) {
	now := time.Now()
	scfg := testServerConfig(t)
	scfg.TicketLifetime = time.Hour
	scfg.Time = func() time.Time { return now }
	var tickets []*ClientSession
	ccfg := testClientConfig(t)
	ccfg.OnNewSessionTicket = func(c *Conn, s *ClientSession) { tickets = append(tickets, s) }
	if s := runSession(t, ccfg, scfg); s.cerr != nil || s.serr != nil {
		t.Fatalf("client %v server %v", s.cerr, s.serr)
	}
	if tickets[0].Lifetime != time.Hour {
		t.Fatalf("lifetime %v", tickets[0].Lifetime)
	}
	// The client still thinks the ticket is fresh; the server's clock moved.
	later := now.Add(2 * time.Hour)
	scfg.Time = func() time.Time { return later }
	ccfg.Session = tickets[0]
	s := runSession(t, ccfg, scfg)
	if s.cerr != nil || s.serr != nil {
		t.Fatalf("client %v server %v", s.cerr, s.serr)
	}
	if s.client.ConnectionState().DidResume {
		t.Fatal("expired ticket resumed")
	}
}

func TestHelloRetryRequestOwnPair(t *testing.T) {
	scfg := testServerConfig(t)
	scfg.CurvePreferences = []tls.CurveID{CurveP256}
	var tickets []*ClientSession
	ccfg := testClientConfig(t)
	ccfg.CurvePreferences = []tls.CurveID{X25519, CurveP256}
	ccfg.OnNewSessionTicket = func(c *Conn, s *ClientSession) { tickets = append(tickets, s) }
	ccfg.ClientHelloExtensions = func(c *Conn, s *ClientSession) []Extension {
		return []Extension{{Type: extMigrationSupport}}
	}
	s := runSession(t, ccfg, scfg)
	if s.cerr != nil || s.serr != nil {
		t.Fatalf("client %v server %v", s.cerr, s.serr)
	}
	if g := s.client.ConnectionState().Group; g != CurveP256 {
		t.Fatalf("group %v", g)
	}
	// Resumption through a HelloRetryRequest: the binder covers the
	// message_hash transcript.
	ccfg.Session = tickets[0]
	s = runSession(t, ccfg, scfg)
	if s.cerr != nil || s.serr != nil {
		t.Fatalf("client %v server %v", s.cerr, s.serr)
	}
	if !s.client.ConnectionState().DidResume {
		t.Fatal("no resumption after HRR")
	}
}

func TestNotificationsAndCustomMessages(t *testing.T) {
	scfg := testServerConfig(t)
	scfg.NotificationAlerts = []uint8{alertMigrateNotify}
	scfg.HandshakeMessageTypes = []uint8{typeMigrateRequest}
	ccfg := testClientConfig(t)
	ccfg.NotificationAlerts = []uint8{alertMigrateNotify}
	ccfg.HandshakeMessageTypes = []uint8{typeMigrateRequest}
	ccfg.AllowedTicketExtensions = []uint16{extMigrationToken}
	got := make(chan string, 10)
	ccfg.OnNotification = func(c *Conn, desc uint8) { got <- "alert" }
	ccfg.OnHandshakeMessage = func(c *Conn, typ uint8, body []byte) error {
		got <- "msg:" + string(body)
		return nil
	}
	var tickets int
	ccfg.OnNewSessionTicket = func(c *Conn, s *ClientSession) {
		tickets++
		if len(s.Extensions) > 0 {
			got <- "ticket:" + string(s.Extensions[0].Data)
		}
	}
	s := runSession(t, ccfg, scfg)
	if s.cerr != nil || s.serr != nil {
		t.Fatalf("client %v server %v", s.cerr, s.serr)
	}
	if err := s.server.SendNotification(alertMigrateNotify + 1); !errors.Is(err, ErrNotNotification) {
		t.Fatalf("unregistered notification: %v", err)
	}
	if err := s.server.SendHandshakeMessage(0xFC, nil); !errors.Is(err, ErrNotRegistered) {
		t.Fatalf("unregistered message type: %v", err)
	}
	scfg.TicketExtensions = func(c *Conn, tk *ServerTicket) []Extension {
		return []Extension{{Type: extMigrationToken, Data: []byte("late")}}
	}
	go func() {
		s.server.SendNotification(alertMigrateNotify)
		s.server.SendHandshakeMessage(typeMigrateRequest, []byte("10.0.0.2:443"))
		s.server.SendSessionTicket()
		s.server.Write([]byte("data"))
	}()
	buf := make([]byte, 4)
	if _, err := io.ReadFull(s.client, buf); err != nil || string(buf) != "data" {
		t.Fatalf("read %q %v", buf, err)
	}
	want := []string{"alert", "msg:10.0.0.2:443", "ticket:late"}
	for _, w := range want {
		if g := <-got; g != w {
			t.Fatalf("got %q, want %q", g, w)
		}
	}
	if tickets != 2 {
		t.Fatalf("%d tickets, want 2", tickets)
	}
}

func TestUnregisteredAlertIsFatal(t *testing.T) {
	scfg := testServerConfig(t)
	scfg.NotificationAlerts = []uint8{alertMigrateNotify}
	ccfg := testClientConfig(t) // the client did not register it
	s := runSession(t, ccfg, scfg)
	if s.cerr != nil || s.serr != nil {
		t.Fatalf("client %v server %v", s.cerr, s.serr)
	}
	go s.server.SendNotification(alertMigrateNotify)
	_, err := s.client.Read(make([]byte, 1))
	var ae *AlertError
	if !errors.As(err, &ae) || !ae.Received || ae.Alert != alertMigrateNotify {
		t.Fatalf("read error %v, want the received alert 240 as fatal", err)
	}
	if _, err := s.client.Write([]byte("x")); err == nil {
		t.Fatal("write succeeded after a fatal alert")
	}
}

func TestUnsolicitedTicketExtensionRejected(t *testing.T) {
	scfg := testServerConfig(t)
	scfg.TicketExtensions = func(c *Conn, tk *ServerTicket) []Extension {
		return []Extension{{Type: extMigrationToken, Data: []byte("x")}}
	}
	ccfg := testClientConfig(t) // AllowedTicketExtensions empty
	c1, c2 := net.Pipe()
	t.Cleanup(func() { c1.Close(); c2.Close() })
	client, server := Client(c1, ccfg), Server(c2, scfg)
	serverErr := make(chan error, 1)
	go func() {
		_, err := server.Read(make([]byte, 1)) // handshake, then wait for the alert
		serverErr <- err
	}()
	_, err := client.Read(make([]byte, 1)) // the ticket arrives here
	if !errors.Is(err, AlertUnsupportedExtension) {
		t.Fatalf("client error %v, want unsupported_extension", err)
	}
	var ae *AlertError
	if err := <-serverErr; !errors.As(err, &ae) || !ae.Received || ae.Alert != AlertUnsupportedExtension {
		t.Fatalf("server error %v, want a received unsupported_extension", err)
	}
}

func TestKeyUpdateOwnPair(t *testing.T) {
	s := runSession(t, testClientConfig(t), testServerConfig(t))
	if s.cerr != nil || s.serr != nil {
		t.Fatalf("client %v server %v", s.cerr, s.serr)
	}
	// Server echoes everything it reads.
	go io.Copy(s.server, s.server)
	for i, req := range []bool{true, false, true} {
		if err := s.client.SendKeyUpdate(req); err != nil {
			t.Fatal(err)
		}
		msg := []byte(strings.Repeat("k", 20000+i))
		go s.client.Write(msg)
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(s.client, buf); err != nil || !bytes.Equal(buf, msg) {
			t.Fatalf("round %d: %v", i, err)
		}
	}
	if s.server.out.seq == 0 && s.server.in.seq == 0 {
		t.Fatal("no traffic seen")
	}
}

func TestClientNeedsServerName(t *testing.T) {
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	err := Client(c1, &Config{RootCAs: getPKI(t).pool}).Handshake()
	if err == nil || !strings.Contains(err.Error(), "ServerName") {
		t.Fatalf("handshake without ServerName: %v", err)
	}
}

// TestReadTimeoutIsRetryable: net/http aborts background reads with a past
// deadline and reads on; the Conn must survive that.
func TestReadTimeoutIsRetryable(t *testing.T) {
	s := runSessionPlain(t)
	s.client.SetReadDeadline(time.Unix(1, 0))
	_, err := s.client.Read(make([]byte, 1))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read with a past deadline: %v", err)
	}
	s.client.SetReadDeadline(time.Time{})
	go s.server.Write([]byte("after"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(s.client, buf); err != nil || string(buf) != "after" {
		t.Fatalf("read after the timeout: %q %v", buf, err)
	}
}

// TestCloseWriteHalfClose: CloseWrite sends close_notify; the peer reads
// EOF and answers with its own close_notify (checklist §6.1), so the
// first side then reads EOF too.
func TestCloseWriteHalfClose(t *testing.T) {
	s := runSessionPlain(t)
	errc := make(chan error, 1)
	go func() {
		_, err := s.server.Read(make([]byte, 1))
		errc <- err
	}()
	if err := s.client.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.Write([]byte("x")); err == nil {
		t.Fatal("write after CloseWrite succeeded")
	}
	if _, err := s.client.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("client read after the peer's reply: %v, want EOF", err)
	}
	if err := <-errc; err != io.EOF {
		t.Fatalf("server read: %v, want EOF", err)
	}
}

func TestConfigWithoutUsableSuitesOrGroups(t *testing.T) {
	for _, tc := range []struct {
		cfg   *Config
		field string
	}{
		{&Config{ServerName: "x", CipherSuites: []uint16{0xc02f}}, "CipherSuites"},
		{&Config{ServerName: "x", CurvePreferences: []tls.CurveID{0x0104}}, "CurvePreferences"}, // ffdhe8192: not implemented
	} {
		c1, c2 := net.Pipe()
		err := Client(c1, tc.cfg).Handshake()
		c1.Close()
		c2.Close()
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("error %v does not name %s", err, tc.field)
		}
	}
}

func TestCertificateChosenBySNI(t *testing.T) {
	p := getPKI(t)
	other := p.leafFor(t, "other.test")
	scfg := testServerConfig(t)
	scfg.Certificates = []tls.Certificate{other, p.ecdsa}
	s := runSession(t, testClientConfig(t), scfg) // SNI example.test
	if s.cerr != nil || s.serr != nil {
		t.Fatalf("client %v server %v", s.cerr, s.serr)
	}
	if got := s.client.ConnectionState().PeerCertificates[0].Raw; !bytes.Equal(got, p.ecdsa.Certificate[0]) {
		t.Fatal("the certificate matching the SNI was not chosen")
	}
	ccfg := testClientConfig(t)
	ccfg.ServerName = "other.test"
	s = runSession(t, ccfg, scfg)
	if s.cerr != nil || s.serr != nil {
		t.Fatalf("client %v server %v", s.cerr, s.serr)
	}
	if got := s.client.ConnectionState().PeerCertificates[0].Raw; !bytes.Equal(got, other.Certificate[0]) {
		t.Fatal("the certificate for other.test was not chosen")
	}
}

// failingSigner has a valid public key but cannot sign.
type failingSigner struct{ crypto.Signer }

func (f failingSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("HSM unavailable")
}

// TestAlertAfterPartialFlight: a failure after ServerHello was buffered
// still reaches the client as a readable alert (the flight goes first).
func TestAlertAfterPartialFlight(t *testing.T) {
	p := getPKI(t)
	cert := p.ecdsa
	cert.PrivateKey = failingSigner{p.ecdsa.PrivateKey.(crypto.Signer)}
	scfg := testServerConfig(t)
	scfg.Certificates = []tls.Certificate{cert}
	s := runSession(t, testClientConfig(t), scfg)
	var ae *AlertError
	if !errors.As(s.cerr, &ae) || !ae.Received || ae.Alert != AlertInternalError {
		t.Fatalf("client error %v, want a received internal_error", s.cerr)
	}
	if !errors.Is(s.serr, AlertInternalError) {
		t.Fatalf("server error %v", s.serr)
	}
}

// TestHandshakeReturnsReadBuffer: a server whose handshake left nothing
// buffered gives its read buffer back to the pool, and reads on later.
func TestHandshakeReturnsReadBuffer(t *testing.T) {
	s := runSessionPlain(t) // the server's handshake ended on the client Finished
	s.server.inMu.Lock()
	held := s.server.raw != nil
	s.server.inMu.Unlock()
	if held {
		t.Fatal("server still holds its read buffer after the handshake")
	}
	go s.client.Write([]byte("more"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(s.server, buf); err != nil || string(buf) != "more" {
		t.Fatalf("read after release: %q %v", buf, err)
	}
}
