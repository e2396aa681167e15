package tls13

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// bufConn is a net.Conn that reads from a fixed byte string and records
// what is written (the alerts).
type bufConn struct {
	r *bytes.Reader
	w bytes.Buffer
}

func (b *bufConn) Read(p []byte) (int, error)         { return b.r.Read(p) }
func (b *bufConn) Write(p []byte) (int, error)        { return b.w.Write(p) }
func (b *bufConn) Close() error                       { return nil }
func (b *bufConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (b *bufConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (b *bufConn) SetDeadline(t time.Time) error      { return nil }
func (b *bufConn) SetReadDeadline(t time.Time) error  { return nil }
func (b *bufConn) SetWriteDeadline(t time.Time) error { return nil }

var testSecret = bytes.Repeat([]byte{7}, 32)

// sealRecord protects inner ‖ type ‖ padding like a peer would.
func sealRecord(t *testing.T, h *halfConn, typ uint8, inner []byte, padding int) []byte {
	t.Helper()
	pt := append(append(append([]byte{}, inner...), typ), make([]byte, padding)...)
	n := len(pt) + h.aead.Overhead()
	hdr := []byte{recordTypeApplicationData, 3, 3, byte(n >> 8), byte(n)}
	nonce, err := h.nextNonce()
	if err != nil {
		t.Fatal(err)
	}
	return h.aead.Seal(hdr, nonce, pt, hdr)
}

// protectedConn returns a post-handshake client Conn reading wire, and
// the peer's sealing state.
func protectedConn(t *testing.T, wire func(peer *halfConn) []byte) (*Conn, *bufConn) {
	t.Helper()
	s := suiteByID(TLS_AES_128_GCM_SHA256)
	var peer halfConn
	if err := peer.setTrafficSecret(s, testSecret); err != nil {
		t.Fatal(err)
	}
	bc := &bufConn{r: bytes.NewReader(wire(&peer))}
	c := Client(bc, &Config{})
	c.suite = s
	c.handshakeDone.Store(true)
	c.stateReady.Store(true)
	if err := c.in.setTrafficSecret(s, testSecret); err != nil {
		t.Fatal(err)
	}
	if err := c.out.setTrafficSecret(s, bytes.Repeat([]byte{9}, 32)); err != nil {
		t.Fatal(err)
	}
	return c, bc
}

func TestRecordLayerRules(t *testing.T) {
	cases := []struct {
		name  string
		wire  func(t *testing.T, p *halfConn) []byte
		want  Alert // 0 with data == accepted
		wantD string
	}{
		{"padded record accepted", func(t *testing.T, p *halfConn) []byte {
			return sealRecord(t, p, recordTypeApplicationData, []byte("hi"), 100)
		}, 0, "hi"},
		{"zero-length application data accepted", func(t *testing.T, p *halfConn) []byte {
			return append(sealRecord(t, p, recordTypeApplicationData, nil, 0),
				sealRecord(t, p, recordTypeApplicationData, []byte("x"), 0)...)
		}, 0, "x"},
		{"all-zero inner plaintext", func(t *testing.T, p *halfConn) []byte {
			return sealRecord(t, p, 0, nil, 10)
		}, AlertUnexpectedMessage, ""},
		{"empty handshake fragment", func(t *testing.T, p *halfConn) []byte {
			return sealRecord(t, p, recordTypeHandshake, nil, 0)
		}, AlertUnexpectedMessage, ""},
		{"empty alert fragment", func(t *testing.T, p *halfConn) []byte {
			return sealRecord(t, p, recordTypeAlert, nil, 0)
		}, AlertUnexpectedMessage, ""},
		{"tampered record", func(t *testing.T, p *halfConn) []byte {
			r := sealRecord(t, p, recordTypeApplicationData, []byte("hi"), 0)
			r[6] ^= 1
			return r
		}, AlertBadRecordMAC, ""},
		{"ciphertext over 2^14+256", func(t *testing.T, p *halfConn) []byte {
			n := maxCiphertext + 1
			return append([]byte{recordTypeApplicationData, 3, 3, byte(n >> 8), byte(n)}, make([]byte, n)...)
		}, AlertRecordOverflow, ""},
		{"inner plaintext over 2^14", func(t *testing.T, p *halfConn) []byte {
			return sealRecord(t, p, recordTypeApplicationData, make([]byte, maxPlaintext+1), 0)
		}, AlertRecordOverflow, ""},
		{"unprotected handshake after keys", func(t *testing.T, p *halfConn) []byte {
			return []byte{recordTypeHandshake, 3, 3, 0, 5, typeKeyUpdate, 0, 0, 1, 0}
		}, AlertUnexpectedMessage, ""},
		{"ChangeCipherSpec after the handshake", func(t *testing.T, p *halfConn) []byte {
			return []byte{recordTypeChangeCipherSpec, 3, 3, 0, 1, 1}
		}, AlertUnexpectedMessage, ""},
		{"protected ChangeCipherSpec", func(t *testing.T, p *halfConn) []byte {
			return sealRecord(t, p, recordTypeChangeCipherSpec, []byte{1}, 0)
		}, AlertUnexpectedMessage, ""},
		{"malformed alert", func(t *testing.T, p *halfConn) []byte {
			return sealRecord(t, p, recordTypeAlert, []byte{1, 0, 0}, 0)
		}, AlertDecodeError, ""},
		{"KeyUpdate with request 2", func(t *testing.T, p *halfConn) []byte {
			return sealRecord(t, p, recordTypeHandshake, []byte{typeKeyUpdate, 0, 0, 1, 2}, 0)
		}, AlertIllegalParameter, ""},
		{"KeyUpdate not on a record boundary", func(t *testing.T, p *halfConn) []byte {
			return sealRecord(t, p, recordTypeHandshake, []byte{typeKeyUpdate, 0, 0, 1, 0, typeKeyUpdate, 0}, 0)
		}, AlertUnexpectedMessage, ""},
		{"application data inside a fragmented handshake message", func(t *testing.T, p *halfConn) []byte {
			return append(sealRecord(t, p, recordTypeHandshake, []byte{typeKeyUpdate, 0}, 0),
				sealRecord(t, p, recordTypeApplicationData, []byte("x"), 0)...)
		}, AlertUnexpectedMessage, ""},
		{"NewSessionTicket lifetime over 7 days", func(t *testing.T, p *halfConn) []byte {
			m := &newSessionTicketMsg{lifetime: 604801, label: []byte{1}}
			return sealRecord(t, p, recordTypeHandshake, m.marshal(), 0)
		}, AlertIllegalParameter, ""},
		{"unknown alert is fatal", func(t *testing.T, p *halfConn) []byte {
			return sealRecord(t, p, recordTypeAlert, []byte{1, 240}, 0)
		}, 0xff, ""},
		{"KeyUpdate then data under the new key", func(t *testing.T, p *halfConn) []byte {
			out := sealRecord(t, p, recordTypeHandshake, []byte{typeKeyUpdate, 0, 0, 1, 0}, 0)
			p.setTrafficSecret(p.suite, p.suite.nextTrafficSecret(p.secret))
			return append(out, sealRecord(t, p, recordTypeApplicationData, []byte("new"), 0)...)
		}, 0, "new"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, bc := protectedConn(t, func(p *halfConn) []byte { return tc.wire(t, p) })
			buf := make([]byte, 64)
			n, err := c.Read(buf)
			if tc.want == 0 {
				if err != nil || string(buf[:n]) != tc.wantD {
					t.Fatalf("got %q, %v; want %q", buf[:n], err, tc.wantD)
				}
				return
			}
			var ae *AlertError
			if !errors.As(err, &ae) {
				t.Fatalf("error %v, want an alert", err)
			}
			if tc.want == 0xff {
				if !ae.Received || ae.Alert != 240 {
					t.Fatalf("got %v, want the received alert treated as fatal", err)
				}
				return
			}
			if ae.Received || ae.Alert != tc.want {
				t.Fatalf("got %v, want sent %v", err, tc.want)
			}
			if bc.w.Len() == 0 {
				t.Fatal("no alert written")
			}
		})
	}
}

func TestCloseNotifyIsAnsweredAndEndsReading(t *testing.T) {
	c, bc := protectedConn(t, func(p *halfConn) []byte {
		out := sealRecord(t, p, recordTypeAlert, []byte{1, 0}, 0)
		// Data after a closure alert is ignored (§6.1).
		return append(out, sealRecord(t, p, recordTypeApplicationData, []byte("late"), 0)...)
	})
	if _, err := c.Read(make([]byte, 8)); err != io.EOF {
		t.Fatalf("read after close_notify: %v, want io.EOF", err)
	}
	if _, err := c.Read(make([]byte, 8)); err != io.EOF {
		t.Fatalf("second read: %v, want io.EOF", err)
	}
	if bc.w.Len() == 0 {
		t.Fatal("close_notify not answered")
	}
	if _, err := c.Write([]byte("x")); err == nil {
		t.Fatal("write succeeded after our close_notify")
	}
}

// TestRecordPathAllocs proves the steady-state record path allocates
// nothing: a 16 KiB write sealed in place, read and opened in place.
func TestRecordPathAllocs(t *testing.T) {
	s := runSessionPlain(t)
	const size = 16 << 10
	payload := make([]byte, size)
	done := make(chan struct{})
	go func() {
		buf := make([]byte, size)
		for {
			if _, err := io.ReadFull(s.server, buf); err != nil {
				close(done)
				return
			}
			done <- struct{}{}
		}
	}()
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := s.client.Write(payload); err != nil {
			t.Fatal(err)
		}
		<-done
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per 16 KiB record round, want 0", allocs)
	}
}
