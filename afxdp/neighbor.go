package afxdp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
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
	ns       netns.NsHandle // the namespace it watches, for resubscribing
	table    atomic.Pointer[map[netip.Addr][6]byte]
	onChange func(addr netip.Addr, mac [6]byte, ok bool)
	done     chan struct{}
	closed   sync.Once
	stopped  chan struct{}
	mu       sync.Mutex // serialises table rebuilds

	errs, resubscribes atomic.Uint64
}

// WatchNeighbors subscribes to the neighbour table of ifname in the
// calling thread's network namespace. onChange (may be nil) is called from
// the watcher's goroutine whenever an address gains, changes or loses its
// MAC. When the netlink subscription fails (a full socket buffer loses
// updates) the watcher subscribes again and reconciles its table with a
// fresh dump.
func WatchNeighbors(ifname string, onChange func(addr netip.Addr, mac [6]byte, ok bool)) (*NeighborWatcher, error) {
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("afxdp: interface %q: %w", ifname, err)
	}
	ns, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("afxdp: current network namespace: %w", err)
	}
	w := &NeighborWatcher{
		ifindex:  l.Attrs().Index,
		ns:       ns,
		onChange: onChange,
		done:     make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	empty := map[netip.Addr][6]byte{}
	w.table.Store(&empty)
	updates, err := w.subscribe()
	if err != nil {
		ns.Close()
		return nil, err
	}
	go w.run(updates)
	return w, nil
}

func (w *NeighborWatcher) subscribe() (<-chan netlink.NeighUpdate, error) {
	ch := make(chan netlink.NeighUpdate, 256)
	ns := w.ns
	err := netlink.NeighSubscribeWithOptions(ch, w.done, netlink.NeighSubscribeOptions{
		Namespace:     &ns,
		ListExisting:  true,
		ErrorCallback: func(error) { w.errs.Add(1) },
	})
	if err != nil {
		return nil, fmt.Errorf("afxdp: subscribe to neighbour updates: %w", err)
	}
	return ch, nil
}

func (w *NeighborWatcher) run(updates <-chan netlink.NeighUpdate) {
	defer close(w.stopped)
	defer w.ns.Close()
	for {
		for u := range updates {
			w.handle(u)
		}
		// The subscription ended: Close, or a receive error.
		select {
		case <-w.done:
			return
		default:
		}
		w.resubscribes.Add(1)
		for {
			var err error
			if updates, err = w.subscribe(); err == nil {
				break
			}
			select {
			case <-w.done:
				return
			case <-time.After(time.Second):
			}
		}
		w.forgetVanished()
	}
}

func (w *NeighborWatcher) handle(u netlink.NeighUpdate) {
	if u.LinkIndex != w.ifindex {
		return
	}
	addr, ok := netip.AddrFromSlice(u.IP)
	if !ok {
		return
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

// forgetVanished drops entries that are gone from the kernel's table:
// their deletion may have been among the lost updates. (The new
// subscription's dump brings back everything that still exists.)
func (w *NeighborWatcher) forgetVanished() {
	h, err := netlink.NewHandleAt(w.ns)
	if err != nil {
		w.errs.Add(1)
		return
	}
	defer h.Close()
	neighs, err := h.NeighList(w.ifindex, netlink.FAMILY_ALL)
	if err != nil {
		w.errs.Add(1)
		return
	}
	present := make(map[netip.Addr]bool, len(neighs))
	for i := range neighs {
		if a, ok := netip.AddrFromSlice(neighs[i].IP); ok {
			if _, usable := usableMAC(&neighs[i]); usable {
				present[a.Unmap()] = true
			}
		}
	}
	for addr := range *w.table.Load() {
		if !present[addr] && w.apply(addr, [6]byte{}, false) && w.onChange != nil {
			w.onChange(addr, [6]byte{}, false)
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

// Resubscribes counts how often the netlink subscription failed and was
// renewed.
func (w *NeighborWatcher) Resubscribes() uint64 { return w.resubscribes.Load() }

// Close stops the subscription and waits for the watcher's goroutine.
func (w *NeighborWatcher) Close() {
	w.closed.Do(func() { close(w.done) })
	<-w.stopped
}
