package tls13

// The one test harness of the package: the test PKIs, crypto/tls and tls13
// configurations, loopback sockets and readiness waits, engine-to-engine
// sessions, recorded wires, OpenSSL peers and handcrafted ClientHellos.
// The decryption oracle is tls13/internal/oracle. Identifiers start with
// "ver" (or "test" for the unit tests' example.test PKI) so they cannot
// collide with the engine's own names, which live in the same package.

import (
	"bufio"
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anysched/anysched/internal/certtest"
	"github.com/anysched/anysched/tls13/internal/oracle"

	"golang.org/x/crypto/cryptobyte"
)

// verServerName is the name every test certificate is issued for.
const verServerName = "node.test"

// verWait bounds every poll for readiness and every blocking read in these
// tests; it is a failure deadline, never an expected duration.
const verWait = 20 * time.Second

// verCertKind names the key type of a test PKI.
type verCertKind string

const (
	verECDSA   verCertKind = "ecdsa-p256"
	verEd25519 verCertKind = "ed25519"
	verRSAPSS  verCertKind = "rsa-pss"
)

// verCertKinds is the certificate axis of the interop matrix.
var verCertKinds = []verCertKind{verECDSA, verEd25519, verRSAPSS}

// verPKI is an in-memory CA and one leaf for verServerName and 127.0.0.1.
type verPKI struct {
	kind    verCertKind
	caCert  *x509.Certificate
	roots   *x509.CertPool
	leaf    tls.Certificate
	caPEM   []byte
	certPEM []byte // leaf then CA
	keyPEM  []byte // PKCS#8
}

var (
	verPKIMu    sync.Mutex
	verPKICache = map[verCertKind]*verPKI{}
)

// verGetPKI returns the PKI of the given kind, made once per test binary
// (RSA key generation is slow under -race).
func verGetPKI(t testing.TB, kind verCertKind) *verPKI {
	t.Helper()
	verPKIMu.Lock()
	defer verPKIMu.Unlock()
	if p, ok := verPKICache[kind]; ok {
		return p
	}
	p, err := verNewPKI(kind)
	if err != nil {
		t.Fatalf("make %s PKI: %v", kind, err)
	}
	verPKICache[kind] = p
	return p
}

// verKeyType is the certtest key type behind a certificate kind.
func verKeyType(kind verCertKind) certtest.KeyType {
	switch kind {
	case verEd25519:
		return certtest.Ed25519
	case verRSAPSS:
		return certtest.RSA2048
	}
	return certtest.ECDSAP256
}

func verNewPKI(kind verCertKind) (*verPKI, error) {
	// RSA certificates are signed with RSASSA-PSS too, so the chain and the
	// CertificateVerify both exercise PSS.
	var sigAlg x509.SignatureAlgorithm
	if kind == verRSAPSS {
		sigAlg = x509.SHA256WithRSAPSS
	}
	ca, err := certtest.NewCA(certtest.CAOptions{Name: "anysched test CA " + string(kind), Key: verKeyType(kind), SignatureAlgorithm: sigAlg})
	if err != nil {
		return nil, err
	}
	leaf, err := ca.Issue(certtest.LeafOptions{
		Key: verKeyType(kind), DNSNames: []string{verServerName}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, WithCA: true,
	})
	if err != nil {
		return nil, err
	}
	return &verPKI{
		kind:    kind,
		caCert:  ca.Cert,
		roots:   ca.Pool(),
		leaf:    leaf.TLS,
		caPEM:   ca.PEM,
		certPEM: leaf.CertPEM,
		keyPEM:  leaf.KeyPEM,
	}, nil
}

// writePEM writes ca.pem, cert.pem (leaf + CA) and key.pem into a fresh
// temporary directory for OpenSSL.
func (p *verPKI) writePEM(t testing.TB) (caFile, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	caFile = filepath.Join(dir, "ca.pem")
	certFile = filepath.Join(dir, "cert.pem")
	keyFile = filepath.Join(dir, "key.pem")
	for name, data := range map[string][]byte{caFile: p.caPEM, certFile: p.certPEM, keyFile: p.keyPEM} {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return caFile, certFile, keyFile
}

// verStdlibServerConfig is a crypto/tls server that speaks TLS 1.3 only.
func verStdlibServerConfig(p *verPKI) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{p.leaf},
	}
}

// verStdlibClientConfig is a crypto/tls client that speaks TLS 1.3 only and
// trusts p's CA for verServerName.
func verStdlibClientConfig(p *verPKI) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		RootCAs:    p.roots,
		ServerName: verServerName,
	}
}

// verListen listens on an ephemeral loopback port, closed at cleanup.
func verListen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// verAcceptOne accepts one connection on ln in the background and hands it to
// serve; the result of serve arrives on the returned channel.
func verAcceptOne(ln net.Listener, serve func(net.Conn) error) <-chan error {
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(verWait))
		done <- serve(c)
	}()
	return done
}

// verDial connects to addr with a deadline covering the whole test exchange.
func verDial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, verWait)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(verWait))
	t.Cleanup(func() { c.Close() })
	return c
}

// verWaitErr waits for a background result with the failure deadline.
func verWaitErr(t testing.TB, ch <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(verWait):
		t.Fatalf("%s: no result within %v", what, verWait)
		return nil
	}
}

// verEcho copies one line from c back to c, so a client can check that
// application data flows both ways.
func verEchoLine(c io.ReadWriter) error {
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	_, err = io.WriteString(c, line)
	return err
}

// verPingPong writes msg+"\n" to c and expects the same line back.
func verPingPong(c io.ReadWriter, msg string) error {
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		return err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if got != msg+"\n" {
		return errors.New("echo mismatch: got " + got)
	}
	return nil
}

// ---------------------------------------------------------------------------
// Records on the wire.

// Record content types and alert descriptions as RFC 8446 numbers them; kept
// here so the raw-socket tests state the wire values independently of the
// engine's constants.
const (
	verRecordCCS       = 20
	verRecordAlert     = 21
	verRecordHandshake = 22
	verRecordAppData   = 23

	verAlertCloseNotify           = 0
	verAlertUnexpectedMessage     = 10
	verAlertBadRecordMAC          = 20
	verAlertRecordOverflow        = 22
	verAlertHandshakeFailure      = 40
	verAlertBadCertificate        = 42
	verAlertIllegalParameter      = 47
	verAlertUnknownCA             = 48
	verAlertDecodeError           = 50
	verAlertDecryptError          = 51
	verAlertProtocolVersion       = 70
	verAlertMissingExtension      = 109
	verAlertUnsupportedExtension  = 110
	verAlertUnrecognizedName      = 112
	verAlertNoApplicationProtocol = 120
)

// The oracle's view of records and HelloRetryRequests serves the harness
// too.
var (
	verHRRRandom    = oracle.HRRRandom
	verSplitRecords = oracle.SplitRecords
)

// verSawHRR reports whether the server's first handshake message in the
// plaintext bytes s2c is a HelloRetryRequest.
func verSawHRR(s2c []byte) bool {
	recs, _ := verSplitRecords(s2c)
	for _, r := range recs {
		if r[0] != verRecordHandshake {
			continue
		}
		body := r[5:]
		// type(1) len(3) legacy_version(2) random(32)
		return len(body) >= 38 && body[0] == 2 && bytes.Equal(body[6:38], verHRRRandom)
	}
	return false
}

// verWireConn wraps a net.Conn: it records every byte read from the peer and
// can rewrite outgoing records one whole record at a time.
type verWireConn struct {
	net.Conn

	mu      sync.Mutex
	read    bytes.Buffer
	wrote   bytes.Buffer // what reached the peer, after mutate
	pending []byte
	written int // whole records written so far
	// mutate, when set, may change an outgoing record in place (header
	// included) or return a replacement; index counts records from 0.
	mutate func(index int, rec []byte) []byte
}

func (c *verWireConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.read.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

func (c *verWireConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.mutate == nil {
		c.wrote.Write(p)
		c.mu.Unlock()
		return c.Conn.Write(p)
	}
	c.pending = append(c.pending, p...)
	recs, rest := verSplitRecords(c.pending)
	var out []byte
	for _, r := range recs {
		r = append([]byte(nil), r...)
		r = c.mutate(c.written, r)
		c.written++
		out = append(out, r...)
	}
	c.pending = append([]byte(nil), rest...)
	c.wrote.Write(out)
	c.mu.Unlock()
	if len(out) > 0 {
		if _, err := c.Conn.Write(out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// readBytes returns a copy of everything read so far.
func (c *verWireConn) readBytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.read.Bytes()...)
}

// wroteBytes returns a copy of everything written to the peer so far.
func (c *verWireConn) wroteBytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.wrote.Bytes()...)
}

// verReadAlert reads plaintext records from c until it finds an alert and
// returns its description. It fails when c closes or the deadline passes
// first, or when an encrypted record arrives (the peer went on with the
// handshake instead of refusing).
func verReadAlert(c net.Conn) (level, desc uint8, err error) {
	r, err := verFirstRecordOf(c, verRecordAlert, verRecordAppData)
	switch {
	case err != nil:
		return 0, 0, errors.New("no alert before " + err.Error())
	case r[0] == verRecordAppData:
		return 0, 0, errors.New("peer sent an encrypted record instead of a plaintext alert")
	case len(r) != 7:
		return 0, 0, errors.New("malformed alert record")
	}
	return r[5], r[6], nil
}

// verFirstRecordOf reads c (within verWait) until a whole record of one
// of the given types has arrived and returns it; records of other types
// before it are passed over.
func verFirstRecordOf(c net.Conn, types ...uint8) ([]byte, error) {
	c.SetReadDeadline(time.Now().Add(verWait))
	var buf []byte
	tmp := make([]byte, 4096)
	for {
		recs, _ := verSplitRecords(buf)
		for _, r := range recs {
			if slices.Contains(types, r[0]) {
				return r, nil
			}
		}
		n, err := c.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if err != nil {
			return nil, err
		}
	}
}

// verRecord frames a payload as one plaintext record.
func verRecord(typ uint8, payload []byte) []byte {
	r := []byte{typ, 0x03, 0x03, byte(len(payload) >> 8), byte(len(payload))}
	return append(r, payload...)
}

// verRecordV frames a payload with an explicit legacy record version.
func verRecordV(typ uint8, version uint16, payload []byte) []byte {
	r := []byte{typ, byte(version >> 8), byte(version), byte(len(payload) >> 8), byte(len(payload))}
	return append(r, payload...)
}

// ---------------------------------------------------------------------------
// OpenSSL.

// verOpenSSL returns the openssl binary; without one the test fails (a
// missing dependency is not a pass).
func verOpenSSL(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatal("openssl not installed: the OpenSSL interop tests need the openssl command (apt-get install openssl)")
	}
	return path
}

// verLockedBuffer collects a child process's output while tests read it.
type verLockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *verLockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *verLockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// verWaitFor polls cond until it holds or the failure deadline passes.
func verWaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(verWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // poll interval, not a readiness guess
	}
}

// verOpenSSLServer is a running `openssl s_server`.
type verOpenSSLServer struct {
	addr  string
	out   *verLockedBuffer
	stdin io.WriteCloser // s_server sends what arrives here to the client
}

// verStartOpenSSLServer runs `openssl s_server -accept 127.0.0.1:0 args...`;
// OpenSSL binds an ephemeral port and prints "ACCEPT host:port", which is the
// readiness signal. The process is killed at cleanup.
func verStartOpenSSLServer(t testing.TB, args ...string) *verOpenSSLServer {
	t.Helper()
	bin := verOpenSSL(t)
	full := append([]string{"s_server", "-accept", "127.0.0.1:0"}, args...)
	cmd := exec.Command(bin, full...)
	out := &verLockedBuffer{}
	cmd.Stdout = out
	cmd.Stderr = out
	stdin, err := cmd.StdinPipe() // an open stdin keeps s_server from quitting
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("openssl s_server output:\n%s", out.String())
		}
	})
	s := &verOpenSSLServer{out: out, stdin: stdin}
	verWaitFor(t, "openssl s_server ACCEPT line", func() bool {
		select {
		case <-exited:
			t.Fatalf("openssl s_server exited early:\n%s", out.String())
		default:
		}
		for _, line := range strings.Split(out.String(), "\n") {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "ACCEPT "); ok {
				s.addr = rest
				return true
			}
		}
		return false
	})
	return s
}

// verOpenSSLClient is a running `openssl s_client`.
type verOpenSSLClient struct {
	stdin  io.WriteCloser
	out    *verLockedBuffer
	exited chan struct{}
}

// verStartOpenSSLClient runs `openssl s_client -connect addr args...`,
// killed at cleanup.
func verStartOpenSSLClient(t testing.TB, addr string, args ...string) *verOpenSSLClient {
	t.Helper()
	bin := verOpenSSL(t)
	full := append([]string{"s_client", "-connect", addr}, args...)
	cmd := exec.Command(bin, full...)
	out := &verLockedBuffer{}
	cmd.Stdout = out
	cmd.Stderr = out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &verOpenSSLClient{stdin: stdin, out: out, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(c.exited) }()
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		<-c.exited
		if t.Failed() {
			t.Logf("openssl s_client output:\n%s", out.String())
		}
	})
	return c
}

// waitOutput polls until the client's output contains s.
func (c *verOpenSSLClient) waitOutput(t testing.TB, s string) {
	t.Helper()
	verWaitFor(t, "openssl s_client output "+s, func() bool {
		return strings.Contains(c.out.String(), s)
	})
}

// finish closes stdin (s_client then sends close_notify and exits) and
// waits for the process.
func (c *verOpenSSLClient) finish(t testing.TB) string {
	t.Helper()
	c.stdin.Close()
	select {
	case <-c.exited:
	case <-time.After(verWait):
		t.Fatalf("openssl s_client did not exit:\n%s", c.out.String())
	}
	return c.out.String()
}

// ---------------------------------------------------------------------------
// Handcrafted ClientHellos for the raw-socket conformance tests.

// Extension code points and wire values used by the handcrafted hellos.
const (
	verExtServerName          = 0
	verExtSupportedGroups     = 10
	verExtSignatureAlgorithms = 13
	verExtALPN                = 16
	verExtPreSharedKey        = 41
	verExtSupportedVersions   = 43
	verExtCookie              = 44
	verExtPSKModes            = 45
	verExtKeyShare            = 51

	verGroupX25519    = 0x001d
	verGroupP256      = 0x0017
	verGroupX25519ML  = 0x11ec
	verSuiteAES128GCM = 0x1301
	verSuiteAES256GCM = 0x1302
	verSuiteChaCha    = 0x1303
)

// verExt is one extension of a handcrafted hello, in wire order.
type verExt struct {
	typ  uint16
	data []byte
}

// verExts is a handcrafted message's extension list, in wire order.
type verExts []verExt

// set replaces the first extension of type typ, or appends it.
func (x *verExts) set(typ uint16, data []byte) {
	for i := range *x {
		if (*x)[i].typ == typ {
			(*x)[i].data = data
			return
		}
	}
	*x = append(*x, verExt{typ, data})
}

// remove drops every extension of type typ.
func (x *verExts) remove(typ uint16) {
	out := (*x)[:0]
	for _, e := range *x {
		if e.typ != typ {
			out = append(out, e)
		}
	}
	*x = out
}

// add writes the list as it travels: a uint16-prefixed sequence of type,
// uint16-prefixed data.
func (x verExts) add(b *cryptobyte.Builder) {
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, e := range x {
			b.AddUint16(e.typ)
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(e.data) })
		}
	})
}

// verHello is a ClientHello built field by field, so a test can break
// exactly one rule and leave the rest valid.
type verHello struct {
	legacyVersion uint16
	random        [32]byte
	sessionID     []byte
	suites        []uint16
	compression   []byte
	exts          verExts
}

// verU16List encodes a uint16 list with a length prefix of prefixLen bytes.
func verU16List(prefixLen int, vals ...uint16) []byte {
	var b cryptobyte.Builder
	body := func(b *cryptobyte.Builder) {
		for _, v := range vals {
			b.AddUint16(v)
		}
	}
	if prefixLen == 1 {
		b.AddUint8LengthPrefixed(body)
	} else {
		b.AddUint16LengthPrefixed(body)
	}
	return b.BytesOrPanic()
}

// verKeyShareExt encodes a ClientHello key_share extension body.
func verKeyShareExt(shares ...verExt) []byte {
	var b cryptobyte.Builder
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, s := range shares {
			b.AddUint16(s.typ)
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(s.data) })
		}
	})
	return b.BytesOrPanic()
}

// verSNIExt encodes a server_name extension body for one host name.
func verSNIExt(name string) []byte {
	var b cryptobyte.Builder
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint8(0) // host_name
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(name)) })
	})
	return b.BytesOrPanic()
}

// verPSKExt encodes a pre_shared_key extension with one identity and one
// binder of binderLen bytes.
func verPSKExt(identity []byte, binderLen int) []byte {
	var b cryptobyte.Builder
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(identity) })
		b.AddUint32(0x01020304) // obfuscated_ticket_age
	})
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(make([]byte, binderLen)) })
	})
	return b.BytesOrPanic()
}

// verNewX25519Share returns a fresh X25519 public key.
func verNewX25519Share(t testing.TB) []byte {
	t.Helper()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k.PublicKey().Bytes()
}

// verP256Point returns a valid uncompressed P-256 public key.
func verP256Point(t testing.TB) []byte {
	t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k.PublicKey().Bytes()
}

// verDefaultHello is a valid TLS 1.3 ClientHello: one suite, X25519 with a
// share, signature algorithms for every test certificate, psk_dhe_ke, a
// 32-byte legacy session id (middlebox compatibility).
func verDefaultHello(t testing.TB) *verHello {
	t.Helper()
	h := &verHello{
		legacyVersion: 0x0303,
		sessionID:     bytes.Repeat([]byte{0x5a}, 32),
		suites:        []uint16{verSuiteAES128GCM},
		compression:   []byte{0},
	}
	rand.Read(h.random[:])
	h.exts = []verExt{
		{verExtServerName, verSNIExt(verServerName)},
		{verExtSupportedVersions, verU16List(1, 0x0304)},
		{verExtSupportedGroups, verU16List(2, verGroupX25519)},
		{verExtKeyShare, verKeyShareExt(verExt{verGroupX25519, verNewX25519Share(t)})},
		{verExtSignatureAlgorithms, verU16List(2, 0x0403, 0x0807, 0x0804, 0x0805, 0x0806, 0x0503)},
		{verExtPSKModes, []byte{1, 1}},
	}
	return h
}

// set replaces the first extension of type typ, or appends it.
func (h *verHello) set(typ uint16, data []byte) *verHello { h.exts.set(typ, data); return h }

// remove drops every extension of type typ.
func (h *verHello) remove(typ uint16) *verHello { h.exts.remove(typ); return h }

// marshal returns the handshake message: type, uint24 length, body.
func (h *verHello) marshal() []byte {
	var b cryptobyte.Builder
	b.AddUint8(1) // client_hello
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint16(h.legacyVersion)
		b.AddBytes(h.random[:])
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(h.sessionID) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, s := range h.suites {
				b.AddUint16(s)
			}
		})
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(h.compression) })
		h.exts.add(b)
	})
	return b.BytesOrPanic()
}

// record returns the hello as one plaintext handshake record.
func (h *verHello) record() []byte { return verRecord(verRecordHandshake, h.marshal()) }

// verReadServerHello reads plaintext records until the first handshake
// record and reports whether it starts with a ServerHello that is not a
// HelloRetryRequest, and the echoed legacy_session_id.
func verReadServerHello(c net.Conn) (isServerHello, isHRR bool, sessionEcho []byte, err error) {
	r, err := verFirstRecordOf(c, verRecordAlert, verRecordHandshake)
	if err != nil {
		return false, false, nil, errors.New("no ServerHello before " + err.Error())
	}
	if r[0] == verRecordAlert {
		return false, false, nil, fmt.Errorf("alert %v", r[5:])
	}
	s := cryptobyte.String(r[5:])
	var typ uint8
	var body, random, sid cryptobyte.String
	var vers uint16
	if !s.ReadUint8(&typ) || !s.ReadUint24LengthPrefixed(&body) || typ != 2 ||
		!body.ReadUint16(&vers) || !body.ReadBytes((*[]byte)(&random), 32) ||
		!body.ReadUint8LengthPrefixed(&sid) {
		return false, false, nil, fmt.Errorf("first handshake record is not a ServerHello: % x", r[5:min(len(r), 16)])
	}
	return true, bytes.Equal(random, verHRRRandom), []byte(sid), nil
}

// ---------------------------------------------------------------------------
// tls13 configurations.

// verMixedPair connects a tls13 end and a crypto/tls end over loopback,
// tls13 playing side ("tls13-client" or "tls13-server"); the handshakes
// run on first use. It returns the ends as client and server, and which
// of them is the tls13 Conn and which the crypto/tls one.
func verMixedPair(t *testing.T, p *verPKI, side string) (client, server net.Conn, tc *Conn, std *tls.Conn) {
	t.Helper()
	ln := verListen(t)
	scfg := verTLS13ServerConfig(t, p)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		c.SetDeadline(time.Now().Add(verWait))
		accepted <- c
	}()
	raw := verDial(t, ln.Addr().String())
	c := <-accepted
	if c == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close() })
	if side == "tls13-client" {
		tc, std = Client(raw, verTLS13ClientConfig(p)), tls.Server(c, verStdlibServerConfig(p))
		return tc, std, tc, std
	}
	std, tc = tls.Client(raw, verStdlibClientConfig(p)), Server(c, scfg)
	return std, tc, tc, std
}

// verTLS13ServerConfig is a tls13 server for p with fresh ticket keys.
func verTLS13ServerConfig(t testing.TB, p *verPKI) *Config {
	t.Helper()
	keys, err := NewRandomTicketKeys()
	if err != nil {
		t.Fatal(err)
	}
	return &Config{Certificates: []tls.Certificate{p.leaf}, TicketKeys: keys}
}

// verTLS13ClientConfig is a tls13 client that trusts p for verServerName.
func verTLS13ClientConfig(p *verPKI) *Config {
	return &Config{RootCAs: p.roots, ServerName: verServerName}
}

// verSessionCatcher keeps the tickets a tls13 client receives.
type verSessionCatcher struct {
	mu       sync.Mutex
	sessions []*ClientSession
}

func (s *verSessionCatcher) hook(_ *Conn, cs *ClientSession) {
	s.mu.Lock()
	s.sessions = append(s.sessions, cs)
	s.mu.Unlock()
}

func (s *verSessionCatcher) last() *ClientSession {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sessions) == 0 {
		return nil
	}
	return s.sessions[len(s.sessions)-1]
}

// verAlertOf returns the alert carried by err and whether it was received
// from the peer.
func verAlertOf(err error) (a Alert, received, ok bool) {
	var ae *AlertError
	if errors.As(err, &ae) {
		return ae.Alert, ae.Received, true
	}
	return 0, false, false
}

// ---------------------------------------------------------------------------
// Engine-to-engine sessions and the unit tests' PKI (example.test).

// testPKI is a CA and leaf certificates for "example.test" of each key type.
type testPKI struct {
	ca    *certtest.CA
	pool  *x509.CertPool
	ecdsa tls.Certificate
	ed    tls.Certificate
	rsa   tls.Certificate
}

var (
	pkiMu sync.Mutex
	pki   *testPKI
)

// getPKI returns the unit tests' PKI: an ECDSA CA and ECDSA, Ed25519 and
// RSA leaves for example.test and 127.0.0.1, made once per test binary.
func getPKI(t testing.TB) *testPKI {
	t.Helper()
	pkiMu.Lock()
	defer pkiMu.Unlock()
	if pki != nil {
		return pki
	}
	ca := certtest.MustCA(t, certtest.CAOptions{Name: "tls13 test CA"})
	p := &testPKI{ca: ca, pool: ca.Pool()}
	leaf := func(kind verCertKind) tls.Certificate {
		return ca.MustIssue(t, certtest.LeafOptions{
			Key: verKeyType(kind), DNSNames: []string{"example.test"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, WithCA: true,
		}).TLS
	}
	p.ecdsa = leaf(verECDSA)
	p.ed = leaf(verEd25519)
	p.rsa = leaf(verRSAPSS)
	pki = p
	return pki
}

func testServerConfig(t testing.TB) *Config {
	p := getPKI(t)
	keys, err := NewRandomTicketKeys()
	if err != nil {
		t.Fatal(err)
	}
	return &Config{Certificates: []tls.Certificate{p.ecdsa}, TicketKeys: keys}
}

func testClientConfig(t testing.TB) *Config {
	return &Config{RootCAs: getPKI(t).pool, ServerName: "example.test"}
}

// pipePair runs both handshakes over net.Pipe and returns the results.
func handshakePair(t testing.TB, client, server interface{ Handshake() error }) (cerr, serr error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- server.Handshake() }()
	cerr = client.Handshake()
	serr = <-done
	return
}

// leafFor issues an ECDSA leaf for name from the test CA.
func (p *testPKI) leafFor(t testing.TB, name string) tls.Certificate {
	t.Helper()
	return p.ca.MustIssue(t, certtest.LeafOptions{DNSNames: []string{name}}).TLS
}

// session runs one client/server connection over net.Pipe: the server
// writes "ok" after its handshake, the client reads it (which also
// delivers the tickets that precede it).
type session struct {
	client, server *Conn
	cerr, serr     error
}

func runSession(t *testing.T, ccfg, scfg *Config) *session {
	t.Helper()
	c1, c2 := net.Pipe()
	s := &session{client: Client(c1, ccfg), server: Server(c2, scfg)}
	t.Cleanup(func() { c1.Close(); c2.Close() })
	done := make(chan error, 1)
	go func() {
		err := s.server.Handshake()
		if err == nil {
			_, err = s.server.Write([]byte("ok"))
		}
		done <- err
	}()
	s.cerr = s.client.Handshake()
	if s.cerr == nil {
		buf := make([]byte, 2)
		_, s.cerr = io.ReadFull(s.client, buf)
	}
	if s.cerr != nil {
		c1.Close()
	}
	s.serr = <-done
	return s
}

func runSessionPlain(t *testing.T) *session {
	s := runSession(t, testClientConfig(t), testServerConfig(t))
	if s.cerr != nil || s.serr != nil {
		t.Fatalf("client %v server %v", s.cerr, s.serr)
	}
	return s
}

// verPair is an established tls13 client and tls13 server over loopback;
// cw and sw sit between each end and its socket.
type verPair struct {
	client, server *Conn
	cw, sw         *verWireConn
}

// verTLS13Pair connects a tls13 client to a tls13 server and completes
// both handshakes.
func verTLS13Pair(t *testing.T, ccfg, scfg *Config) *verPair {
	t.Helper()
	ln := verListen(t)
	type accepted struct {
		c   *Conn
		w   *verWireConn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			ch <- accepted{err: err}
			return
		}
		raw.SetDeadline(time.Now().Add(verWait))
		w := &verWireConn{Conn: raw}
		s := Server(w, scfg)
		ch <- accepted{s, w, s.Handshake()}
	}()
	cw := &verWireConn{Conn: verDial(t, ln.Addr().String())}
	c := Client(cw, ccfg)
	cerr := c.Handshake()
	a := <-ch
	if a.w != nil {
		t.Cleanup(func() { a.w.Close() })
	}
	if cerr != nil || a.err != nil {
		t.Fatalf("handshake: client %v, server %v", cerr, a.err)
	}
	return &verPair{client: c, server: a.c, cw: cw, sw: a.w}
}

// verDecryptConn decrypts both directions of a connection recorded on the
// client side (w) with a key log, through the independent oracle.
func verDecryptConn(w *verWireConn, kl *oracle.KeyLog) (c2s, s2c []oracle.Record, c2sMsgs, s2cMsgs [][]byte, err error) {
	return oracle.DecryptConn(w.wroteBytes(), w.readBytes(), kl)
}
