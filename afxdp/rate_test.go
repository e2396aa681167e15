package afxdp_test

import (
	"context"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/anysched/anysched/afxdp"
	"github.com/anysched/anysched/internal/testbed"
)

// TestReflectorRate measures the I/O ceiling of the veth bed: the client
// sends TCP SYNs to the VIP with the AF_XDP pktgen, the router reflects
// them, and the client counts what comes back. It reports packets/s and
// asserts only that frames made the round trip (speed is not tested).
// AFXDP_RATE_DURATION (a Go duration, default 1s) sets the burst length.
func TestReflectorRate(t *testing.T) {
	dur := time.Second
	if s := os.Getenv("AFXDP_RATE_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("AFXDP_RATE_DURATION: %v", err)
		}
		dur = d
	}
	b := testbed.New(t, testbed.Options{Nodes: 1})
	p := openPortSized(t, b, afxdp.Native, afxdp.RingOptions{}) // the defaults
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

	rx0, _, err := b.Client.LinkStats()
	if err != nil {
		t.Fatal(err)
	}
	var res testbed.PktgenResult
	err = b.Client.Do(func() (err error) {
		res, err = testbed.Pktgen(context.Background(), testbed.PktgenConfig{
			Iface: b.Client.Iface, SrcMAC: b.Client.MAC, DstMAC: b.Router.MAC,
			Src: b.Client.Addr4, Dst: netip.AddrPortFrom(b.VIP4, 443),
			Duration: dur,
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// Reflected frames still in flight arrive within moments.
	var back uint64
	testbed.WaitFor(time.Now().Add(2*time.Second), func() error {
		rx, _, err := b.Client.LinkStats()
		if err != nil {
			return err
		}
		if rx-rx0 == back && back > 0 {
			return nil // stopped growing
		}
		back = rx - rx0
		return errNotYet
	})
	ps, _ := p.Rings[0].Stats()
	t.Logf("pktgen sent %d frames in %v: %.0f pps", res.Sent, res.Elapsed.Round(time.Millisecond), res.PPS())
	t.Logf("reflector: received %d, reflected %d, released %d, batches %d (%.1f frames/batch); client got back %d (%.0f pps, %.1f%%)",
		stats.Received.Load(), stats.Reflected.Load(), stats.Released.Load(), stats.Batches.Load(),
		float64(stats.Received.Load())/float64(max(1, stats.Batches.Load())),
		back, float64(back)/res.Elapsed.Seconds(), 100*float64(back)/float64(max(1, res.Sent)))
	t.Logf("router socket: %+v", ps)
	if testing.Verbose() && os.Getenv("AFXDP_RATE_DEBUG") != "" {
		for _, h := range []*testbed.Host{b.Client, b.Router} {
			out, _ := h.Exec("ip", "-s", "-s", "link", "show", "dev", h.Iface)
			t.Logf("%s:\n%s", h.Role, out)
		}
		out, _ := testbed.Exec(b.Fabric, "ip", "-s", "link")
		t.Logf("fabric:\n%s", out)
		out, _ = testbed.Exec(b.Fabric, "cat", "/proc/net/softnet_stat")
		t.Logf("softnet:\n%s", out)
	}
	if res.Sent == 0 || stats.Reflected.Load() == 0 || back == 0 {
		t.Fatalf("no round trip: sent %d, reflected %d, back %d", res.Sent, stats.Reflected.Load(), back)
	}
}

type notYet struct{}

func (notYet) Error() string { return "still counting" }

var errNotYet error = notYet{}
