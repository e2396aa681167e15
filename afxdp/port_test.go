package afxdp_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anysched/anysched/afxdp"
	"github.com/anysched/anysched/internal/testbed"
	"github.com/anysched/anysched/ring"
	"golang.org/x/sys/unix"
)

// openPort attaches the program to the router's fabric interface and
// opens its sockets, inside the router's namespace.
func openPort(t *testing.T, b *testbed.Bed, mode afxdp.AttachMode) *afxdp.Port {
	t.Helper()
	return openPortSized(t, b, mode, afxdp.RingOptions{NumFrames: 1024, FillRingSize: 512, CompletionRingSize: 512, RxRingSize: 512, TxRingSize: 512})
}

func openPortSized(t *testing.T, b *testbed.Bed, mode afxdp.AttachMode, ro afxdp.RingOptions) *afxdp.Port {
	t.Helper()
	var p *afxdp.Port
	err := b.Router.Do(func() (err error) {
		p, err = afxdp.Open(afxdp.Config{
			Interface: b.Router.Iface,
			Mode:      mode,
			VIPs:      []netip.AddrPort{netip.AddrPortFrom(b.VIP4, 443), netip.AddrPortFrom(b.VIP6, 443)},
			Ring:      ro,
		})
		return err
	})
	if err != nil {
		t.Fatalf("open AF_XDP port: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// xdpAttached asks ip(8) whether an XDP program sits on the interface.
func xdpAttached(t *testing.T, h *testbed.Host) bool {
	t.Helper()
	out, err := h.Exec("ip", "-j", "link", "show", "dev", h.Iface)
	if err != nil {
		t.Fatalf("ip link: %v %s", err, out)
	}
	var links []struct {
		XDP *struct {
			Mode int `json:"mode"`
		} `json:"xdp"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -j link: %v %q", err, out)
	}
	return links[0].XDP != nil
}

// seenFrames collects what arrives on a Port's sockets.
type seenFrames struct {
	mu     sync.Mutex
	frames [][]byte
}

func (s *seenFrames) find(match func([]byte) bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.frames {
		if match(f) {
			return true
		}
	}
	return false
}

// drain receives from every ring until ctx ends, keeping copies of frames.
func drain(ctx context.Context, p *afxdp.Port, seen *seenFrames) *sync.WaitGroup {
	var wg sync.WaitGroup
	for _, r := range p.Rings {
		wg.Add(1)
		go func(r *afxdp.Ring) {
			defer wg.Done()
			batch := make([]ring.Desc, 64)
			for ctx.Err() == nil {
				n, err := r.Receive(batch, 20)
				if err != nil {
					return
				}
				seen.mu.Lock()
				for _, d := range batch[:n] {
					seen.frames = append(seen.frames, append([]byte(nil), r.UMEM()[d.Addr:d.Addr+uint64(d.Len)]...))
				}
				seen.mu.Unlock()
				r.Release(batch[:n])
			}
		}(r)
	}
	return &wg
}

// tcpSYNTo reports whether a frame is a TCP SYN to dst with a correct
// TCP checksum.
func tcpSYNTo(dst netip.AddrPort) func([]byte) bool {
	return func(f []byte) bool {
		if len(f) < 14 {
			return false
		}
		et := binary.BigEndian.Uint16(f[12:])
		p := f[14:]
		var src, d netip.Addr
		var l4 []byte
		switch {
		case et == 0x0800 && len(p) >= 20 && p[9] == 6:
			ihl := int(p[0]&15) * 4
			if len(p) < ihl+20 {
				return false
			}
			src, d = netip.AddrFrom4([4]byte(p[12:16])), netip.AddrFrom4([4]byte(p[16:20]))
			l4 = p[ihl:binary.BigEndian.Uint16(p[2:])]
		case et == 0x86dd && len(p) >= 60 && p[6] == 6:
			src, d = netip.AddrFrom16([16]byte(p[8:24])), netip.AddrFrom16([16]byte(p[24:40]))
			l4 = p[40 : 40+int(binary.BigEndian.Uint16(p[4:]))]
		default:
			return false
		}
		if d != dst.Addr() || binary.BigEndian.Uint16(l4[2:]) != dst.Port() || l4[13]&0x02 == 0 {
			return false
		}
		return tcpChecksumOK(src, d, l4)
	}
}

func tcpChecksumOK(src, dst netip.Addr, seg []byte) bool {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src.AsSlice())
	add(dst.AsSlice())
	sum += 6 + uint32(len(seg))
	add(seg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return sum == 0xffff
}

func TestPortRedirectsVIPTrafficAndPassesTheRest(t *testing.T) {
	b := testbed.New(t, testbed.Options{Nodes: 1})
	p := openPort(t, b, afxdp.Native)
	if !xdpAttached(t, b.Router) {
		t.Fatal("no XDP program on the router's interface after Open")
	}
	ctx, cancel := context.WithCancel(context.Background())
	seen := &seenFrames{}
	wg := drain(ctx, p, seen)
	defer func() { cancel(); wg.Wait() }()

	// ARP, ND and the router's own traffic pass while the program is attached.
	for range 2 {
		if err := b.Client.PingOK(b.Router.Addr4, 2*time.Second); err != nil {
			t.Fatalf("ping router (v4) through XDP: %v", err)
		}
		if err := b.Client.PingOK(b.Router.Addr6, 2*time.Second); err != nil {
			t.Fatalf("ping router (v6) through XDP: %v", err)
		}
	}
	// A TCP connection to a closed port of the router is refused by the
	// router's kernel, so its SYN passed.
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, err := b.Client.Dial(dctx, "tcp", netip.AddrPortFrom(b.Router.Addr4, 443).String())
	dcancel()
	if !errors.Is(err, unix.ECONNREFUSED) {
		t.Fatalf("dial the router's own port 443: %v, want connection refused", err)
	}

	// SYNs to the VIP reach the socket, with valid TCP checksums.
	for _, vip := range []netip.AddrPort{netip.AddrPortFrom(b.VIP4, 443), netip.AddrPortFrom(b.VIP6, 443)} {
		dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Second)
		go func() {
			c, err := b.Client.Dial(dctx, "tcp", vip.String())
			if err == nil {
				c.Close()
			}
		}()
		err := testbed.WaitFor(time.Now().Add(15*time.Second), func() error {
			if seen.find(tcpSYNTo(vip)) {
				return nil
			}
			return fmt.Errorf("no SYN to %s on the AF_XDP socket", vip)
		})
		dcancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	// A VIP port that is not configured is not redirected.
	other := netip.AddrPortFrom(b.VIP4, 8443)
	dctx, dcancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	b.Client.Dial(dctx, "tcp", other.String())
	dcancel()

	c, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("XDP counters: %v", fmtCounters(c))
	if c[afxdp.CounterRedirected] < 2 || c[afxdp.CounterPassNonIP] == 0 || c[afxdp.CounterPassNotVIP] == 0 {
		t.Errorf("counters %v: want redirected >= 2, some non-IP and not-VIP passes", fmtCounters(c))
	}
	if seen.find(tcpSYNTo(other)) {
		t.Errorf("SYN to unconfigured %s reached the socket", other)
	}

	// A reload that drops the VIPs stops redirection.
	if err := p.SetVIPs(nil); err != nil {
		t.Fatal(err)
	}
	c, err = p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	before := c[afxdp.CounterRedirected]
	dctx, dcancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	b.Client.Dial(dctx, "tcp", netip.AddrPortFrom(b.VIP4, 443).String())
	dcancel()
	c, _ = p.Counters()
	if c[afxdp.CounterRedirected] != before {
		t.Errorf("redirected %d frames after the VIPs were removed", c[afxdp.CounterRedirected]-before)
	}

	cancel()
	wg.Wait()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if xdpAttached(t, b.Router) {
		t.Fatal("XDP program still attached after Close")
	}
}

func fmtCounters(c afxdp.Counters) string {
	var s []string
	for i, v := range c {
		s = append(s, fmt.Sprintf("%s=%d", afxdp.Counter(i), v))
	}
	return strings.Join(s, " ")
}

// TestReflectorEchoes sends a raw frame from the client to the router's
// MAC and expects it back with the MACs swapped.
func TestReflectorEchoes(t *testing.T) {
	for _, mode := range []afxdp.AttachMode{afxdp.Native, afxdp.Generic} {
		t.Run(mode.String(), func(t *testing.T) {
			b := testbed.New(t, testbed.Options{Nodes: 1})
			p := openPort(t, b, mode)
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			var stats afxdp.ReflectStats
			for _, r := range p.Rings {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := afxdp.Reflect(ctx, r, &stats); err != nil {
						t.Errorf("reflect: %v", err)
					}
				}()
			}
			defer func() { cancel(); wg.Wait() }()

			frame := testbed.TCPFrame(b.Client.MAC, b.Router.MAC, netip.AddrPortFrom(b.Client.Addr4, 40001),
				netip.AddrPortFrom(b.VIP4, 443), testbed.TCPPsh|testbed.TCPAck, []byte("anysched reflector probe"))
			var got []byte
			err := b.Client.Do(func() error {
				s, err := testbed.OpenPacketSocket(b.Client.Iface)
				if err != nil {
					return err
				}
				defer s.Close()
				return testbed.WaitFor(time.Now().Add(10*time.Second), func() error {
					if err := s.Send(frame); err != nil {
						return err
					}
					f, err := s.ReceiveMatching(200*time.Millisecond, func(f []byte) bool {
						return len(f) == len(frame) && string(f[12:]) == string(frame[12:])
					})
					if err != nil {
						return err
					}
					got = f
					return nil
				})
			})
			if err != nil {
				t.Fatal(err)
			}
			if [6]byte(got[0:6]) != b.Client.MAC || [6]byte(got[6:12]) != b.Router.MAC {
				t.Errorf("reflected frame dst %x src %x, want dst %x src %x", got[0:6], got[6:12], b.Client.MAC, b.Router.MAC)
			}
			// The reflector counts after Transmit returns, and the frame
			// can reach the client before that: wait for the count.
			if err := testbed.WaitFor(time.Now().Add(5*time.Second), func() error {
				if stats.Reflected.Load() == 0 {
					return errors.New("reflector counted nothing")
				}
				return nil
			}); err != nil {
				t.Error(err)
			}
		})
	}
}

const holdEnv = "AFXDP_TEST_HOLD_NS"

// TestHelperHoldLink is the child of TestProgramGoneAfterSIGKILL: it
// attaches the program in the namespace named by the environment, says so
// on stdout and waits to be killed.
func TestHelperHoldLink(t *testing.T) {
	ns := os.Getenv(holdEnv)
	if ns == "" {
		t.Skip("helper process for TestProgramGoneAfterSIGKILL")
	}
	var p *afxdp.Port
	err := testbed.DoIn(ns, func() (err error) {
		p, err = afxdp.Open(afxdp.Config{Interface: "eth0", VIPs: []netip.AddrPort{netip.MustParseAddrPort("10.200.0.1:443")},
			Ring: afxdp.RingOptions{NumFrames: 256, FillRingSize: 128, CompletionRingSize: 128, RxRingSize: 128, TxRingSize: 128}})
		return err
	})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("attached")
	for range time.Tick(time.Hour) { // until SIGKILL; the link fd dies with the process
		p.Counters()
	}
}

func TestProgramGoneAfterSIGKILL(t *testing.T) {
	b := testbed.New(t, testbed.Options{Nodes: 1})
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldLink$", "-test.count=1")
	cmd.Env = append(os.Environ(), holdEnv+"="+b.Router.NS)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "attached" {
		t.Fatalf("child: %q %v", line, err)
	}
	if !xdpAttached(t, b.Router) {
		t.Fatal("child reports attached but the interface has no XDP program")
	}
	if err := cmd.Process.Signal(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	var attached atomic.Bool
	err = testbed.WaitFor(time.Now().Add(10*time.Second), func() error {
		attached.Store(xdpAttached(t, b.Router))
		if attached.Load() {
			return errors.New("XDP program still attached")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("after SIGKILL of the process holding the link: %v", err)
	}
}

// TestRingAllocatesNothingPerBatch receives real frames from the bed and
// sends or releases them in batches, counting allocations.
func TestRingAllocatesNothingPerBatch(t *testing.T) {
	b := testbed.New(t, testbed.Options{Nodes: 1})
	p := openPortSized(t, b, afxdp.Native, afxdp.RingOptions{})
	const frames = 1024
	err := b.Client.Do(func() error {
		_, err := testbed.Pktgen(context.Background(), testbed.PktgenConfig{
			Iface: b.Client.Iface, SrcMAC: b.Client.MAC, DstMAC: b.Router.MAC,
			Src: b.Client.Addr4, Dst: netip.AddrPortFrom(b.VIP4, 443), Count: frames,
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := testbed.WaitFor(time.Now().Add(10*time.Second), func() error {
		c, err := p.Counters()
		if err != nil {
			return err
		}
		if c[afxdp.CounterRedirected] < frames {
			return fmt.Errorf("%d of %d frames redirected", c[afxdp.CounterRedirected], frames)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	r := p.Rings[0]
	batch := make([]ring.Desc, 16)
	var got, runs int
	allocs := testing.AllocsPerRun(50, func() {
		n, err := r.Receive(batch, 0)
		if err != nil {
			t.Fatal(err)
		}
		got += n
		if runs++; runs%2 == 0 {
			r.Release(batch[:n])
		} else {
			sent, _ := r.Transmit(batch[:n])
			r.Release(batch[sent:n])
		}
		r.Reclaim()
	})
	if allocs != 0 {
		t.Errorf("%v allocations per batch", allocs)
	}
	if got < 50*16 {
		t.Errorf("only %d frames went through the measured batches", got)
	}
	st, err := r.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.BadReleases != 0 || st.KickErrors != 0 || st.BadTransmits != 0 {
		t.Errorf("ring stats %+v", st)
	}

	// Descriptors the kernel would refuse are taken and counted, not sent.
	fs := uint64(r.FrameSize())
	own, err := r.Receive(batch[:3], 1000)
	if err != nil || own != 3 {
		t.Fatalf("Receive = %d, %v", own, err)
	}
	r.Release(batch[:1])
	bad := []ring.Desc{
		{Addr: uint64(len(r.UMEM())), Len: 60},                      // outside the UMEM
		{Addr: batch[1].Addr - batch[1].Addr%fs + fs - 10, Len: 60}, // crosses its frame's end
		{Addr: batch[2].Addr, Len: 0},                               // empty
	}
	n, err := r.Transmit(bad)
	if err != nil || n != len(bad) {
		t.Errorf("Transmit(bad) = %d, %v; want %d, nil", n, err, len(bad))
	}
	if st, _ := r.Stats(); st.BadTransmits != 3 {
		t.Errorf("BadTransmits = %d, want 3", st.BadTransmits)
	}
	if n, err := r.Transmit(nil); n != 0 || err != nil {
		t.Errorf("Transmit(nil) = %d, %v", n, err)
	}
}

// TestMultiQueue opens one socket per RX queue of a two-queue veth and
// reflects through all of them.
func TestMultiQueue(t *testing.T) {
	b := testbed.New(t, testbed.Options{Nodes: 1, RouterQueues: 2})
	var n int
	if err := b.Router.Do(func() (err error) { n, err = afxdp.RxQueueCount(b.Router.Iface); return err }); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("RxQueueCount = %d, want 2", n)
	}
	p := openPort(t, b, afxdp.Native)
	if len(p.Rings) != 2 || p.Rings[0].Queue() != 0 || p.Rings[1].Queue() != 1 {
		t.Fatalf("rings: %d", len(p.Rings))
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	stats := make([]afxdp.ReflectStats, len(p.Rings))
	for i, r := range p.Rings {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := afxdp.Reflect(ctx, r, &stats[i]); err != nil {
				t.Errorf("reflect queue %d: %v", i, err)
			}
		}()
	}
	defer func() { cancel(); wg.Wait() }()
	rx0, _, _ := b.Client.LinkStats()
	err := b.Client.Do(func() error {
		_, err := testbed.Pktgen(context.Background(), testbed.PktgenConfig{
			Iface: b.Client.Iface, SrcMAC: b.Client.MAC, DstMAC: b.Router.MAC,
			Src: b.Client.Addr4, Dst: netip.AddrPortFrom(b.VIP4, 443), Count: 2000, Flows: 512,
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	err = testbed.WaitFor(time.Now().Add(10*time.Second), func() error {
		rx, _, err := b.Client.LinkStats()
		if err != nil {
			return err
		}
		var total uint64
		for i := range stats {
			total += stats[i].Reflected.Load()
		}
		if total == 0 || rx-rx0 < total {
			return fmt.Errorf("reflected %d, client got %d back", total, rx-rx0)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("reflected per queue: %d, %d", stats[0].Reflected.Load(), stats[1].Reflected.Load())
}

// TestExpiringTTLGoesToTheKernel: a VIP frame with TTL 1 is passed, and
// the router's kernel answers with ICMP time exceeded.
func TestExpiringTTLGoesToTheKernel(t *testing.T) {
	b := testbed.New(t, testbed.Options{Nodes: 1})
	if err := b.RouteVIPVia(b.Nodes[0]); err != nil {
		t.Fatal(err)
	}
	p := openPort(t, b, afxdp.Native)
	for _, vip := range []netip.AddrPort{netip.AddrPortFrom(b.VIP4, 443), netip.AddrPortFrom(b.VIP6, 443)} {
		src := b.Client.Addr4
		if vip.Addr().Is6() {
			src = b.Client.Addr6
		}
		frame := testbed.TCPFrame(b.Client.MAC, b.Router.MAC, netip.AddrPortFrom(src, 40002), vip, testbed.TCPSyn, nil)
		testbed.SetTTL(frame, 1)
		err := b.Client.Do(func() error {
			s, err := testbed.OpenPacketSocket(b.Client.Iface)
			if err != nil {
				return err
			}
			defer s.Close()
			return testbed.WaitFor(time.Now().Add(10*time.Second), func() error {
				if err := s.Send(frame); err != nil {
					return err
				}
				_, err := s.ReceiveMatching(300*time.Millisecond, func(f []byte) bool {
					if len(f) < 14+48 || [6]byte(f[6:12]) != b.Router.MAC {
						return false
					}
					switch binary.BigEndian.Uint16(f[12:]) {
					case 0x0800:
						return f[14+9] == 1 && f[14+20] == 11 // ICMP time exceeded
					case 0x86dd:
						return f[14+6] == 58 && f[14+40] == 3 // ICMPv6 time exceeded
					}
					return false
				})
				return err
			})
		})
		if err != nil {
			t.Fatalf("%s: no time exceeded from the router: %v", vip, err)
		}
	}
	c, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c[afxdp.CounterPassTTL] < 2 || c[afxdp.CounterRedirected] != 0 {
		t.Errorf("counters %s: want pass_ttl >= 2 and nothing redirected", fmtCounters(c))
	}
}

func TestOpenRejectsBadConfig(t *testing.T) {
	b := testbed.New(t, testbed.Options{Nodes: 1})
	for _, c := range []struct {
		name string
		cfg  afxdp.Config
		want string
	}{
		{"no such interface", afxdp.Config{Interface: "nosuch0"}, "nosuch0"},
		{"negative queue", afxdp.Config{Interface: "eth0", Queues: []int{-1}}, "queue -1"},
		{"queue twice", afxdp.Config{Interface: "eth0", Queues: []int{0, 0}}, "listed twice"},
		{"queue beyond the device", afxdp.Config{Interface: "eth0", Queues: []int{7}}, "queue 7"},
		{"ring not a power of two", afxdp.Config{Interface: "eth0", Ring: afxdp.RingOptions{RxRingSize: 1000}}, "RxRingSize"},
		{"frame size", afxdp.Config{Interface: "eth0", Ring: afxdp.RingOptions{FrameSize: 1024}}, "FrameSize"},
		{"VIP port 0", afxdp.Config{Interface: "eth0", VIPs: []netip.AddrPort{netip.MustParseAddrPort("10.200.0.1:0")}}, "port 0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := b.Router.Do(func() error {
				p, err := afxdp.Open(c.cfg)
				if err == nil {
					p.Close()
				}
				return err
			})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Open: %v, want an error naming %q", err, c.want)
			}
			if xdpAttached(t, b.Router) {
				t.Fatal("a failed Open left an XDP program behind")
			}
		})
	}
}

// TestDSRThroughAFXDP runs real TCP connections client → VIP → router
// (AF_XDP, destination MAC rewritten to a node's) → node, which answers
// the client directly: the bed carries what the fast path needs.
func TestDSRThroughAFXDP(t *testing.T) {
	b := testbed.New(t, testbed.Options{Nodes: 2})
	node := b.Nodes[1]
	for _, vip := range []netip.AddrPort{netip.AddrPortFrom(b.VIP4, 443), netip.AddrPortFrom(b.VIP6, 443)} {
		l, err := node.Listen("tcp", vip.String())
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Write([]byte("hello from " + node.Role))
				c.Close()
			}
		}()
	}
	p := openPort(t, b, afxdp.Native)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, r := range p.Rings {
		wg.Add(1)
		go func() { // a two-line "fast path": every VIP frame goes to node
			defer wg.Done()
			batch := make([]ring.Desc, 64)
			for ctx.Err() == nil {
				n, err := r.Receive(batch, 20)
				if err != nil {
					t.Error(err)
					return
				}
				for _, d := range batch[:n] {
					f := r.UMEM()[d.Addr : d.Addr+uint64(d.Len)]
					copy(f[0:6], node.MAC[:])
					copy(f[6:12], b.Router.MAC[:])
				}
				sent, err := r.Transmit(batch[:n])
				r.Release(batch[sent:n])
				if err != nil {
					t.Error(err)
					return
				}
				r.Reclaim()
			}
		}()
	}
	defer func() { cancel(); wg.Wait() }()

	for _, vip := range []netip.AddrPort{netip.AddrPortFrom(b.VIP4, 443), netip.AddrPortFrom(b.VIP6, 443)} {
		for i := 0; i < 5; i++ {
			dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
			c, err := b.Client.Dial(dctx, "tcp", vip.String())
			if err != nil {
				dcancel()
				t.Fatalf("connect to %s through the AF_XDP router: %v", vip, err)
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 64)
			n, _ := io.ReadFull(c, buf[:len("hello from ")+len(node.Role)])
			c.Close()
			dcancel()
			if got := string(buf[:n]); got != "hello from "+node.Role {
				t.Fatalf("%s: read %q", vip, got)
			}
		}
	}
	c, _ := p.Counters()
	if c[afxdp.CounterRedirected] == 0 {
		t.Errorf("nothing redirected: %s", fmtCounters(c))
	}
}
