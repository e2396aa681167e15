package e2e

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// legacyLoops runs legacy clients until stop closes: openssl s_client
// and curl, one request (one connection) after another, and held Go
// crypto/tls connections that ask every 250 ms. It counts requests and
// failures by kind.
type legacyLoops struct {
	wg       sync.WaitGroup
	mu       sync.Mutex
	ok       map[string]int
	failures map[string][]string
}

func (l *legacyLoops) record(kind string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.failures[kind] = append(l.failures[kind], err.Error())
		return
	}
	l.ok[kind]++
}

func (l *legacyLoops) broken() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, f := range l.failures {
		n += len(f)
	}
	return n
}

func startLegacyLoops(t *testing.T, e *Env, held int, stop <-chan struct{}) *legacyLoops {
	t.Helper()
	l := &legacyLoops{ok: map[string]int{}, failures: map[string][]string{}}
	loop := func(kind string, once func() error) {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				l.record(kind, once())
			}
		}()
	}
	loop("openssl", func() error { _, err := e.OpenSSL(t, e.VIP(false)); return err })
	loop("curl", func() error { _, err := e.Curl(t, e.VIPURL(true)); return err })
	for i := range held {
		src := netip.Addr{}
		if len(e.Bed.Client.Extra4) > 0 {
			src = e.Bed.Client.Extra4[i%len(e.Bed.Client.Extra4)]
		}
		c, err := e.DialLegacy(t, e.VIP(false), src)
		if err != nil {
			t.Fatalf("held legacy connection: %v", err)
		}
		first, err := c.Get()
		if err != nil {
			t.Fatalf("held legacy connection: %v", err)
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer c.Close()
			tick := time.NewTicker(250 * time.Millisecond) // the client's request rate
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				node, err := c.Get()
				if err == nil && node != first {
					err = fmt.Errorf("held connection %v moved from %s to %s", c.Local, first, node)
				}
				l.record("crypto/tls held", err)
				if err != nil {
					return
				}
			}
		}()
	}
	return l
}

// TestTableChurnBreaksNothing: the router's table changes every 200 ms
// (node weights rewritten and SIGHUP) for 20 s while migrating
// (rendezvous, background) and legacy (anyclient never, crypto/tls,
// openssl, curl) clients run: no connection of either kind breaks, and
// the router's counters show traffic crossing changed slots.
func TestTableChurnBreaksNothing(t *testing.T) {
	e := Start(t, Options{ClientAddrs: 4, Router: RouterConfig{Grace: 2 * time.Second}})
	const (
		duration = 20 * time.Second
		every    = 200 * time.Millisecond
	)
	before := e.Router.Metrics(t)
	capable0, legacy0 := e.AnycastHandshakes(t)
	url := e.VIPURL(false)
	d := duration.String()
	loads := map[string]*Proc{
		"rendezvous": e.StartLoad(t, url, "--policy", "rendezvous", "--connections", "4", "--rate", "12", "--duration", d, "--requests-per-conn", "3"),
		"background": e.StartLoad(t, url, "--policy", "background", "--connections", "4", "--rate", "4", "--duration", d, "--requests-per-conn", "4", "--think", "150ms"),
		"never":      e.StartLoad(t, url, "--policy", "never", "--connections", "4", "--rate", "4", "--duration", d, "--requests-per-conn", "5", "--think", "200ms"),
	}
	const held = 4 // long-lived crypto/tls connections
	stop := make(chan struct{})
	legacy := startLegacyLoops(t, e, held, stop)

	// The churn: every 200 ms each node gets a new weight (1..200).
	var reloads, reloadErrs atomic.Int64
	var maxTransitions float64
	churnDone := make(chan struct{})
	go func() {
		defer close(churnDone)
		tick := time.NewTicker(every)
		defer tick.Stop()
		end := time.Now().Add(duration)
		for now := range tick.C {
			if now.After(end) {
				return
			}
			err := e.Router.ReloadNow(func(c *RouterConfig) {
				c.Weights = map[string]int{}
				for _, n := range e.Nodes {
					c.Weights[n.Name] = 1 + rand.IntN(200)
				}
			})
			reloads.Add(1)
			if err != nil {
				reloadErrs.Add(1)
			}
		}
	}()
	// Meanwhile: the transition sets' size, sampled.
	for sampling := true; sampling; {
		select {
		case <-churnDone:
			sampling = false
		case <-time.After(500 * time.Millisecond): // sampling interval
			maxTransitions = max(maxTransitions, e.Router.Metrics(t).Value("anysched_transition_entries"))
		}
	}
	results := map[string]LoadResult{}
	broken := 0
	for kind, p := range loads {
		res, code := LoadResultOf(t, p)
		results[kind] = res
		broken += res.Broken
		if code != 0 || res.Broken != 0 || res.Connections == 0 {
			t.Errorf("%s load: exit %d, %d of %d connections broken (%v)", kind, code, res.Broken, res.Connections, res.Failures)
		}
	}
	close(stop)
	legacy.wg.Wait()
	if n := legacy.broken(); n != 0 {
		broken += n
		t.Errorf("legacy loops: %d failures: %v", n, legacy.failures)
	}
	if reloadErrs.Load() != 0 {
		t.Errorf("%d of %d reloads failed", reloadErrs.Load(), reloads.Load())
	}
	// Every connection a client meant to open through the VIP, against
	// the handshakes the nodes completed there: more handshakes are
	// connections that died between requests and were redialed unseen.
	meant := held + legacy.ok["openssl"] + legacy.ok["curl"]
	for _, r := range results {
		meant += r.Connections
	}
	capable1, legacy1 := e.AnycastHandshakes(t)
	redials := int(capable1+legacy1-capable0-legacy0) - meant
	if broken == 0 && redials != 0 {
		t.Errorf("the nodes completed %d handshakes on the VIP more than the %d connections the clients opened: connections broken and silently redialed", redials, meant)
	}
	after := e.Router.Metrics(t)
	const transition = `anysched_packets_routed_total{route="transition"}`
	crossed := after.Value(transition) - before.Value(transition)
	generations := after.Value("anysched_table_generation") - before.Value("anysched_table_generation")
	if crossed == 0 || generations == 0 {
		t.Errorf("no traffic crossed a changed slot (transition-routed packets %v, table generations %v): the churn proved nothing", crossed, generations)
	}
	if !e.Router.Running() {
		t.Error("the router exited during the churn")
	}
	mig := results["rendezvous"].Connections + results["background"].Connections
	t.Logf("FIGURE churn: %v of reloads every %v (%d SIGHUPs, %v new tables); %d migrating connections (%d rendezvous, %d background; %d migrated), "+
		"%d legacy (%d anyclient never, openssl %d, curl %d, crypto/tls held %d requests); broken: %d (VIP handshakes beyond the connections opened: %d); "+
		"packets routed by the transition rule (flows on changed slots): %v; transition entries peak %v",
		duration, every, reloads.Load(), generations, mig, results["rendezvous"].Connections, results["background"].Connections,
		results["rendezvous"].Migrated+results["background"].Migrated,
		results["never"].Connections+legacy.ok["openssl"]+legacy.ok["curl"], results["never"].Connections, legacy.ok["openssl"], legacy.ok["curl"],
		legacy.ok["crypto/tls held"], broken, redials, crossed, maxTransitions)
}
