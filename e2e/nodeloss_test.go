package e2e

import (
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anysched/anysched/internal/testbed"
)

// dialOutcome is one TCP connect of denseConnects.
type dialOutcome struct {
	start time.Time
	err   error
}

// denseConnects opens a TCP connection to the VIP every 5 ms from the
// client (each in its own thread, so a black-holed one does not delay
// the next) until the returned stop is called, which returns every
// outcome. A refused or timed-out connect is a new flow the router sent
// to a dead node.
func (e *Env) denseConnects() (stop func() []dialOutcome) {
	vip := e.VIP(false)
	var (
		mu   sync.Mutex
		out  []dialOutcome
		wg   sync.WaitGroup
		done = make(chan struct{})
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(5 * time.Millisecond) // the probing rate
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			src := e.Bed.Client.Addr4
			if n := len(e.Bed.Client.Extra4); n > 0 {
				src = e.Bed.Client.Extra4[i%n]
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				err := e.Bed.Client.Do(func() error {
					d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
					c, err := d.Dial("tcp", vip.String())
					if err != nil {
						return err
					}
					return c.Close()
				})
				mu.Lock()
				out = append(out, dialOutcome{start, err})
				mu.Unlock()
			}()
		}
	}()
	return func() []dialOutcome {
		close(done)
		wg.Wait()
		return out
	}
}

// lastFailed is how long after t0 the last connect that failed as
// wanted started, and how many did.
func lastFailed(outs []dialOutcome, t0 time.Time, want func(error) bool) (time.Duration, int) {
	var last time.Duration
	n := 0
	for _, o := range outs {
		if o.err != nil && want(o.err) && o.start.After(t0) {
			last = max(last, o.start.Sub(t0))
			n++
		}
	}
	return last, n
}

func refused(err error) bool  { return errors.Is(err, syscall.ECONNREFUSED) }
func timedOut(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// TestNodeLossFailsOver: one anynode is SIGKILLed, then another node's
// link goes down, under load. Each time the router's probes mark the
// node down and its slots go to the other nodes — new flows stop going
// to it; the time is measured from the client — while connections on the
// other nodes, migrated and legacy, are unaffected.
func TestNodeLossFailsOver(t *testing.T) {
	e := Start(t, Options{ClientAddrs: 4, Router: RouterConfig{Grace: time.Second}})
	killed, unplugged := e.Pools[0][1], e.Pools[1][0]
	lost := map[string]bool{killed.Name: true, unplugged.Name: true}
	vip := e.VIP(false)

	migrated := e.startHeldGets(t, 8, "rendezvous", 48, 250*time.Millisecond)
	migratedOn := map[*Proc]string{}
	for _, p := range migrated {
		r := firstAnswer(t, p)
		if !r.Migrated {
			t.Fatalf("held client not migrated: %+v", r)
		}
		migratedOn[p] = r.Node
	}
	type heldLegacy struct {
		c    *LegacyConn
		node string
	}
	var legacy []heldLegacy
	for i := range 12 {
		c, err := e.DialLegacy(t, vip, e.Bed.Client.Extra4[i%4])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		node, err := c.Get()
		if err != nil {
			t.Fatal(err)
		}
		legacy = append(legacy, heldLegacy{c, node})
	}

	// A steady stream of new flows across both failures.
	stream := e.StartLoad(t, e.VIPURL(false), "--policy", "rendezvous", "--connections", "4", "--rate", "20", "--duration", "8s")
	const series = "anysched_node_new_flows_total"
	if err := testbed.WaitFor(time.Now().Add(failAfter), func() error {
		by := e.Router.Metrics(t).ByLabel(series, "node")
		if by[killed.Name] == 0 || by[unplugged.Name] == 0 {
			return errNoFlowsYet
		}
		return nil
	}); err != nil {
		t.Fatalf("no new flows reached %s and %s before the failures: %v", killed.Name, unplugged.Name, err)
	}

	// failure runs fail() under dense connects and returns when the last
	// connect that failed as want says started, after fail.
	failure := func(node *Node, fail func(), want func(error) bool) (time.Duration, int, int) {
		stop := e.denseConnects()
		t0 := time.Now()
		fail()
		// Readiness: the dead node gets none of 40 new flows, and none
		// of them breaks.
		if err := testbed.WaitFor(time.Now().Add(failAfter), func() error {
			if _, byNode, broken := e.newFlows(t, 40); byNode[node.Name] != 0 || broken != 0 {
				return errStillSent
			}
			return nil
		}); err != nil {
			t.Fatalf("new flows still go to %s: %v", node.Name, err)
		}
		outs := stop()
		last, n := lastFailed(outs, t0, want)
		if n == 0 {
			t.Errorf("none of %d TCP connects to the VIP after %s failed: the dense connects never reached it", len(outs), node.Name)
		}
		return last, n, len(outs)
	}
	killTime, killFailed, killDials := failure(killed, killed.Kill, refused)
	downTime, downFailed, downDials := failure(unplugged, func() {
		if out, err := unplugged.Host.Exec("ip", "link", "set", unplugged.Host.Iface, "down"); err != nil {
			t.Fatalf("link down on %s: %v %s", unplugged.Name, err, out)
		}
	}, timedOut)
	streamRes, _ := LoadResultOf(t, stream)

	othersBroken, lostMigrated := 0, 0
	for _, p := range migrated {
		code, rs := getResults(t, p)
		ok := code == 0 && len(rs) == 48 && oneConnection(rs)
		switch {
		case lost[migratedOn[p]]:
			if !ok {
				lostMigrated++
			}
		case !ok:
			othersBroken++
			p.logTo(t)
			t.Errorf("a migrated connection on %s broke when other nodes failed: exit %d, %d of 48 answers, all on one connection: %v", migratedOn[p], code, len(rs), oneConnection(rs))
		}
	}
	legacyOthers, lostLegacy := 0, 0
	for _, l := range legacy {
		if lost[l.node] {
			lostLegacy++
			continue
		}
		if node, err := l.c.Get(); err != nil || node != l.node {
			othersBroken++
			t.Errorf("a legacy connection on %s was affected when other nodes failed: %q, %v", l.node, node, err)
			continue
		}
		legacyOthers++
	}
	t.Logf("FIGURE node-loss: new flows kept reaching a dead node for %v after SIGKILL of %s (last of %d refused among %d TCP connects every 5ms) "+
		"and for %v after %s's link went down (last of %d timed out among %d); probes every 200ms with a 200ms timeout, down after 3 misses; "+
		"stream of new rendezvous flows across both: %d connections, %d broken (sent to a dead node before it was marked down); "+
		"connections on the other nodes: %d broken (%d legacy kept their node); on the lost nodes: %d migrated and %d legacy connections lost",
		killTime.Round(time.Millisecond), killed.Name, killFailed, killDials, downTime.Round(time.Millisecond), unplugged.Name, downFailed, downDials,
		streamRes.Connections, streamRes.Broken, othersBroken, legacyOthers, lostMigrated, lostLegacy)
}

type pollError string

func (e pollError) Error() string { return string(e) }

const (
	errNoFlowsYet pollError = "no new flows to the node yet"
	errStillSent  pollError = "new flows still sent to the node"
)
