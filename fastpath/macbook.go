package fastpath

import (
	"sync"
	"sync/atomic"
)

// MACBook holds the MAC addresses of nodes that have none in the config,
// by node ID, as learnt from the kernel's neighbour table. The control
// plane writes it (Set, Forget); workers read an immutable table with one
// atomic load per batch, so a change never blocks or races the fast path.
type MACBook struct {
	mu  sync.Mutex // serializes writers
	cur atomic.Pointer[macTable]
}

type macTable struct {
	entries []macEntry
}

type macEntry struct {
	mac MAC
	ok  bool
}

// NewMACBook returns an empty book.
func NewMACBook() *MACBook {
	b := &MACBook{}
	b.cur.Store(&macTable{})
	return b
}

// Set records node id's MAC address.
func (b *MACBook) Set(id uint16, mac MAC) { b.update(id, mac, true) }

// Forget removes node id's MAC address (its neighbour entry failed).
func (b *MACBook) Forget(id uint16) { b.update(id, MAC{}, false) }

func (b *MACBook) update(id uint16, mac MAC, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := b.cur.Load()
	if int(id) < len(old.entries) && old.entries[id] == (macEntry{mac, ok}) {
		return
	}
	n := max(len(old.entries), int(id)+1)
	t := &macTable{entries: make([]macEntry, n)}
	copy(t.entries, old.entries)
	t.entries[id] = macEntry{mac, ok}
	b.cur.Store(t)
}

// Lookup returns node id's MAC address, if known.
func (b *MACBook) Lookup(id uint16) (MAC, bool) {
	t := b.cur.Load()
	if int(id) < len(t.entries) && t.entries[id].ok {
		return t.entries[id].mac, true
	}
	return MAC{}, false
}
