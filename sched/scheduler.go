package sched

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anysched/anysched/lookup"
)

// Scheduler is the control plane: it keeps the config and every node's
// live status, turns them into weights, builds tables and publishes them
// as Snapshots. Current is safe from any goroutine and never blocks; the
// other methods may block briefly on the control plane's mutex.
type Scheduler struct {
	cur    atomic.Pointer[lookup.Snapshot]
	now    func() int64
	log    *slog.Logger
	client *http.Client
	// onReload runs after each successful Reload, outside mu.
	onReload func(cfg *Config)

	mu          sync.Mutex
	cfg         *Config
	ids         map[string]uint16
	nodes       []*nodeState // by ID
	epoch       uint64       // bumps on every reload; stale worker results are ignored
	gen         uint64
	weights     []uint32 // by ID, of the last build
	lastBuild   int64
	nextRelease int64 // earliest end of a held slot's dwell; 0 when none held
	builds      uint64

	reconf  chan struct{}
	results chan result
}

// Option adjusts a Scheduler.
type Option func(*Scheduler)

// WithClock replaces Now (tests drive time with it).
func WithClock(now func() int64) Option { return func(s *Scheduler) { s.now = now } }

// WithLogger receives the scheduler's log records: node up/down, config
// warnings, reloads (default: none; nil keeps the default).
func WithLogger(log *slog.Logger) Option {
	return func(s *Scheduler) {
		if log != nil {
			s.log = log
		}
	}
}

// WithOnReload registers fn to run after every successful Reload (from
// any caller, WatchConfig included), once the new snapshot is published,
// outside the scheduler's lock: e.g. to update the XDP program's VIP map
// from cfg.VIPs. It may call Current and Status.
func WithOnReload(fn func(cfg *Config)) Option { return func(s *Scheduler) { s.onReload = fn } }

// WithHTTPClient replaces the client that fetches node reports; every
// request is bounded by reports.timeout whatever the client's Timeout.
func WithHTTPClient(c *http.Client) Option { return func(s *Scheduler) { s.client = c } }

type nodeState struct {
	cfg     NodeConfig
	id      uint16
	removed bool

	up           bool
	fails, succs int
	// heldUp counts failed probes that did not take the node down
	// because every probed node was failing at once.
	heldUp     int
	rtt        float64 // EWMA, nanoseconds
	hasRTT     bool
	probes     uint64
	probeFails uint64

	report       Report
	reportAt     int64
	hasReport    bool
	reports      uint64
	reportErrors uint64
	lastErr      string

	score float64
}

// New builds and publishes the first snapshot from cfg. Nodes start up
// (the config says they exist); Run starts probing them.
func New(cfg *Config, opts ...Option) (*Scheduler, error) {
	if cfg == nil {
		return nil, errNoConfig
	}
	s := &Scheduler{
		now:     lookup.Now,
		log:     slog.New(slog.DiscardHandler),
		client:  &http.Client{},
		ids:     map[string]uint16{},
		reconf:  make(chan struct{}, 1),
		results: make(chan result, 64),
	}
	for _, o := range opts {
		o(s)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.applyConfig(cfg); err != nil {
		return nil, err
	}
	s.build(s.computeWeights(s.now()), s.now())
	return s, nil
}

// Current returns the published snapshot: one atomic load, no lock, no
// allocation.
func (s *Scheduler) Current() *lookup.Snapshot { return s.cur.Load() }

// Config returns the config in use.
func (s *Scheduler) Config() *Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

// Reload switches to a new config without a gap: the old snapshot serves
// until the new one is published, nodes keep their IDs and live status
// (unless their address, health port or report URL changed), and slot
// moves follow the transition and dwell rules. table.size and table.seed
// cannot change on reload: that would move every flow at once.
func (s *Scheduler) Reload(cfg *Config) error {
	if cfg == nil {
		return errNoConfig
	}
	if err := s.reload(cfg); err != nil {
		return err
	}
	if s.onReload != nil {
		s.onReload(cfg)
	}
	return nil
}

func (s *Scheduler) reload(cfg *Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cfg.TableSize != s.cfg.TableSize {
		return ConfigErrors{{File: cfg.Path, Field: "table.size", Msg: fmt.Sprintf("cannot change on reload (%d → %d): it would move every flow; restart the router to change it", s.cfg.TableSize, cfg.TableSize)}}
	}
	if cfg.Seed != s.cfg.Seed {
		return ConfigErrors{{File: cfg.Path, Field: "table.seed", Msg: "cannot change on reload: it would move every flow; restart the router to change it"}}
	}
	if err := s.applyConfig(cfg); err != nil {
		return err
	}
	now := s.now()
	s.build(s.computeWeights(now), now)
	select {
	case s.reconf <- struct{}{}:
	default:
	}
	return nil
}

// applyConfig maps the config's nodes onto stable IDs. Caller holds mu.
func (s *Scheduler) applyConfig(cfg *Config) error {
	present := map[string]bool{}
	newIDs := 0
	for pi := range cfg.Pools {
		for _, nc := range cfg.Pools[pi].Nodes {
			present[nc.Name] = true
			if _, ok := s.ids[nc.Name]; !ok {
				newIDs++
			}
		}
	}
	if len(s.nodes)+newIDs >= int(lookup.NoNode) {
		return fmt.Errorf("sched: more than %d distinct node names over this process's life; restart to renumber", lookup.NoNode-1)
	}
	for pi := range cfg.Pools {
		for _, nc := range cfg.Pools[pi].Nodes {
			id, ok := s.ids[nc.Name]
			if !ok {
				id = uint16(len(s.nodes))
				s.ids[nc.Name] = id
				s.nodes = append(s.nodes, &nodeState{id: id, cfg: nc, up: true})
				continue
			}
			st := s.nodes[id]
			old := st.cfg
			st.cfg = nc
			if st.removed || old.Unicast != nc.Unicast || old.HealthPort != nc.HealthPort {
				st.up, st.fails, st.succs, st.hasRTT = true, 0, 0, false
			}
			if st.removed || old.ReportURL != nc.ReportURL || old.Unicast != nc.Unicast {
				st.hasReport = false
			}
			st.removed = false
		}
	}
	for name, id := range s.ids {
		if !present[name] {
			s.nodes[id].removed = true
		}
	}
	s.cfg = cfg
	s.epoch++
	for _, w := range cfg.Warnings {
		s.log.Warn("config", "warning", w)
	}
	return nil
}

// computeWeights derives every node's weight from its status and the
// policy (see the package doc). Caller holds mu.
func (s *Scheduler) computeWeights(now int64) []uint32 {
	cfg := s.cfg
	w := make([]uint32, len(s.nodes))
	eligible := make([]bool, len(s.nodes))
	for _, st := range s.nodes {
		if st.removed {
			continue
		}
		st.score = s.scoreOf(st, now)
		eligible[st.id] = st.up && !st.cfg.Drain && !s.reportDraining(st, now) && baseWeight(&st.cfg) > 0
	}
	switch cfg.Policy {
	case PolicyBestPool:
		best, bestScore := -1, math.Inf(1)
		for pi := range cfg.Pools {
			var sum, capSum float64
			for _, nc := range cfg.Pools[pi].Nodes {
				st := s.nodes[s.ids[nc.Name]]
				if !eligible[st.id] {
					continue
				}
				c := float64(baseWeight(&st.cfg))
				sum += c * st.score
				capSum += c
			}
			if capSum == 0 {
				continue
			}
			if sc := sum / capSum; sc < bestScore {
				best, bestScore = pi, sc
			}
		}
		if best >= 0 {
			for _, nc := range cfg.Pools[best].Nodes {
				id := s.ids[nc.Name]
				if eligible[id] {
					w[id] = baseWeight(&s.nodes[id].cfg)
				}
			}
		}
	case PolicyWeighted:
		for _, st := range s.nodes {
			if !st.removed && eligible[st.id] {
				f := float64(baseWeight(&st.cfg)) * (1 - 0.9*st.score) * 64
				w[st.id] = max(uint32(math.Round(f)), 1)
			}
		}
	}
	return w
}

func baseWeight(nc *NodeConfig) uint32 {
	if nc.HasWeight {
		return nc.Weight
	}
	return nc.Capacity
}

// reportConfidence is how much a report of the given age still counts:
// 1 up to reports.interval, falling linearly to 0 at reports.stale_after.
func (s *Scheduler) reportConfidence(st *nodeState, now int64) float64 {
	if !st.hasReport {
		return 0
	}
	age := float64(now - st.reportAt)
	fresh, stale := float64(s.cfg.Reports.Interval), float64(s.cfg.Reports.StaleAfter)
	switch {
	case age <= fresh:
		return 1
	case age >= stale:
		return 0
	}
	return (stale - age) / (stale - fresh)
}

func (s *Scheduler) reportDraining(st *nodeState, now int64) bool {
	return st.report.Draining && s.reportConfidence(st, now) > 0
}

// scoreOf is the node's score in [0,1], lower is better.
func (s *Scheduler) scoreOf(st *nodeState, now int64) float64 {
	delay := 1.0
	if st.hasRTT {
		delay = min(st.rtt/float64(s.cfg.Score.DelayReference), 1)
	}
	load := 1.0 // unknown is the worst, never the best
	if conf := s.reportConfidence(st, now); conf > 0 {
		load = conf*st.report.load(st.cfg.Capacity) + (1-conf)*1.0
	}
	wd, wl := s.cfg.Score.DelayWeight, s.cfg.Score.LoadWeight
	return (wd*delay + wl*load) / (wd + wl)
}

// closedToNewFlows reports whether the node takes no new flows by rule
// (down, drained by config or by its own report, weight 0), as opposed to
// getting fewer by score.
func (s *Scheduler) closedToNewFlows(st *nodeState, now int64) bool {
	return st.removed || !st.up || st.cfg.Drain || s.reportDraining(st, now) || baseWeight(&st.cfg) == 0
}

// build makes a table from weights, applies the dwell rule against the
// current snapshot and publishes the result. Caller holds mu.
func (s *Scheduler) build(weights []uint32, now int64) {
	cfg := s.cfg
	m := cfg.TableSize
	in := make([]lookup.MaglevNode, 0, len(s.nodes))
	for _, st := range s.nodes {
		if !st.removed && weights[st.id] > 0 {
			in = append(in, lookup.MaglevNode{ID: st.id, Name: st.cfg.Name, Weight: weights[st.id]})
		}
	}
	owners := lookup.BuildMaglev(cfg.Seed.Key(), m, in)
	prev := s.cur.Load()
	grace := int64(cfg.GracePeriod)
	slots := make([]lookup.Slot, m)
	held := 0
	var nextRelease int64
	for i, want := range owners {
		if prev == nil || len(prev.Slots) != len(owners) {
			slots[i] = lookup.Slot{Owner: want, Prev: want}
			continue
		}
		old := prev.Slots[i]
		switch {
		case want == old.Owner:
			slots[i] = old
		case old.Owner == lookup.NoNode || s.nodes[old.Owner].removed:
			// Nothing to protect on the owner: no flow was sent here,
			// or its node is gone. A running transition still
			// protects the previous owner's flows.
			slots[i] = lookup.Slot{Owner: want, Prev: want}
			if now < old.Until && old.Prev != lookup.NoNode && !s.nodes[old.Prev].removed {
				slots[i] = lookup.Slot{Owner: want, Prev: old.Prev, Until: old.Until}
			}
		case now < old.Until && s.closedToNewFlows(s.nodes[old.Owner], now):
			// The owner died, or was drained or taken out, within the
			// dwell time: new flows must not wait for it (a drained
			// node is about to go). The flows whose SYN it got are
			// recorded and keep going to it, and the previous owner's
			// flows stay protected. A move for any other reason
			// (scores, weights) waits for the dwell to end.
			// A new grace period begins: the flows whose SYN it got are
			// now on their first move (their records outlive the old
			// period by G).
			slots[i] = lookup.Slot{Owner: want, Prev: old.Prev, Until: now + grace}
			if old.Prev == lookup.NoNode || s.nodes[old.Prev].removed {
				slots[i].Prev = want
			}
		case now < old.Until:
			// Dwell: the slot moved less than G ago; its flows are
			// still being protected. Move it when that ends.
			slots[i] = old
			held++
			if nextRelease == 0 || old.Until < nextRelease {
				nextRelease = old.Until
			}
		default:
			slots[i] = lookup.Slot{Owner: want, Prev: old.Owner, Until: now + grace}
		}
		owners[i] = slots[i].Owner
	}
	nodes := make([]lookup.Node, len(s.nodes))
	for _, st := range s.nodes {
		nodes[st.id] = lookup.Node{
			ID: st.id, Name: st.cfg.Name, Pool: st.cfg.Pool, Unicast: st.cfg.Unicast,
			MAC: st.cfg.MAC, HasMAC: st.cfg.HasMAC, Weight: weights[st.id],
			Up: st.up, Draining: st.cfg.Drain || s.reportDraining(st, now), Removed: st.removed, Score: st.score,
		}
	}
	for _, o := range owners {
		if o != lookup.NoNode {
			nodes[o].Slots++
		}
	}
	s.gen++
	snap := &lookup.Snapshot{
		Generation: s.gen, BuiltAt: now, VIPs: cfg.VIPs, Nodes: nodes, Slots: slots,
		Grace: grace, PinIdle: int64(cfg.Pins.IdleTimeout), PinIdleAfterRST: int64(cfg.Pins.RSTIdleTimeout), Held: held,
		Digest: lookup.TableDigest(owners, nodes), Key: cfg.Seed.Key(),
	}
	s.weights = weights
	s.lastBuild = now
	s.nextRelease = nextRelease
	s.builds++
	s.cur.Store(snap)
}

// evaluate rebuilds if the weights changed enough (hysteresis) or a held
// slot's dwell ended; force skips the hysteresis (health, drain, reload).
// Caller holds mu.
func (s *Scheduler) evaluate(now int64, force bool) {
	w := s.computeWeights(now)
	switch {
	case force || structuralChange(s.weights, w):
	case s.nextRelease != 0 && now >= s.nextRelease:
	case now-s.lastBuild >= int64(s.cfg.Hysteresis.MinInterval) && shareChange(s.weights, w) > s.cfg.Hysteresis.Threshold:
	default:
		return
	}
	s.build(w, now)
}

// structuralChange: a node gained or lost all its weight, or the node set
// grew.
func structuralChange(old, cur []uint32) bool {
	if len(old) != len(cur) {
		return true
	}
	for i := range old {
		if (old[i] == 0) != (cur[i] == 0) {
			return true
		}
	}
	return false
}

// shareChange is the largest relative change of a node's share of the
// total weight.
func shareChange(old, cur []uint32) float64 {
	var so, sn float64
	for i := range old {
		so += float64(old[i])
		sn += float64(cur[i])
	}
	if so == 0 || sn == 0 {
		return 0
	}
	worst := 0.0
	for i := range old {
		if old[i] == 0 {
			continue
		}
		a, b := float64(old[i])/so, float64(cur[i])/sn
		worst = max(worst, math.Abs(b-a)/a)
	}
	return worst
}

// NodeStatus is a node's live status, for logs, metrics and tools.
type NodeStatus struct {
	ID                   uint16
	Name, Pool           string
	Removed, Up, Drain   bool
	RTT                  time.Duration // EWMA; 0 when not measured
	Probes, ProbeFails   uint64
	HasReport            bool
	ReportAge            time.Duration
	Report               Report
	Reports, ReportFails uint64
	Score                float64
	Weight               uint32
	LastError            string
}

// Status returns every node's live status, by ID.
func (s *Scheduler) Status() []NodeStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	out := make([]NodeStatus, len(s.nodes))
	for _, st := range s.nodes {
		ns := NodeStatus{
			ID: st.id, Name: st.cfg.Name, Pool: st.cfg.Pool, Removed: st.removed, Up: st.up,
			Drain: st.cfg.Drain || s.reportDraining(st, now), Probes: st.probes, ProbeFails: st.probeFails,
			HasReport: st.hasReport, Report: st.report, Reports: st.reports, ReportFails: st.reportErrors,
			Score: s.scoreOf(st, now), LastError: st.lastErr,
		}
		if st.hasRTT {
			ns.RTT = time.Duration(st.rtt)
		}
		if st.hasReport {
			ns.ReportAge = time.Duration(now - st.reportAt)
		}
		if int(st.id) < len(s.weights) {
			ns.Weight = s.weights[st.id]
		}
		out[st.id] = ns
	}
	return out
}

// Run probes every node and fetches its reports, applies the results and
// rebuilds the table under the hysteresis and dwell rules, until ctx ends.
// It restarts its workers after every Reload.
func (s *Scheduler) Run(ctx context.Context) error {
	for {
		wctx, cancel := context.WithCancel(ctx)
		s.mu.Lock()
		tick := s.tickInterval()
		s.startWorkers(wctx)
		s.mu.Unlock()
		t := time.NewTicker(tick)
	loop:
		for {
			select {
			case <-ctx.Done():
				t.Stop()
				cancel()
				return nil
			case <-s.reconf:
				break loop
			case r := <-s.results:
				s.mu.Lock()
				s.apply(r)
				s.mu.Unlock()
			case <-t.C:
				s.mu.Lock()
				s.evaluate(s.now(), false)
				s.mu.Unlock()
			}
		}
		t.Stop()
		cancel()
	}
}

// tickInterval is how often Run re-evaluates without news: often enough
// to release held slots and to notice reports going stale.
func (s *Scheduler) tickInterval() time.Duration {
	d := min(s.cfg.Probe.Interval, s.cfg.Reports.Interval, s.cfg.GracePeriod/4, time.Second)
	return max(d, 5*time.Millisecond)
}

// WatchConfig is the one reload path: it reloads the config file at path
// whenever hup delivers (pass a channel given to signal.Notify for
// SIGHUP; nil for none) and, if poll > 0, when the file's content changes
// (checked every poll). A file that fails to load or validate is logged
// and the running config stays. Every successful reload runs the
// WithOnReload hook. It returns when ctx ends.
func (s *Scheduler) WatchConfig(ctx context.Context, path string, poll time.Duration, hup <-chan os.Signal) error {
	last := s.Config().Source
	var tick <-chan time.Time
	if poll > 0 {
		t := time.NewTicker(poll)
		defer t.Stop()
		tick = t.C
	}
	for {
		forced := false
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
		case <-hup:
			forced = true
		}
		data, err := ReadConfigFile(path) // bounded: a bad reload must not take the router down
		if err != nil {
			s.log.Error("reload failed; keeping the running config", "config", path, "err", err)
			continue
		}
		sum := sha256.Sum256(data)
		if !forced && sum == last {
			continue
		}
		last = sum
		cfg, err := ParseConfig(data, path)
		if err == nil {
			err = s.Reload(cfg)
		}
		if err != nil {
			s.log.Error("reload failed; keeping the running config", "config", path, "err", err)
			continue
		}
		snap := s.Current()
		s.log.Info("config reloaded", "config", path, "generation", snap.Generation, "vips", len(snap.VIPs))
	}
}

// Builds returns how many snapshots have been published.
func (s *Scheduler) Builds() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.builds
}
