package afxdp_test

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anysched/anysched/afxdp"
	"github.com/anysched/anysched/internal/testbed"
)

func TestNeighborMACAndWatcher(t *testing.T) {
	b := testbed.New(t, testbed.Options{Nodes: 2})
	r := b.Router
	n1, n2 := b.Nodes[0], b.Nodes[1]

	// Unknown before anything resolved it.
	err := r.Do(func() error {
		_, ok, err := afxdp.NeighborMAC(r.Iface, n1.Addr4)
		if err != nil {
			return err
		}
		if ok {
			return fmt.Errorf("MAC of %s known before resolution", n1.Addr4)
		}
		_, _, err = afxdp.NeighborMAC("nosuchif0", n1.Addr4)
		if err == nil {
			return fmt.Errorf("unknown interface accepted")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.PingOK(n1.Addr4, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	err = r.Do(func() error {
		mac, ok, err := afxdp.NeighborMAC(r.Iface, n1.Addr4)
		if err != nil || !ok || mac != n1.MAC {
			return fmt.Errorf("NeighborMAC(%s) = %x %v %v, want %x", n1.Addr4, mac, ok, err, n1.MAC)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// The watcher sees existing entries, new ones (v4 and v6) and changes.
	type change struct {
		addr netip.Addr
		mac  [6]byte
		ok   bool
	}
	var mu sync.Mutex
	var changes []change
	var w *afxdp.NeighborWatcher
	err = r.Do(func() (err error) {
		w, err = afxdp.WatchNeighbors(r.Iface, func(a netip.Addr, m [6]byte, ok bool) {
			mu.Lock()
			changes = append(changes, change{a, m, ok})
			mu.Unlock()
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	wait := func(addr netip.Addr, want [6]byte, wantOK bool) {
		t.Helper()
		err := testbed.WaitFor(time.Now().Add(10*time.Second), func() error {
			mac, ok := w.Lookup(addr)
			if ok != wantOK || (ok && mac != want) {
				return fmt.Errorf("Lookup(%s) = %x %v, want %x %v", addr, mac, ok, want, wantOK)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	wait(n1.Addr4, n1.MAC, true)
	for _, a := range []netip.Addr{n2.Addr4, n2.Addr6} {
		if err := r.Do(func() error { return afxdp.Solicit(a) }); err != nil {
			t.Fatal(err)
		}
		wait(a, n2.MAC, true)
	}
	fake := [6]byte{0x02, 0, 0, 0, 0, 0x99}
	if out, err := r.Exec("ip", "neigh", "replace", n2.Addr4.String(), "lladdr", net.HardwareAddr(fake[:]).String(),
		"dev", r.Iface, "nud", "permanent"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	wait(n2.Addr4, fake, true)
	if out, err := r.Exec("ip", "neigh", "del", n2.Addr4.String(), "dev", r.Iface); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	wait(n2.Addr4, [6]byte{}, false)
	mu.Lock()
	defer mu.Unlock()
	if len(changes) < 4 {
		t.Errorf("onChange called %d times: %v", len(changes), changes)
	}
}

// TestNeighborWatcherSurvivesLostUpdates stalls the watcher until the
// kernel drops notifications (the netlink socket buffer overflows), and
// checks it resubscribes and ends with the kernel's table.
func TestNeighborWatcherSurvivesLostUpdates(t *testing.T) {
	b := testbed.New(t, testbed.Options{Nodes: 1})
	r := b.Router
	// 12k notifications overflow any receive buffer up to a few MB.
	out, err := r.Exec("cat", "/proc/sys/net/core/rmem_default")
	var rmem int
	if _, perr := fmt.Sscan(out, &rmem); err != nil || perr != nil {
		t.Fatalf("rmem_default: %v %v %q", err, perr, out)
	}
	if rmem > 4<<20 {
		t.Skipf("net.core.rmem_default = %d: too large to overflow in a test", rmem)
	}
	stall := make(chan struct{})
	var once sync.Once
	var w *afxdp.NeighborWatcher
	err = r.Do(func() (err error) {
		w, err = afxdp.WatchNeighbors(r.Iface, func(netip.Addr, [6]byte, bool) { <-stall })
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	defer once.Do(func() { close(stall) })

	// Flip two entries thousands of times, then delete one and keep one.
	gone, kept := netip.MustParseAddr("10.99.0.200"), netip.MustParseAddr("10.99.0.201")
	keptMAC := [6]byte{2, 0, 0, 0, 0, 0x42}
	var batch strings.Builder
	for i := 0; i < 6000; i++ {
		for _, a := range []netip.Addr{gone, kept} {
			fmt.Fprintf(&batch, "neigh replace %s lladdr 02:00:00:00:%02x:%02x dev %s nud permanent\n", a, i>>8&0xff, i&0xff, r.Iface)
		}
	}
	fmt.Fprintf(&batch, "neigh replace %s lladdr %s dev %s nud permanent\n", kept, net.HardwareAddr(keptMAC[:]), r.Iface)
	fmt.Fprintf(&batch, "neigh del %s dev %s\n", gone, r.Iface)
	cmd := r.Command("ip", "-batch", "-")
	cmd.Stdin = strings.NewReader(batch.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ip -batch: %v %s", err, out)
	}
	once.Do(func() { close(stall) })

	err = testbed.WaitFor(time.Now().Add(20*time.Second), func() error {
		if w.Resubscribes() == 0 {
			return fmt.Errorf("no resubscription yet")
		}
		if mac, ok := w.Lookup(kept); !ok || mac != keptMAC {
			return fmt.Errorf("kept entry: %x %v", mac, ok)
		}
		if _, ok := w.Lookup(gone); ok {
			return fmt.Errorf("deleted entry still known")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
