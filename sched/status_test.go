package sched

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/anysched/anysched/lookup"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond) // polling interval, not a readiness wait
	}
}

func statusOf(s *Scheduler, name string) NodeStatus {
	for _, st := range s.Status() {
		if st.Name == name {
			return st
		}
	}
	return NodeStatus{}
}

func nodeOf(snap *lookup.Snapshot, name string) *lookup.Node {
	for i := range snap.Nodes {
		if snap.Nodes[i].Name == name {
			return &snap.Nodes[i]
		}
	}
	return nil
}

func runScheduler(t *testing.T, yaml string) *Scheduler {
	t.Helper()
	cfg, err := ParseConfig([]byte(yaml), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, WithLogger(slog.New(slog.NewTextHandler(t.Output(), nil))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

const fastTimers = `probe:
  interval: 20ms
  timeout: 15ms
  down_after: 2
  up_after: 2
reports:
  interval: 20ms
  timeout: 15ms
  stale_after: 200ms
hysteresis:
  min_interval: 0s
grace_period: 50ms
`

// A node whose health port stops answering goes down after k failed
// probes, loses its slots, and comes back after r successful ones.
func TestProbeFailureAndRecovery(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	go acceptAll(ln)
	y := fmt.Sprintf(`vips: [{address: 10.200.0.1}]
table: {size: 1009, seed: 6a1c5e0f3b9d47a2c8e1f05d7b3a9c64}
policy: weighted
pools:
  - name: p
    nodes:
      - {name: up, address: 127.0.0.1, health_port: %d}
      - {name: static, address: 127.0.0.2}
`, addr.Port) + fastTimers
	s := runScheduler(t, y)
	waitFor(t, "two successful probes", func() bool { st := statusOf(s, "up"); return st.Probes >= 2 && st.Up && st.RTT > 0 })

	ln.Close()
	waitFor(t, "the node to go down", func() bool { return !statusOf(s, "up").Up })
	if st := statusOf(s, "up"); st.ProbeFails < 2 || st.LastError == "" {
		t.Fatalf("status after going down: %+v", st)
	}
	waitFor(t, "a snapshot without the node", func() bool { n := nodeOf(s.Current(), "up"); return !n.Up && n.Slots == 0 })
	if n := nodeOf(s.Current(), "static"); n.Slots != 1009 {
		t.Fatalf("the other node has %d slots", n.Slots)
	}

	// The listener comes back on the same port.
	var ln2 net.Listener
	waitFor(t, "the port to be free again", func() bool {
		ln2, err = net.Listen("tcp", addr.String())
		return err == nil
	})
	defer ln2.Close()
	go acceptAll(ln2)
	waitFor(t, "the node to come back", func() bool { n := nodeOf(s.Current(), "up"); return n.Up && n.Slots > 0 })
}

// When every probed node fails at once, the router suspects itself (a
// starved prober, its own link) and keeps them up; when one recovers, the
// others' failures are theirs again and they go down.
func TestEveryNodeFailingAtOnceIsTheRoutersProblem(t *testing.T) {
	var lns []net.Listener
	nodes := ""
	for i := range 3 {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:0", i+1))
		if err != nil {
			t.Fatal(err)
		}
		go acceptAll(ln)
		lns = append(lns, ln)
		nodes += fmt.Sprintf("      - {name: n%d, address: 127.0.0.%d, health_port: %d}\n", i, i+1, ln.Addr().(*net.TCPAddr).Port)
	}
	y := `vips: [{address: 10.200.0.1}]
table: {size: 1009, seed: 6a1c5e0f3b9d47a2c8e1f05d7b3a9c64}
policy: weighted
pools:
  - name: p
    nodes:
` + nodes + fastTimers
	s := runScheduler(t, y)
	waitFor(t, "every node probed", func() bool {
		for i := range 3 {
			if st := statusOf(s, fmt.Sprintf("n%d", i)); st.Probes < 2 || !st.Up {
				return false
			}
		}
		return true
	})
	for _, ln := range lns {
		ln.Close()
	}
	waitFor(t, "every node to fail twice its down_after", func() bool {
		for i := range 3 {
			if st := statusOf(s, fmt.Sprintf("n%d", i)); st.ProbeFails < 4 {
				return false
			}
		}
		return true
	})
	for i := range 3 {
		if st := statusOf(s, fmt.Sprintf("n%d", i)); !st.Up {
			t.Fatalf("n%d went down while every node was failing at once: %+v", i, st)
		}
	}
	// n0 answers again: n1 and n2 are failing on their own now.
	addr := lns[0].Addr().String()
	var back net.Listener
	waitFor(t, "n0's port to be free again", func() bool {
		var err error
		back, err = net.Listen("tcp", addr)
		return err == nil
	})
	defer back.Close()
	go acceptAll(back)
	waitFor(t, "n1 and n2 to go down", func() bool { return !statusOf(s, "n1").Up && !statusOf(s, "n2").Up })
	if !statusOf(s, "n0").Up {
		t.Fatal("n0 went down")
	}
}

func acceptAll(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

// reportServer serves load reports in a mode the test switches.
type reportServer struct {
	mode atomic.Value // string
	hits atomic.Int64
}

func (rs *reportServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rs.hits.Add(1)
	switch rs.mode.Load().(string) {
	case "good":
		fmt.Fprint(w, `{"node":"n1","active_connections":30,"capacity":100,"cpu":0.2,"extra":"ignored"}`)
	case "draining":
		fmt.Fprint(w, `{"active_connections":30,"cpu":0.2,"draining":true}`)
	case "malformed":
		fmt.Fprint(w, `{"active_connections":`)
	case "missing-field":
		fmt.Fprint(w, `{"active_connections":3}`)
	case "out-of-range":
		fmt.Fprint(w, `{"active_connections":3,"cpu":7}`)
	case "wrong-node":
		fmt.Fprint(w, `{"node":"n9","active_connections":3,"cpu":0.1}`)
	case "huge":
		w.Write([]byte(`{"active_connections":1,"cpu":0.1,"pad":"`))
		w.Write([]byte(strings.Repeat("x", MaxReportSize)))
		w.Write([]byte(`"}`))
	case "404":
		http.NotFound(w, r)
	case "slow":
		// Hold the answer until the scheduler gives up (its timeout).
		<-r.Context().Done()
	}
}

func TestReports(t *testing.T) {
	rs := &reportServer{}
	rs.mode.Store("good")
	srv := httptest.NewServer(rs)
	defer srv.Close()
	y := fmt.Sprintf(`vips: [{address: 10.200.0.1}]
table: {size: 1009, seed: 6a1c5e0f3b9d47a2c8e1f05d7b3a9c64}
policy: weighted
pools:
  - name: p
    nodes:
      - {name: n1, address: 127.0.0.1, report: "%s/load"}
      - {name: n2, address: 127.0.0.2}
`, srv.URL) + fastTimers
	s := runScheduler(t, y)
	waitFor(t, "a good report", func() bool { return statusOf(s, "n1").HasReport })
	st := statusOf(s, "n1")
	if st.Report.ActiveConnections != 30 || st.Report.CPU != 0.2 || st.Report.Capacity != 100 {
		t.Fatalf("report %+v", st.Report)
	}
	// n1 reports load 0.3, n2 nothing (unknown = 1): n1 scores better.
	if n2 := statusOf(s, "n2"); !(st.Score < n2.Score) {
		t.Fatalf("reporting node score %v, silent node %v", st.Score, n2.Score)
	}

	for _, mode := range []string{"malformed", "missing-field", "out-of-range", "wrong-node", "huge", "404", "slow"} {
		before := statusOf(s, "n1").ReportFails
		rs.mode.Store(mode)
		waitFor(t, "a failed report in mode "+mode, func() bool { return statusOf(s, "n1").ReportFails >= before+2 })
		st := statusOf(s, "n1")
		if st.LastError == "" {
			t.Fatalf("mode %s: no error recorded", mode)
		}
		t.Logf("%s: %s", mode, st.LastError)
		rs.mode.Store("good")
		waitFor(t, "a good report after "+mode, func() bool { return statusOf(s, "n1").ReportAge < 15*time.Millisecond })
	}

	// A node that says it drains gets no new flows.
	rs.mode.Store("draining")
	waitFor(t, "the drain to take effect", func() bool { n := nodeOf(s.Current(), "n1"); return n.Draining && n.Slots == 0 })
	rs.mode.Store("good")
	waitFor(t, "the node to be back", func() bool { return nodeOf(s.Current(), "n1").Slots > 0 })

	// A node that stops answering decays to unknown.
	rs.mode.Store("slow")
	waitFor(t, "the report to go stale", func() bool {
		st := statusOf(s, "n1")
		return st.ReportAge > 200*time.Millisecond && st.Score == statusOf(s, "n2").Score
	})
}

// A stale report decays towards the worst load, never towards the best.
func TestReportDecay(t *testing.T) {
	var now int64 = int64(time.Hour)
	cfg, err := ParseConfig([]byte(`vips: [{address: 10.200.0.1}]
table: {size: 1009, seed: 6a1c5e0f3b9d47a2c8e1f05d7b3a9c64}
reports: {interval: 1s, timeout: 500ms, stale_after: 5s}
score: {delay_weight: 0, load_weight: 1}
pools:
  - {name: a, nodes: [{name: a1, address: 10.201.0.11}]}
  - {name: b, nodes: [{name: b1, address: 10.201.0.21}]}
`), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, WithClock(func() int64 { return now }))
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, b := s.nodes[0], s.nodes[1]
	a.report, a.reportAt, a.hasReport = Report{CPU: 0}, now, true
	b.report, b.reportAt, b.hasReport = Report{CPU: 0.5}, now, true
	w := s.computeWeights(now)
	if w[0] == 0 || w[1] != 0 {
		t.Fatalf("best-pool with a idle and b half loaded: weights %v", w)
	}
	prev := s.scoreOf(a, now)
	for _, age := range []time.Duration{2 * time.Second, 3 * time.Second, 4 * time.Second, 5 * time.Second, time.Minute} {
		b.reportAt = now + int64(age) // b keeps reporting
		sc := s.scoreOf(a, now+int64(age))
		if sc < prev {
			t.Fatalf("score got better as the report aged: %v → %v", prev, sc)
		}
		prev = sc
	}
	if prev != 1 {
		t.Fatalf("a stale report's score is %v, want 1 (unknown)", prev)
	}
	later := now + int64(time.Minute)
	w = s.computeWeights(later)
	if w[0] != 0 || w[1] == 0 {
		t.Fatalf("a silent node still wins over a reporting one: weights %v", w)
	}
}

func TestParseReport(t *testing.T) {
	r, err := ParseReport([]byte(`{"active_connections":5,"cpu":1,"capacity":10,"draining":true,"node":"x"}`), "x")
	if err != nil || r.ActiveConnections != 5 || r.CPU != 1 || r.Capacity != 10 || !r.Draining {
		t.Fatalf("%+v %v", r, err)
	}
	if l := r.load(100); l != 1 {
		t.Fatalf("load %v", l)
	}
	for _, bad := range []string{``, `[]`, `{"cpu":0.1}`, `{"active_connections":-1,"cpu":0.1}`, `{"active_connections":1,"cpu":-0.1}`,
		`{"active_connections":1,"cpu":0.1,"capacity":0}`, `{"active_connections":1.5,"cpu":0.1}`, `{"active_connections":1,"cpu":"x"}`} {
		if _, err := ParseReport([]byte(bad), "x"); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func FuzzParseReport(f *testing.F) {
	f.Add([]byte(`{"node":"n1","active_connections":30,"capacity":100,"cpu":0.2}`))
	f.Add([]byte(`{"active_connections":0,"cpu":0,"draining":true}`))
	f.Add([]byte(`{"active_connections":1e30,"cpu":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseReport(data, "n1")
		if err != nil {
			return
		}
		if r.ActiveConnections < 0 || r.CPU < 0 || r.CPU > 1 || r.Capacity < 0 {
			t.Fatalf("accepted out-of-range report %+v", r)
		}
		if l := r.load(100); l < 0 || l > 1 {
			t.Fatalf("load %v out of [0,1]", l)
		}
	})
}

// WatchConfig reloads on file change and on SIGHUP; a broken file keeps
// the running config.
func TestWatchConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "router.yaml")
	write := func(extra map[int]string) {
		if err := os.WriteFile(path, []byte(testConfigYAML(3, 1009, 50*time.Millisecond, extra)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(nil)
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var logs []string
	var hooked atomic.Int64
	record := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		logs = append(logs, string(p))
		mu.Unlock()
		return len(p), nil
	})
	s, err := New(cfg, WithLogger(slog.New(slog.NewTextHandler(record, nil))),
		WithOnReload(func(c *Config) { hooked.Add(1) }))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	hup := make(chan os.Signal, 1)
	done := make(chan struct{})
	go func() { s.WatchConfig(ctx, path, 5*time.Millisecond, hup); close(done) }()
	defer func() { cancel(); <-done }()

	write(map[int]string{1: "drain: true"})
	waitFor(t, "the change to be picked up", func() bool { return nodeOf(s.Current(), "n1").Draining })

	gen := s.Current().Generation
	if err := os.WriteFile(path, []byte("vips: ["), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the broken file to be logged", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(logs) > 0 && strings.Contains(logs[len(logs)-1], "keeping the running config")
	})
	if s.Current().Generation != gen {
		t.Fatal("a broken config was applied")
	}
	write(map[int]string{1: "drain: true"})
	waitFor(t, "the fixed file to reload", func() bool { return s.Current().Generation > gen })
	gen = s.Current().Generation
	hup <- syscall.SIGHUP
	waitFor(t, "SIGHUP to reload", func() bool { return s.Current().Generation > gen })
	waitFor(t, "the reload hook", func() bool { return hooked.Load() == 3 })
}

// writerFunc is an io.Writer; a slog handler writes one record per call.
type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
