package afxdp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Neighbour states whose link-layer address can be used.
const usableNeighState = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY |
	netlink.NUD_PROBE | netlink.NUD_PERMANENT

func neighFamily(addr netip.Addr) int {
	if addr.Unmap().Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

// usableMAC reports the entry's MAC when its state makes it usable.
func usableMAC(n *netlink.Neigh) ([6]byte, bool) {
	var mac [6]byte
	if n.State&usableNeighState == 0 || len(n.HardwareAddr) != 6 {
		return mac, false
	}
	copy(mac[:], n.HardwareAddr)
	return mac, true
}

// NeighborMAC looks addr up in the kernel's neighbour table of interface
// ifname (in the calling thread's network namespace). ok is false when
// there is no usable entry (none, incomplete or failed).
func NeighborMAC(ifname string, addr netip.Addr) (mac [6]byte, ok bool, err error) {
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return mac, false, fmt.Errorf("afxdp: interface %q: %w", ifname, err)
	}
	addr = addr.Unmap()
	neighs, err := netlink.NeighList(l.Attrs().Index, neighFamily(addr))
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return mac, false, fmt.Errorf("afxdp: neighbour table of %s: %w", ifname, err)
	}
	for i := range neighs {
		ip, _ := netip.AddrFromSlice(neighs[i].IP)
		if ip.Unmap() == addr {
			mac, ok = usableMAC(&neighs[i])
			return mac, ok, nil
		}
	}
	return mac, false, nil
}

// NeighborWatcher keeps a copy of one interface's neighbour table,
// refreshed from netlink (RTM_NEWNEIGH / RTM_DELNEIGH) as it changes.
// Lookup is lock-free and safe from any goroutine.
type NeighborWatcher struct {
	ifindex  int
	table    atomic.Pointer[map[netip.Addr][6]byte]
	onChange func(addr netip.Addr, mac [6]byte, ok bool)
	done     chan struct{}
	closed   sync.Once
	stopped  chan struct{}
	mu       sync.Mutex // serialises table rebuilds
	errs     atomic.Uint64
}

// WatchNeighbors subscribes to the neighbour table of ifname in the
// calling thread's network namespace. onChange (may be nil) is called from
// the watcher's goroutine whenever an address gains, changes or loses its
// MAC.
func WatchNeighbors(ifname string, onChange func(addr netip.Addr, mac [6]byte, ok bool)) (*NeighborWatcher, error) {
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("afxdp: interface %q: %w", ifname, err)
	}
	w := &NeighborWatcher{
		ifindex:  l.Attrs().Index,
		onChange: onChange,
		done:     make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	empty := map[netip.Addr][6]byte{}
	w.table.Store(&empty)
	updates := make(chan netlink.NeighUpdate, 256)
	err = netlink.NeighSubscribeWithOptions(updates, w.done, netlink.NeighSubscribeOptions{
		ListExisting:  true,
		ErrorCallback: func(error) { w.errs.Add(1) },
	})
	if err != nil {
		return nil, fmt.Errorf("afxdp: subscribe to neighbour updates: %w", err)
	}
	go w.run(updates)
	return w, nil
}

func (w *NeighborWatcher) run(updates <-chan netlink.NeighUpdate) {
	defer close(w.stopped)
	for u := range updates {
		if u.LinkIndex != w.ifindex {
			continue
		}
		addr, ok := netip.AddrFromSlice(u.IP)
		if !ok {
			continue
		}
		addr = addr.Unmap()
		mac, usable := usableMAC(&u.Neigh)
		if u.Type == unix.RTM_DELNEIGH {
			usable = false
		}
		if w.apply(addr, mac, usable) && w.onChange != nil {
			w.onChange(addr, mac, usable)
		}
	}
}

// apply publishes a new table if the entry changed, and says whether it did.
func (w *NeighborWatcher) apply(addr netip.Addr, mac [6]byte, usable bool) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	old := *w.table.Load()
	cur, had := old[addr]
	if had == usable && (!usable || cur == mac) {
		return false
	}
	next := make(map[netip.Addr][6]byte, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	if usable {
		next[addr] = mac
	} else {
		delete(next, addr)
	}
	w.table.Store(&next)
	return true
}

// Lookup returns the MAC the kernel knows for addr on the interface.
func (w *NeighborWatcher) Lookup(addr netip.Addr) ([6]byte, bool) {
	mac, ok := (*w.table.Load())[addr.Unmap()]
	return mac, ok
}

// Solicit makes the kernel resolve addr (it sends ARP or ND) by sending
// one UDP datagram to its discard port; the watcher sees the answer.
func Solicit(addr netip.Addr) error {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr.Unmap(), 9)))
	if err != nil {
		return fmt.Errorf("afxdp: solicit %s: %w", addr, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte{0}); err != nil {
		return fmt.Errorf("afxdp: solicit %s: %w", addr, err)
	}
	return nil
}

// Close stops the subscription.
func (w *NeighborWatcher) Close() {
	w.closed.Do(func() { close(w.done) })
}
