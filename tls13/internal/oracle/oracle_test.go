package oracle_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/anysched/anysched/internal/certtest"
	"github.com/anysched/anysched/tls13/internal/oracle"
)

// TestExpandLabelRFC8448 checks HKDF-Expand-Label against RFC 8448 §3
// (Simple 1-RTT Handshake): the "derived" secret, the server's handshake
// key and IV, and its finished key.
func TestExpandLabelRFC8448(t *testing.T) {
	rfc := func(s string) []byte { // RFC 8448 prints bytes as spaced hex
		b, _ := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
		return b
	}
	early := rfc(`33 ad 0a 1c 60 7e c0 3b 09 e6 cd 98 93 68 0c e2 10 ad f3 00 aa 1f 26 60 e1 b2 2e 10 f1 70 f9 2a`)
	emptyHash := sha256.Sum256(nil)
	sHS := rfc(`b6 7b 7d 69 0c c1 6c 4e 75 e5 42 13 cb 2d 37 b4 e9 c9 12 bc de d9 10 5d 42 be fd 59 d3 91 ad 38`)
	for _, c := range []struct {
		what string
		got  []byte
		want string
	}{
		{"derived (early)", oracle.ExpandLabelContext(sha256.New, early, "derived", emptyHash[:], 32),
			`6f 26 15 a1 08 c7 02 c5 67 8f 54 fc 9d ba b6 97 16 c0 76 18 9c 48 25 0c eb ea c3 57 6c 36 11 ba`},
		{"server handshake key", oracle.ExpandLabel(sha256.New, sHS, "key", 16), `3f ce 51 60 09 c2 17 27 d0 f2 e4 e8 6e e4 03 bc`},
		{"server handshake iv", oracle.ExpandLabel(sha256.New, sHS, "iv", 12), `5d 31 3e b2 67 12 76 ee 13 00 0b 30`},
		{"server finished key", oracle.ExpandLabel(sha256.New, sHS, "finished", 32),
			`00 8d 3b 66 f8 16 ea 55 9f 96 b5 37 e8 85 c3 1f c0 68 bf 49 2c 65 2f 01 f2 88 a1 d8 cd c1 9f c8`},
	} {
		if want := rfc(c.want); len(want) == 0 || !bytes.Equal(c.got, want) {
			t.Errorf("%s:\n got %x\nwant %x", c.what, c.got, want)
		}
	}
	if out := oracle.ExpandLabel(sha256.New, sHS, "too long", 255*32+1); out != nil {
		t.Errorf("an expansion past HKDF's limit gave %d bytes, want nil", len(out))
	}
}

// recorder keeps what passes through the client's socket; the client
// does all its I/O inside the test goroutine's calls, so no lock.
type recorder struct {
	net.Conn
	read, wrote bytes.Buffer
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.read.Write(p[:n])
	return n, err
}

func (r *recorder) Write(p []byte) (int, error) { r.wrote.Write(p); return r.Conn.Write(p) }

// serveExclaim accepts one connection on ln as a crypto/tls server and
// answers its six bytes with the same six and "!".
func serveExclaim(ln net.Listener, cert tls.Certificate) error {
	c, err := ln.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	s := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})
	buf := make([]byte, 6)
	if _, err := io.ReadFull(s, buf); err != nil {
		return err
	}
	_, err = s.Write(append(buf, '!'))
	return err
}

// TestDecryptConnCryptoTLS decrypts a crypto/tls connection (no tls13
// code involved) recorded on the client side, with the client's key log:
// the application data and the handshake messages must come out.
func TestDecryptConnCryptoTLS(t *testing.T) {
	ca := certtest.MustCA(t, certtest.CAOptions{Name: "oracle test CA"})
	cert := ca.MustIssue(t, certtest.LeafOptions{DNSNames: []string{"oracle.test"}}).TLS
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() { done <- serveExclaim(ln, cert) }()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	w := &recorder{Conn: raw}
	kl := &oracle.KeyLog{}
	c := tls.Client(w, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13, KeyLogWriter: kl})
	if _, err := c.Write([]byte("secret")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 7)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	c2s, s2c, c2sMsgs, s2cMsgs, err := oracle.DecryptConn(w.wrote.Bytes(), w.read.Bytes(), kl)
	if err != nil {
		t.Fatal(err)
	}
	var up, down []byte
	for _, r := range c2s {
		if r.Type == 23 {
			up = append(up, r.Payload...)
		}
	}
	for _, r := range s2c {
		if r.Type == 23 {
			down = append(down, r.Payload...)
		}
	}
	if string(up) != "secret" || string(down) != "secret!" {
		t.Errorf("decrypted application data: up %q down %q", up, down)
	}
	if len(c2sMsgs) < 2 || c2sMsgs[0][0] != 1 || c2sMsgs[len(c2sMsgs)-1][0] != 20 {
		t.Errorf("client messages do not run ClientHello..Finished: %d messages", len(c2sMsgs))
	}
	if len(s2cMsgs) < 5 || s2cMsgs[0][0] != 2 {
		t.Errorf("server messages do not start with ServerHello: %d messages", len(s2cMsgs))
	}
}

// FuzzDecryptDirection feeds arbitrary wire bytes to the record decryption
// under fixed secrets: it must never panic, and every handshake message it
// returns is whole (its length field matches).
func FuzzDecryptDirection(f *testing.F) {
	hs := bytes.Repeat([]byte{1}, 32)
	app := bytes.Repeat([]byte{2}, 32)
	f.Add(uint16(0x1301), []byte{22, 3, 3, 0, 4, 2, 0, 0, 0})
	f.Add(uint16(0x1303), []byte{23, 3, 3, 0, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(uint16(0x1302), []byte{20, 3, 3, 0, 1, 1, 23, 3, 3, 0, 0})
	f.Fuzz(func(t *testing.T, suite uint16, wire []byte) {
		_, msgs, _ := oracle.DecryptDirection(suite, wire, hs, app)
		for _, m := range msgs {
			if len(m) < 4 || len(m) != 4+(int(m[1])<<16|int(m[2])<<8|int(m[3])) {
				t.Fatalf("handshake message of %d bytes with header %x", len(m), m[:min(4, len(m))])
			}
		}
		_ = oracle.ServerHelloSuite(msgs)
	})
}
