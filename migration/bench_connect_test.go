package migration

import (
	"bufio"
	"context"
	"io"
	"net"
	"testing"

	"github.com/anysched/anysched/tls13"
)

// BenchmarkConnectFirstByte measures connect-to-first-byte on loopback:
// plain is one full tls13 handshake to the node's listener and a request;
// rendezvous is the seed's path (full handshake at the VIP, wait for the
// token, resumption at the unicast address) and the same request there.
// The goal is rendezvous ≤ 1.5 × plain: one extra resumption.
func BenchmarkConnectFirstByte(b *testing.B) {
	node := startNode(b, nodeOpts{})
	ctx := context.Background()
	req := []byte("GET / HTTP/1.1\r\nHost: " + testServerName + "\r\n\r\n")
	firstByte := func(b *testing.B, c net.Conn) {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		var one [1]byte
		if _, err := io.ReadFull(bufio.NewReader(c), one[:]); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("plain", func(b *testing.B) {
		cfg := clientTLS(b)
		b.ReportAllocs()
		for b.Loop() {
			c, err := tls13.Dial(ctx, "tcp", node.vipAddr(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			firstByte(b, c)
			c.Close()
		}
	})
	b.Run("rendezvous", func(b *testing.B) {
		d := newDialer(b, PolicyRendezvous)
		b.ReportAllocs()
		for b.Loop() {
			c, err := d.DialContext(ctx, "tcp", node.vipAddr())
			if err != nil {
				b.Fatal(err)
			}
			if !c.Info().Migrated || !c.Info().Resumed {
				b.Fatalf("not migrated: %+v", c.Info())
			}
			firstByte(b, c)
			c.Close()
		}
	})
}
