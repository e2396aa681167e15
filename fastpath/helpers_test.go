package fastpath

import (
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/anysched/anysched/internal/packettest"
	"github.com/anysched/anysched/sched"
)

var (
	routerMAC = MAC(packettest.RouterMAC)
	vip4      = netip.MustParseAddr("10.200.0.1")
	vip6      = netip.MustParseAddr("fd00:200::1")
)

// testConfig has two nodes with configured MACs (02:..:0a, 02:..:0b), a
// TLS VIP on IPv4 and IPv6 port 443 and a non-TLS VIP on port 80. weightA
// overrides node a's weight (-1: capacity).
func testConfig(t testing.TB, weightA int) *sched.Config {
	t.Helper()
	w := ""
	if weightA >= 0 {
		w = "        weight: " + itoa(weightA) + "\n"
	}
	y := `vips:
  - address: 10.200.0.1
    port: 443
    tls: true
  - address: fd00:200::1
    port: 443
    tls: true
  - address: 10.200.0.1
    port: 80
    tls: false
pools:
  - name: p
    nodes:
      - name: a
        address: 10.201.0.11
        mac: "02:00:00:00:00:0a"
` + w + `      - name: b
        address: 10.201.0.12
        mac: "02:00:00:00:00:0b"
table:
  size: 1009
  seed: "6a1c5e0f3b9d47a2c8e1f05d7b3a9c64"
grace_period: 1s
pins:
  capacity: 4096
  idle_timeout: 1m
transitions:
  capacity: 4096
`
	cfg, err := sched.ParseConfig([]byte(y), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func itoa(n int) string {
	return netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(n)).String()[len("0.0.0.0:"):]
}

// fakeClock is a settable lookup.Now-scale clock.
type fakeClock struct{ t atomic.Int64 }

func (c *fakeClock) now() int64 { return c.t.Load() }

func newTestScheduler(t testing.TB, clk *fakeClock) *sched.Scheduler {
	t.Helper()
	s, err := sched.New(testConfig(t, -1), sched.WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
