package daemon

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/anysched/anysched/afxdp"
	"github.com/anysched/anysched/fastpath"
	"github.com/anysched/anysched/lookup"
	"github.com/anysched/anysched/sched"
)

// resolveMACs keeps book filled with the MACs of nodes that have none in
// the config, from the interface's neighbour table; unknown ones are
// solicited. It follows neighbour changes and config reloads.
func resolveMACs(ctx context.Context, iface string, s *sched.Scheduler, book *fastpath.MACBook, log *slog.Logger) (func(), error) {
	need := func() []lookup.Node {
		var out []lookup.Node
		for _, n := range s.Current().Nodes {
			if !n.HasMAC && !n.Removed {
				out = append(out, n)
			}
		}
		return out
	}
	if len(need()) == 0 {
		return func() {}, nil
	}
	var mu sync.Mutex
	apply := func(addr netip.Addr, mac [6]byte, ok bool) {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range need() {
			if n.Unicast != addr {
				continue
			}
			if ok {
				if old, had := book.Lookup(n.ID); !had || old != fastpath.MAC(mac) {
					log.Info("node MAC from the neighbour table", "node", n.Name, "mac", net.HardwareAddr(mac[:]).String())
				}
				book.Set(n.ID, mac)
			} else {
				book.Forget(n.ID)
				log.Warn("node MAC lost from the neighbour table", "node", n.Name)
			}
		}
	}
	watcher, err := afxdp.WatchNeighbors(iface, apply)
	if err != nil {
		return nil, err
	}
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			for _, n := range need() {
				if mac, ok := watcher.Lookup(n.Unicast); ok {
					apply(n.Unicast, mac, true)
				} else if err := afxdp.Solicit(n.Unicast); err != nil {
					log.Debug("solicit", "node", n.Name, "err", err)
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return watcher.Close, nil
}
