package tls13

import (
	"net"
	"sync"
	"testing"

	"github.com/anysched/anysched/parser"
)

// versionConn sets the legacy_record_version of every record the client
// writes before it reads anything (its first flight, the ClientHello), and
// keeps those bytes as they went on the wire.
type versionConn struct {
	net.Conn
	version uint16
	mu      sync.Mutex
	read    bool
	wire    []byte
}

func (c *versionConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	if !c.read {
		out := append([]byte(nil), b...)
		for at := 0; at+recordHeaderLen <= len(out); at += recordHeaderLen + int(out[at+3])<<8 | int(out[at+4]) {
			out[at+1], out[at+2] = byte(c.version>>8), byte(c.version)
		}
		c.wire = append(c.wire, out...)
		b = out
	}
	c.mu.Unlock()
	return c.Conn.Write(b)
}

func (c *versionConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	c.read = true
	c.mu.Unlock()
	return c.Conn.Read(b)
}

// TestRecordVersionsRouterAndNode ties the node to the router on
// legacy_record_version (RFC 8446 §5.1: ignored for all purposes): for
// each version, a real handshake over loopback TCP completes with the
// ClientHello's records carrying it, and the router's parser recognises
// those very bytes as a complete ClientHello, scanned in one piece and
// through the reassembler in two segments — so a node never accepts a
// hello the router cannot pin.
func TestRecordVersionsRouterAndNode(t *testing.T) {
	for _, v := range []uint16{0x0000, 0x0200, 0x0300, 0x0301, 0x0302, 0x0303, 0x0304, 0x03ff, 0x0a0a, 0xfefd, 0xffff} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		served := make(chan error, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				served <- err
				return
			}
			defer c.Close()
			served <- Server(c, testServerConfig(t)).Handshake()
		}()
		raw, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		vc := &versionConn{Conn: raw, version: v}
		cerr := Client(vc, testClientConfig(t)).Handshake()
		serr := <-served
		raw.Close()
		if cerr != nil || serr != nil {
			t.Errorf("record version %#04x: the node refused: client %v, server %v", v, cerr, serr)
			continue
		}
		if len(vc.wire) < 6 || vc.wire[1] != byte(v>>8) || vc.wire[2] != byte(v) {
			t.Fatalf("record version %#04x: the first flight was not rewritten: % x", v, vc.wire[:min(len(vc.wire), 6)])
		}
		var h parser.ClientHello
		if st := parser.ScanClientHello(vc.wire, nil, &h); st != parser.HelloComplete || !h.OffersTLS13 {
			t.Errorf("record version %#04x: the node accepted a ClientHello the router reads as %v", v, st)
			continue
		}
		r, err := parser.NewReassembler(parser.ReassemblerConfig{Slots: 1})
		if err != nil {
			t.Fatal(err)
		}
		var k parser.FlowKey
		k.SrcPort = 1
		cut := min(len(vc.wire)/2, h.End-1)
		r.Open(&k, 999, 0)
		if got := r.Feed(&k, 1000+uint32(cut), vc.wire[cut:h.End], 0, nil, &h); got != parser.VerdictPending {
			t.Errorf("record version %#04x: second segment first: %v", v, got)
		}
		if got := r.Feed(&k, 1000, vc.wire[:cut], 0, nil, &h); got != parser.VerdictComplete {
			t.Errorf("record version %#04x: reassembled: %v", v, got)
		}
	}
}
