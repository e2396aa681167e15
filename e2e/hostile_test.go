package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/anysched/anysched/afxdp"
	"github.com/anysched/anysched/internal/testbed"
	"github.com/anysched/anysched/parser"
	"github.com/anysched/anysched/sched"
)

// Hostile-traffic sizes: the floods are what issue 13 asks for, sized so
// the 2-core bed sends them while the legitimate clients run.
const (
	synFloodFrames = 200_000
	// synFloodBudget stops the SYN flood early on a machine too busy to
	// send it in time (it sends about 8-15k SYNs/s on the 2-core bed under
	// load; the figure says how many went).
	synFloodBudget   = 14 * time.Second
	helloFloodFrames = 2 * parser.DefaultReassemblySlots
	// floodWindow bounds the flood frames the router has not yet taken
	// from its RX ring (2048 entries by default), so a flood measures what
	// the router does with the frames, not how many the kernel drops in
	// front of a full ring.
	floodWindow = afxdp.DefaultRingSize / 2
	// countWithin bounds the wait for the router to count a class.
	countWithin = 20 * time.Second
)

// Metric families the test reads; labels it does not know (the router
// may add reasons, verdicts or outcomes) are summed in, never ignored,
// except the XDP verdicts that legitimate traffic produces too.
const (
	mDropped   = "anysched_packets_dropped_total"
	mRouted    = "anysched_packets_routed_total"
	mXDP       = "anysched_xdp_verdicts_total"
	mHellos    = "anysched_clienthellos_total"
	mHelloPins = "anysched_clienthello_pin_changes_total"
	mReceived  = "anysched_packets_received_total"
	mReasm     = "anysched_reassembly_in_use"
)

// decidedOutcomes are the clienthellos_total outcomes of a decided
// ClientHello (the others are hellos held or given up).
var decidedOutcomes = map[string]bool{"seen": true, "migration_support": true, "migration_token": true, "malformed": true}

// xdpNoise are the XDP verdicts the bed's own traffic produces all the
// time (VIP frames redirected; ARP/ND; the router's probes, reports and
// their answers, which are not for a VIP): they cannot tell a hostile
// frame apart, so they are not counted for one.
var xdpNoise = map[string]bool{"redirected": true, "pass_not_vip": true, "pass_non_ip": true}

// rejectedCount is every frame the router refused: any XDP verdict that
// is not noise (malformed, TTL, ...) and every drop reason (parse
// statuses and pipeline drops).
func rejectedCount(m Metrics) float64 {
	n := m.Sum(mDropped)
	for verdict, v := range m.ByLabel(mXDP, "verdict") {
		if !xdpNoise[verdict] {
			n += v
		}
	}
	return n
}

// hostileClass is one class of hostile frames and what the router
// counted for it.
type hostileClass struct {
	name     string
	sent     int
	refused  int // frames the client's kernel would not send (shorter than Ethernet)
	want     *expectation
	counted  string // the router's counters that moved, for the figure
	rejected float64
	routed   float64
	elapsed  time.Duration // from the first frame until the router counted the last
	// peakReasm is the highest reassembly_in_use the class's scrapes saw.
	peakReasm float64
}

// hostileRun sends classes of frames from the client namespace and checks
// that the router counts each.
type hostileRun struct {
	t      *testing.T
	e      *Env
	sender *rawSender
	link   link
	rng    *rand.Rand
}

// send sends frames (all at once: a small class) and waits until the
// router has counted every one of them as the expectation says.
func (h *hostileRun) send(name string, frames [][]byte) *hostileClass {
	h.t.Helper()
	c := &hostileClass{name: name}
	var err error
	if c.want, err = newExpectation(); err != nil {
		h.t.Fatal(err)
	}
	for _, f := range frames {
		c.want.add(f)
	}
	before := h.e.Router.Metrics(h.t)
	start := time.Now()
	n, err := h.sender.send(frames)
	if err != nil {
		h.t.Fatalf("%s: sent %d of %d frames: %v", name, n, len(frames), err)
	}
	c.sent = n
	h.awaitCounted(c, before, true)
	c.elapsed = time.Since(start)
	return c
}

// flood sends n frames made by next, keeping at most floodWindow of them
// in front of the router's fast path (by its received-packets counter),
// then waits until the router has counted them. A non-zero budget stops
// it earlier, after that long (the bed is shared: the legitimate clients
// must outlast the flood); what was sent is what is checked.
func (h *hostileRun) flood(name string, n int, budget time.Duration, strictHello bool, next func() []byte) *hostileClass {
	h.t.Helper()
	c := &hostileClass{name: name}
	var err error
	if c.want, err = newExpectation(); err != nil {
		h.t.Fatal(err)
	}
	before := h.e.Router.Metrics(h.t)
	rx0 := before.Value(mReceived)
	start := time.Now()
	batch := make([][]byte, 0, floodWindow)
	for c.sent < n && (budget == 0 || time.Since(start) < budget) {
		batch = batch[:0]
		for len(batch) < floodWindow && c.sent+len(batch) < n {
			f := next()
			c.want.add(f)
			batch = append(batch, f)
		}
		k, err := h.sender.send(batch)
		c.sent += k
		if err != nil {
			h.t.Fatalf("%s: sent %d of %d frames: %v", name, c.sent, n, err)
		}
		// Wait until the router has taken all but half a window.
		if err := testbed.WaitFor(time.Now().Add(countWithin), func() error {
			m := h.e.Router.Metrics(h.t)
			c.peakReasm = max(c.peakReasm, m.Value(mReasm))
			got := m.Value(mReceived) - rx0
			if behind := float64(c.sent) - got; behind > floodWindow/2 {
				return fmt.Errorf("router received %v of %d %s frames", got, c.sent, name)
			}
			return nil
		}); err != nil {
			h.t.Fatalf("%s: %v", name, err)
		}
	}
	h.awaitCounted(c, before, strictHello)
	c.elapsed = time.Since(start)
	return c
}

// awaitCounted waits until the router's counters have moved by at least
// what the class's expectation says (legitimate traffic only adds to
// them): the refused frames in rejectedCount, the forwarded ones in
// routed, every frame in one of the two (first fragments may be either),
// the SYNs, and the ClientHello outcomes. strictHello checks the
// decided hellos and pins as well (a class small enough that the router's
// reassembler has room, as the expectation's has).
func (h *hostileRun) awaitCounted(c *hostileClass, before Metrics, strictHello bool) {
	h.t.Helper()
	x := c.want
	var after Metrics
	err := testbed.WaitFor(time.Now().Add(countWithin), func() error {
		after = h.e.Router.Metrics(h.t)
		c.peakReasm = max(c.peakReasm, after.Value(mReasm))
		c.rejected = rejectedCount(after) - rejectedCount(before)
		c.routed = after.Sum(mRouted) - before.Sum(mRouted)
		hellos := func(o string) float64 {
			s := fmt.Sprintf(`%s{outcome=%q}`, mHellos, o)
			return after.Value(s) - before.Value(s)
		}
		// Undecided hellos: "partial", or whatever finer outcomes the
		// router splits it into; every outcome but the decided ones.
		undecided := 0.0
		prev := before.ByLabel(mHellos, "outcome")
		for o, v := range after.ByLabel(mHellos, "outcome") {
			if !decidedOutcomes[o] {
				undecided += v - prev[o]
			}
		}
		pins := after.Value(mHelloPins+`{change="pin"}`) - before.Value(mHelloPins+`{change="pin"}`)
		syn := after.Value(mRouted+`{route="syn"}`) - before.Value(mRouted+`{route="syn"}`)
		var short []string
		check := func(what string, got float64, want int) {
			if got < float64(want) {
				short = append(short, fmt.Sprintf("%s %v < %d", what, got, want))
			}
		}
		check("refused", c.rejected, x.rejected())
		check("forwarded", c.routed, x.forwarded())
		check("refused or forwarded", c.rejected+c.routed, c.sent)
		check("SYNs", syn, x.syns)
		check("undecided hellos", undecided, x.helloPartial())
		check("malformed hellos", hellos("malformed"), x.byVerdict[parser.VerdictMalformed])
		if strictHello {
			decided := x.byVerdict[parser.VerdictComplete] + x.byVerdict[parser.VerdictMalformed] + x.byVerdict[parser.VerdictUnknown]
			check("decided hellos", hellos("seen"), decided)
			check("hello pins", pins, x.helloPins())
		}
		if len(short) > 0 {
			return errors.New(strings.Join(short, ", "))
		}
		return nil
	})
	c.counted = hostileDiff(before, after)
	if err != nil {
		h.t.Errorf("%s: %d frames sent (expected by the router's parser: %s), the router did not count them: %v; its counters that moved:\n%s",
			c.name, c.sent, x, err, c.counted)
	}
}

// hostileDiff lists the router's counters that a class moved, except the
// per-node, byte and batch ones, as "series +delta".
func hostileDiff(before, after Metrics) string {
	var out []string
	for s, v := range after {
		d := v - before[s]
		if d == 0 || strings.Contains(s, "node_") || strings.Contains(s, "bytes") || strings.Contains(s, "batch") ||
			strings.HasPrefix(s, "go_") || strings.HasPrefix(s, "process_") || strings.HasPrefix(s, "promhttp") {
			continue
		}
		out = append(out, fmt.Sprintf("%s %+v", strings.TrimPrefix(s, "anysched_"), d))
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// procMemory reads VmRSS and VmHWM (bytes) of pid.
func procMemory(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("/proc/%d/status: %q", pid, sc.Text())
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, err
		}
		if k == "VmRSS" {
			rss = n << 10
		} else {
			hwm = n << 10
		}
	}
	if rss == 0 || hwm == 0 {
		return 0, 0, fmt.Errorf("/proc/%d/status: no VmRSS/VmHWM", pid)
	}
	return rss, hwm, nil
}

// rssBound is what anysched may hold at most: what it held when ready,
// plus all of its preallocated per-packet state touched (UMEM frames, the
// reassembler's buffers, pin and transition tables at capacity), plus
// rssMargin for the Go heap the metrics scrapes use.
func rssBound(ready int64, pinCapacity float64, workers int) (int64, string) {
	const rssMargin = 48 << 20
	entry := int64(unsafe.Sizeof(parser.FlowKey{})) + 8 + 8 + 4 // key, node, deadline, tag
	umem := int64(afxdp.DefaultNumFrames * afxdp.DefaultFrameSize)
	reasm := int64(parser.DefaultReassemblySlots) * (int64(parser.DefaultReassemblyBytes) + 128)
	tables := (int64(pinCapacity) + int64(workers)*int64(sched.DefaultTransitionCapacity)) * entry
	state := int64(workers)*(umem+reasm) + tables
	return ready + state + rssMargin, fmt.Sprintf("ready %s + state %s (UMEM %s, reassembler %s, pins+transitions %s) + margin %s",
		mib(ready), mib(state), mib(umem), mib(reasm), mib(tables), mib(rssMargin))
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// curlLoop runs curl against the VIPs (IPv4 and IPv6 in turn), one
// request after another, until stop closes.
type curlLoop struct {
	wg       sync.WaitGroup
	mu       sync.Mutex
	ok       int
	failures []string
}

func startCurlLoop(t *testing.T, e *Env, stop <-chan struct{}) *curlLoop {
	l := &curlLoop{}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_, err := e.Curl(t, e.VIPURL(i%2 == 1))
			l.mu.Lock()
			if err != nil {
				l.failures = append(l.failures, err.Error())
			} else {
				l.ok++
			}
			l.mu.Unlock()
		}
	}()
	return l
}

// TestHostileTrafficAtTheVIP: while migrating (rendezvous, background)
// and legacy (anyclient --policy never, curl) clients run through the
// VIPs, the client namespace sends hostile frames at them: headers cut at
// every byte, IPv4 fragments, long IPv6 extension-header chains, garbage
// TLS records on established-looking flows, ClientHellos in three
// segments sent last-first after the SYN, a flood of SYNs from random
// sources and a flood of first segments of large ClientHellos (more than
// the reassembler has slots). The router must count every class (by the
// outcome its own parser and reassembler give each frame), its RSS must
// stay below what its preallocated state accounts for, it must still run
// and serve, and no legitimate connection may break.
func TestHostileTrafficAtTheVIP(t *testing.T) {
	e := Start(t, Options{})
	r := e.Router
	// The fabric is a plain switch: a bridge that hands IP frames to
	// netfilter checks their headers and drops the broken ones before
	// they reach the router, which a real L2 fabric does not.
	for _, k := range []string{"bridge-nf-call-iptables", "bridge-nf-call-ip6tables"} {
		path := "/proc/sys/net/bridge/" + k
		err := testbed.DoIn(e.Bed.Fabric, func() error {
			if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
				return nil // no br_netfilter: nothing filters
			}
			return os.WriteFile(path, []byte("0"), 0)
		})
		if err != nil {
			t.Fatalf("fabric %s: %v", k, err)
		}
	}
	pid := r.Cmd.Process.Pid
	readyRSS, _, err := procMemory(pid)
	if err != nil {
		t.Fatal(err)
	}
	hello, err := largeClientHello()
	if err != nil {
		t.Fatalf("a large ClientHello: %v", err)
	}
	seed := rand.Uint64()
	t.Logf("hostile frames from seed %#x", seed)
	sender, err := openRawSender(e.Bed.Client)
	if err != nil {
		t.Fatal(err)
	}
	defer sender.close()
	h := &hostileRun{t: t, e: e, sender: sender, rng: rand.New(rand.NewPCG(seed, 13)),
		link: link{src: e.Bed.Client.MAC, dst: e.Bed.Router.MAC}}

	// The legitimate clients, for longer than the hostile traffic takes.
	capable0, legacy0 := e.AnycastHandshakes(t)
	const legitFor = 26 * time.Second
	d := legitFor.String()
	url := e.VIPURL(false)
	loads := map[string]*Proc{
		"rendezvous": e.StartLoad(t, url, "--policy", "rendezvous", "--connections", "4", "--rate", "10", "--duration", d, "--requests-per-conn", "3"),
		"background": e.StartLoad(t, url, "--policy", "background", "--connections", "4", "--rate", "4", "--duration", d, "--requests-per-conn", "4", "--think", "150ms"),
		"never":      e.StartLoad(t, url, "--policy", "never", "--connections", "4", "--rate", "4", "--duration", d, "--requests-per-conn", "5", "--think", "200ms"),
	}
	legitEnd := time.Now().Add(legitFor)
	stop := make(chan struct{})
	curls := startCurlLoop(t, e, stop)

	// RSS, sampled while the traffic runs (VmHWM has the true peak).
	var peakRSS int64
	var rssMu sync.Mutex
	sampling := make(chan struct{})
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		tick := time.NewTicker(100 * time.Millisecond) // sampling interval
		defer tick.Stop()
		for {
			select {
			case <-sampling:
				return
			case <-tick.C:
			}
			if rss, _, err := procMemory(pid); err == nil {
				rssMu.Lock()
				peakRSS = max(peakRSS, rss)
				rssMu.Unlock()
			}
		}
	}()

	vip4, vip6 := e.VIP(false), e.VIP(true)
	hostileStart := time.Now()
	startM := r.Metrics(t)
	var classes []*hostileClass
	trunc, short := h.link.truncatedFrames(randomSource4(h.rng), vip4, randomSource6(h.rng), vip6)
	refused := 0
	for _, f := range short {
		if sender.sock.Send(f) != nil {
			refused++
		}
	}
	c := h.send("truncated", trunc)
	c.refused = refused
	classes = append(classes, c)
	classes = append(classes, h.send("ipv4_fragments", h.link.fragmentFrames(randomSource4(h.rng), vip4, hello, 16)))
	classes = append(classes, h.send("ipv6_ext_chains", h.link.extChainFrames(randomSource6(h.rng), vip6, 8)))
	classes = append(classes, h.send("garbage_tls", h.link.garbageTLSFrames(h.rng, vip4, hello, 24)))
	classes = append(classes, h.send("hello_3_segments_reordered", h.link.reorderedHelloFrames(h.rng, vip4, hello, 64)))
	synFlood := h.flood("syn_flood", synFloodFrames, synFloodBudget, true, func() []byte {
		return h.link.tcpFrame(randomSource4(h.rng), vip4, tcpFlagsSYN, h.rng.Uint32(), 0, synOptions, nil)
	})
	classes = append(classes, synFlood)
	first := hello[:1400]
	helloFlood := h.flood("hello_first_segments", helloFloodFrames, 0, false, func() []byte {
		return h.link.tcpFrame(randomSource4(h.rng), vip4, tcpFlagsData, h.rng.Uint32(), 1, nil, first)
	})
	classes = append(classes, helloFlood)
	// The flood filled the reassembler: every slot held a flood hello (the
	// bed's router has one worker, so one reassembler).
	reasmFull := helloFlood.peakReasm
	if reasmFull < parser.DefaultReassemblySlots {
		t.Errorf("during %d first segments of ClientHellos: at most %v reassembly slots in use; want all %d", helloFloodFrames, reasmFull, parser.DefaultReassemblySlots)
	}
	hostileDone := time.Now()
	hostileFor := hostileDone.Sub(hostileStart)
	if hostileDone.After(legitEnd) {
		t.Errorf("the hostile traffic took until %v after the legitimate clients stopped: part of it ran with no one to break", hostileDone.Sub(legitEnd))
	}

	// The legitimate clients.
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
	curls.wg.Wait()
	if len(curls.failures) > 0 || curls.ok == 0 {
		broken += len(curls.failures)
		t.Errorf("curl: %d ok, %d failed: %v", curls.ok, len(curls.failures), curls.failures)
	}

	// Still running and serving.
	if !r.Running() {
		t.Fatalf("anysched exited (%s)", r.state())
	}
	if _, err := httpGet(e.Bed.Router, "http://"+RouterMetrics+"/ready"); err != nil {
		t.Errorf("anysched /ready after the hostile traffic: %v", err)
	}
	got := e.Get(t, "--policy", "rendezvous", e.VIPURL(true))
	if res := got[len(got)-1]; res.Status != 200 || !res.Migrated {
		t.Errorf("a rendezvous client after the hostile traffic: %+v; want served and migrated", res)
	}
	if _, err := e.Curl(t, e.VIPURL(false)); err != nil {
		t.Errorf("curl after the hostile traffic: %v", err)
	}
	// Every connection a client meant to open through the VIP (the two
	// after the traffic included), against the handshakes the nodes
	// completed there: more handshakes are connections that died between
	// requests and were redialed unseen (anyclient's transport redials).
	meant := curls.ok + 2
	for _, res := range results {
		meant += res.Connections
	}
	capable1, legacy1 := e.AnycastHandshakes(t)
	redials := int(capable1+legacy1-capable0-legacy0) - meant
	if broken == 0 && redials != 0 {
		t.Errorf("the nodes completed %d handshakes on the VIP more than the %d connections the clients opened: connections broken and silently redialed", redials, meant)
	}

	close(sampling)
	<-samplerDone
	_, hwm, err := procMemory(pid)
	if err != nil {
		t.Fatal(err)
	}
	final := r.Metrics(t)
	// One worker: the bed's router interface has one RX queue.
	bound, boundWhy := rssBound(readyRSS, final.Value("anysched_pin_capacity"), 1)
	if hwm > bound {
		t.Errorf("anysched peak RSS (VmHWM) %s; want at most %s: %s", mib(hwm), mib(bound), boundWhy)
	}

	var byClass []string
	for _, c := range classes {
		s := fmt.Sprintf("%s %d: refused %v (parser: %d), forwarded %v (%d)", c.name, c.sent, c.rejected, c.want.rejected(), c.routed, c.want.forwarded())
		if c.refused > 0 {
			s += fmt.Sprintf(" + %d under 14 bytes the kernel would not send", c.refused)
		}
		byClass = append(byClass, s)
		t.Logf("class %s: %d frames; expected by the router's parser: %s; router counters: %s", c.name, c.sent, c.want, c.counted)
	}
	mig := results["rendezvous"].Connections + results["background"].Connections
	// Nodes the router's probes found down meanwhile: none is, so each is
	// a probe that timed out while the router was busy with the flood.
	falseDown := strings.Count(r.Stderr.String(), `msg="node down"`)
	// Evictions by table: from the family with a table label when the
	// router has it, else from the family of that table.
	evicted := func(family, table string) float64 {
		const byTable = "anysched_flow_table_evictions_total"
		if now := final.ByLabel(byTable, "table"); len(now) > 0 {
			return now[table] - startM.ByLabel(byTable, "table")[table]
		}
		return final.Sum(family) - startM.Sum(family)
	}
	// Of the pin evictions, those of flows that were still talking (a
	// router with segmented tables tells them apart).
	protectedEvicted := "not told apart"
	if len(final.ByLabel("anysched_flow_table_evictions_total", "segment")) > 0 {
		const ps = `anysched_flow_table_evictions_total{segment="protected",table="pin"}`
		protectedEvicted = fmt.Sprint(final.Value(ps) - startM.Value(ps))
	}
	t.Logf("FIGURE hostile: %v of hostile traffic, by class (frames sent: router counts, what its parser expects; forwarded includes legitimate traffic): %s; "+
		"reassembler full (%v slots) during the hello flood; floods: SYN %d frames (of %d; budget %v) in %v, hello %d in %v; "+
		"anysched RSS ready %s, peak %s (VmHWM; sampled VmRSS peak %s; bound %s); "+
		"during it: %v table generations, %d nodes marked down by probes that timed out, %v pin (of talking flows: %s) and %v transition-record evictions; reassembly slots in use at the end %v; "+
		"legitimate: %d migrating (%d migrated), %d anyclient never, %d curl; broken = %d (VIP handshakes beyond the connections opened: %d)",
		hostileFor.Round(time.Millisecond), strings.Join(byClass, "; "),
		reasmFull, synFlood.sent, synFloodFrames, synFloodBudget, synFlood.elapsed.Round(time.Millisecond), helloFlood.sent, helloFlood.elapsed.Round(time.Millisecond),
		mib(readyRSS), mib(hwm), mib(peakRSS), mib(bound),
		final.Value("anysched_table_generation")-startM.Value("anysched_table_generation"), falseDown,
		evicted("anysched_pin_evictions_total", "pin"), protectedEvicted, evicted("anysched_transition_evictions_total", "transition"), final.Value(mReasm),
		mig, results["rendezvous"].Migrated+results["background"].Migrated, results["never"].Connections, curls.ok, broken, redials)
}
