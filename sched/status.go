package sched

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// Report is a node's load report, the JSON its load endpoint serves (see
// the package doc for the format).
type Report struct {
	Node              string  `json:"node,omitempty"`
	ActiveConnections int64   `json:"active_connections"`
	Capacity          int64   `json:"capacity,omitempty"`
	CPU               float64 `json:"cpu"`
	Draining          bool    `json:"draining,omitempty"`
}

// MaxReportSize bounds a report body.
const MaxReportSize = 64 << 10

// ParseReport decodes and checks a load report for the named node.
func ParseReport(data []byte, node string) (Report, error) {
	if len(data) > MaxReportSize {
		return Report{}, fmt.Errorf("report is %d bytes, more than %d", len(data), MaxReportSize)
	}
	var raw struct {
		Node              *string  `json:"node"`
		ActiveConnections *int64   `json:"active_connections"`
		Capacity          *int64   `json:"capacity"`
		CPU               *float64 `json:"cpu"`
		Draining          *bool    `json:"draining"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return Report{}, fmt.Errorf("report is not valid JSON: %v", err)
	}
	var r Report
	switch {
	case raw.ActiveConnections == nil:
		return r, errors.New("report: active_connections missing")
	case *raw.ActiveConnections < 0:
		return r, fmt.Errorf("report: active_connections %d is negative", *raw.ActiveConnections)
	case raw.CPU == nil:
		return r, errors.New("report: cpu missing")
	case math.IsNaN(*raw.CPU) || *raw.CPU < 0 || *raw.CPU > 1:
		return r, fmt.Errorf("report: cpu %v is not a fraction from 0 to 1", *raw.CPU)
	case raw.Capacity != nil && *raw.Capacity <= 0:
		return r, fmt.Errorf("report: capacity %d is not positive", *raw.Capacity)
	case raw.Node != nil && *raw.Node != node:
		return r, fmt.Errorf("report: from node %q, expected %q", *raw.Node, node)
	}
	r.Node = node
	r.ActiveConnections = *raw.ActiveConnections
	r.CPU = *raw.CPU
	if raw.Capacity != nil {
		r.Capacity = *raw.Capacity
	}
	if raw.Draining != nil {
		r.Draining = *raw.Draining
	}
	return r, nil
}

// load is the normalized load in [0,1]: the larger of the connection ratio
// and the CPU share.
func (r *Report) load(configured uint32) float64 {
	c := float64(configured)
	if r.Capacity > 0 {
		c = float64(r.Capacity)
	}
	l := r.CPU
	if c > 0 {
		l = max(l, float64(r.ActiveConnections)/c)
	}
	return min(l, 1)
}

type resultKind uint8

const (
	probeResult resultKind = iota
	reportResult
)

type result struct {
	kind   resultKind
	epoch  uint64
	id     uint16
	ok     bool
	rtt    time.Duration
	report Report
	err    error
}

// startWorkers starts one prober and one report fetcher per node that
// has a health port / report URL. Caller holds mu.
func (s *Scheduler) startWorkers(ctx context.Context) {
	for _, st := range s.nodes {
		if st.removed {
			continue
		}
		if st.cfg.HealthPort != 0 {
			go s.probeLoop(ctx, s.epoch, st.id, netip.AddrPortFrom(st.cfg.Unicast, st.cfg.HealthPort).String(), s.cfg.Probe)
		}
		if st.cfg.ReportURL != "" {
			go s.reportLoop(ctx, s.epoch, st.id, st.cfg.Name, st.cfg.ReportURL, s.cfg.Reports)
		}
	}
}

func (s *Scheduler) send(ctx context.Context, r result) bool {
	select {
	case s.results <- r:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *Scheduler) probeLoop(ctx context.Context, epoch uint64, id uint16, addr string, pc ProbeConfig) {
	t := time.NewTicker(pc.Interval)
	defer t.Stop()
	var d net.Dialer
	for {
		pctx, cancel := context.WithTimeout(ctx, pc.Timeout)
		start := time.Now()
		c, err := d.DialContext(pctx, "tcp", addr)
		rtt := time.Since(start)
		cancel()
		if err == nil {
			c.Close()
		}
		if ctx.Err() != nil {
			return
		}
		if !s.send(ctx, result{kind: probeResult, epoch: epoch, id: id, ok: err == nil, rtt: rtt, err: err}) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Scheduler) reportLoop(ctx context.Context, epoch uint64, id uint16, name, url string, rc ReportConfig) {
	t := time.NewTicker(rc.Interval)
	defer t.Stop()
	for {
		r, err := s.fetchReport(ctx, name, url, rc.Timeout)
		if ctx.Err() != nil {
			return
		}
		if !s.send(ctx, result{kind: reportResult, epoch: epoch, id: id, ok: err == nil, report: r, err: err}) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Scheduler) fetchReport(ctx context.Context, name, url string, timeout time.Duration) (Report, error) {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
	if err != nil {
		return Report{}, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return Report{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Report{}, errors.New("report: HTTP status " + strconv.Itoa(resp.StatusCode))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxReportSize+1))
	if err != nil {
		return Report{}, fmt.Errorf("report: reading body: %w", err)
	}
	return ParseReport(body, name)
}

// apply folds one probe or report result into the node's status and
// re-evaluates the table. Caller holds mu.
func (s *Scheduler) apply(r result) {
	if r.epoch != s.epoch || int(r.id) >= len(s.nodes) {
		return
	}
	st := s.nodes[r.id]
	if st.removed {
		return
	}
	now := s.now()
	force := false
	switch r.kind {
	case probeResult:
		st.probes++
		if r.ok {
			st.succs++
			st.fails, st.heldUp = 0, 0
			if st.hasRTT {
				a := s.cfg.Probe.EWMAAlpha
				st.rtt = a*float64(r.rtt) + (1-a)*st.rtt
			} else {
				st.rtt, st.hasRTT = float64(r.rtt), true
			}
			if !st.up && st.succs >= s.cfg.Probe.UpAfter {
				st.up, force = true, true
				s.log.Info("node up", "node", st.cfg.Name, "successful_probes", st.succs)
			}
		} else {
			st.probeFails++
			st.fails++
			st.succs = 0
			st.lastErr = r.err.Error()
			if st.up && st.fails >= s.cfg.Probe.DownAfter {
				if s.everyProbedNodeFailing() {
					// Every node failing at once is the router's own
					// trouble (a starved prober, its link down), not
					// theirs: taking them all out would move every
					// anycast-phase flow, or leave no node at all.
					st.heldUp++
					if st.heldUp == 1 {
						s.log.Warn("every probed node is failing its probes at once: suspecting this router, keeping them up",
							"node", st.cfg.Name, "failed_probes", st.fails, "err", r.err)
					}
				} else {
					st.up, force = false, true
					s.log.Warn("node down", "node", st.cfg.Name, "failed_probes", st.fails, "err", r.err)
				}
			}
		}
	case reportResult:
		if r.ok {
			wasDraining := s.reportDraining(st, now)
			st.reports++
			st.report, st.reportAt, st.hasReport = r.report, now, true
			force = wasDraining != r.report.Draining
		} else {
			st.reportErrors++
			st.lastErr = r.err.Error()
		}
	}
	s.evaluate(now, force)
}

// everyProbedNodeFailing reports whether at least two nodes are probed
// and every one of them failed its latest probe. Caller holds mu.
func (s *Scheduler) everyProbedNodeFailing() bool {
	probed := 0
	for _, st := range s.nodes {
		if st.removed || st.cfg.HealthPort == 0 {
			continue
		}
		if st.fails == 0 {
			return false
		}
		probed++
	}
	return probed >= 2
}
