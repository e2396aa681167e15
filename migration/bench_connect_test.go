package migration

import (
	"bufio"
	"context"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/anysched/anysched/tls13"
)

// BenchmarkConnectFirstByte measures connect-to-first-byte on loopback:
// plain is one full tls13 handshake to the node's listener and a request;
// rendezvous is the seed's path (full handshake at the VIP, wait for the
// token, resumption at the unicast address) and the same request there.
// The goal is rendezvous ≤ 1.5 × plain: one extra resumption. Client
// and server share the process, so cpu-ns/op (process CPU time per
// connection, both sides) is the figure to compare on a busy machine.
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
		defer reportCPU(b)()
		for b.Loop() {
			c, err := tls13.Dial(ctx, "tcp", node.vipAddr(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			firstByte(b, c)
			c.Close()
		}
	})
	// resumed is a plain tls13 resumption to the unicast listener: the
	// part rendezvous adds to plain, for reading the ratio.
	b.Run("resumed", func(b *testing.B) {
		var session *tls13.ClientSession
		cfg := clientTLS(b)
		cfg.OnNewSessionTicket = func(_ *tls13.Conn, s *tls13.ClientSession) { session = s }
		c, err := tls13.Dial(ctx, "tcp", node.uniAddr(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		firstByte(b, c)
		c.Close()
		rcfg := clientTLS(b)
		rcfg.Session = session
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			c, err := tls13.Dial(ctx, "tcp", node.uniAddr(), rcfg)
			if err != nil {
				b.Fatal(err)
			}
			if !c.ConnectionState().DidResume {
				b.Fatal("did not resume")
			}
			firstByte(b, c)
			c.Close()
		}
	})
	b.Run("rendezvous", func(b *testing.B) {
		d := newDialer(b, PolicyRendezvous)
		b.ReportAllocs()
		defer reportCPU(b)()
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

// reportCPU adds a cpu-ns/op metric: the process's CPU time per operation
// (on a shared machine wall time includes waiting for a core). Use as:
// defer reportCPU(b)().
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
