package e2e

import (
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/anysched/anysched/internal/testbed"
)

// TestNodeKilledFailsOver: one anynode is SIGKILLed under load. The
// router's probes mark it down and its slots go to the other nodes (new
// flows stop going to it: the time is measured), while connections on
// the other nodes — migrated and legacy — are unaffected.
func TestNodeKilledFailsOver(t *testing.T) {
	e := Start(t, Options{ClientAddrs: 4, Router: RouterConfig{Grace: time.Second}})
	victim := e.Pools[0][1]
	vip := e.VIP(false)

	migrated := e.startHeldGets(t, 8, "rendezvous", 40, 250*time.Millisecond)
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

	// A steady stream of new flows across the kill.
	stream := e.StartLoad(t, e.VIPURL(false), "--policy", "rendezvous", "--connections", "4", "--rate", "25", "--duration", "5s")
	const series = "anysched_node_new_flows_total"
	if err := testbed.WaitFor(time.Now().Add(failAfter), func() error {
		if e.Router.Metrics(t).ByLabel(series, "node")[victim.Name] == 0 {
			return errNoFlowsYet
		}
		return nil
	}); err != nil {
		t.Fatalf("no new flows reached %s before the kill: %v", victim.Name, err)
	}
	gen := e.Router.Generation(t)
	last := e.Router.Metrics(t).ByLabel(series, "node")[victim.Name]
	// Dense probing from the client: a TCP connection to the VIP every 5
	// ms; one refused is a new flow the router sent to the dead node.
	probeStop := make(chan struct{})
	probeDone := make(chan struct{})
	var refusedTimes []time.Time
	var dials int
	go func() {
		defer close(probeDone)
		e.Bed.Client.Do(func() error {
			tick := time.NewTicker(5 * time.Millisecond) // the probing rate
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-probeStop:
					return nil
				case <-tick.C:
				}
				d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: e.Bed.Client.Extra4[i%4].AsSlice()}}
				c, err := d.Dial("tcp", vip.String())
				dials++
				if err != nil {
					if errors.Is(err, syscall.ECONNREFUSED) {
						refusedTimes = append(refusedTimes, time.Now())
					}
					continue
				}
				c.Close()
			}
		})
	}()
	killed := time.Now()
	victim.Kill()
	// Scrape until the stream ends: when the table first changed, and
	// when the dead node's new-flow counter last moved.
	var rebuilt, lastFlow time.Duration
	scrapes := 0
	for stream.Running() {
		m := e.Router.Metrics(t)
		scrapes++
		since := time.Since(killed)
		if v := m.ByLabel(series, "node")[victim.Name]; v > last {
			last, lastFlow = v, since
		}
		if rebuilt == 0 && m.Value("anysched_table_generation") > gen {
			rebuilt = since
		}
	}
	watched := time.Since(killed)
	close(probeStop)
	<-probeDone
	var lastRefused time.Duration
	for _, at := range refusedTimes {
		lastRefused = max(lastRefused, at.Sub(killed))
	}
	if len(refusedTimes) == 0 {
		t.Errorf("none of %d TCP connections to the VIP after the kill was refused: the dense probe never reached the dead node", dials)
	}
	if rebuilt == 0 {
		t.Fatalf("the router did not rebuild its table in the %v after %s died", watched, victim.Name)
	}
	streamRes, _ := LoadResultOf(t, stream)
	// After the rebuild: no new flow goes to the dead node, none breaks.
	_, byNode := e.NewFlows(t, 40)
	if byNode[victim.Name] != 0 {
		t.Errorf("after the rebuild %v of 40 new flows still went to the dead %s (%v)", byNode[victim.Name], victim.Name, byNode)
	}

	othersBroken, victimsBroken := 0, 0
	for _, p := range migrated {
		code, rs := getResults(t, p)
		ok := code == 0 && len(rs) == 40 && oneConnection(rs)
		switch {
		case migratedOn[p] == victim.Name && !ok:
			victimsBroken++
		case migratedOn[p] != victim.Name && !ok:
			othersBroken++
			p.logTo(t)
			t.Errorf("a migrated connection on %s broke when %s died: exit %d, %d of 40 answers, all on one connection: %v", migratedOn[p], victim.Name, code, len(rs), oneConnection(rs))
		}
	}
	legacyOthers, legacyVictim := 0, 0
	for _, l := range legacy {
		node, err := l.c.Get()
		switch {
		case l.node == victim.Name:
			legacyVictim++
		case err != nil || node != l.node:
			othersBroken++
			t.Errorf("a legacy connection on %s was affected when %s died: %q, %v", l.node, victim.Name, node, err)
		default:
			legacyOthers++
		}
	}
	t.Logf("FIGURE node-loss: %s SIGKILLed; new flows sent to it until %v after the kill (the last of %d refused among %d TCP connects every 5ms; probes every 200ms, down after 3 misses); "+
		"router counters: its new flows last moved %v after (scraped every %v); "+
		"stream of new rendezvous flows across the kill: %d connections, %d broken (those sent to the dead node before the rebuild); after: 0 of 40 new flows to it; "+
		"connections on the other nodes: %d broken (%d legacy kept their node); on the dead node: %d migrated and %d legacy lost",
		victim.Name, lastRefused.Round(time.Millisecond), len(refusedTimes), dials, lastFlow.Round(time.Millisecond), (watched / time.Duration(scrapes)).Round(time.Millisecond), streamRes.Connections, streamRes.Broken,
		othersBroken, legacyOthers, victimsBroken, legacyVictim)
}

type pollError string

func (e pollError) Error() string { return string(e) }

const (
	errNoFlowsYet pollError = "no new flows to the node yet"
)
