package bench

import (
	"bytes"
	"fmt"
	"math"
	"path/filepath"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// State goals: what a connection may cost the router.
const (
	goalMigratingBytes = 0
	goalLegacyBytes    = 64
)

func (r *Results) connSamples(scenario string, f func(ConnSample) float64) []float64 {
	var out []float64
	if r.Conns == nil {
		return out
	}
	for _, s := range r.Conns.Samples {
		if s.Scenario == scenario {
			out = append(out, f(s))
		}
	}
	return out
}

// connRatio is num's f over den's, rep by rep.
func (r *Results) connRatio(num, den string, f func(ConnSample) float64) Stat {
	by := func(name string) map[int]float64 {
		m := map[int]float64{}
		for _, s := range r.Conns.Samples {
			if s.Scenario == name {
				m[s.Rep] = f(s)
			}
		}
		return m
	}
	a, b := by(num), by(den)
	var vs []float64
	for rep, x := range a {
		if y, ok := b[rep]; ok && y > 0 {
			vs = append(vs, x/y)
		}
	}
	return Summarize(vs)
}

func (r *Results) state(front string, share int) (StateSample, bool) {
	if r.Conns == nil {
		return StateSample{}, false
	}
	for _, s := range r.Conns.States {
		if s.Front == front && s.Share == share {
			return s, true
		}
	}
	return StateSample{}, false
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func ms(v float64) string { return fmt.Sprintf("%.2f", v) }

func (r *Results) connSection(b *bytes.Buffer, plots []string) {
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	c, run := r.Conn, r.Conns
	p("## Connection scenarios\n\n")
	p("Bed: the same veth bed without the nodes' counting programs; the router's eth0 as in the packet scenarios (GRO, threaded NAPI on CPU %d). Both nodes run `anynode` (TLS 1.3 from this repository's tls13, a self-signed ECDSA P-256 certificate each, one shared ticket key) on the VIP (on their lo, direct server return) and on their unicast address, port 443. Every front end runs on CPU %d (`anysched run` and HAProxy under `taskset`; the kernel's forwarding on the NAPI thread there); the client (`anyclient load`, this repository's migration client) and both nodes run on CPU %d, so every scenario's TLS work shares the same CPU and the front ends share the other.\n\n",
		c.RouterCPU, c.RouterCPU, c.ClientCPU)
	p("**Connections/s**: `anyclient load --connections %d --duration %v --requests-per-conn 1`: %d connections at once, each a new client (its own session) doing a full TLS handshake and one GET, the next as soon as one is done (closed loop), %s interleaved (rep 1: every scenario in turn, then rep 2, …). Connect-to-first-byte is from the start of the TCP connect to the first response's headers (for a migrating client that includes the VIP handshake, the token and the resumption at the node). A migrating connection costs two handshakes (one full, one resumed) where a legacy one costs one.\n\n",
		c.Concurrency, c.Duration, c.Concurrency, plural(c.Reps, "rep"))
	p("Scenarios:\n\n")
	for _, s := range run.Scenarios {
		p("- **%s**: %s\n", s.Name, s.About)
	}
	p("\n| scenario | client policy | connections/s | TTFB p50 ms | TTFB p99 ms | migrated / done (sum) | broken (sum) |\n|---|---|---|---|---|---|---|\n")
	for _, s := range run.Scenarios {
		var policy string
		var mig, done, broken int
		for _, x := range run.Samples {
			if x.Scenario == s.Name {
				policy = x.Policy
				mig += x.Client.Migrated
				done += x.Client.Done
				broken += x.Client.Broken
			}
		}
		p("| %s | %s | %s | %s | %s | %d / %d | %d |\n", s.Name, policy,
			statRange(Summarize(r.connSamples(s.Name, func(x ConnSample) float64 { return x.CPS })), num),
			statRange(Summarize(r.connSamples(s.Name, func(x ConnSample) float64 { return x.Client.TTFBp50ms })), ms),
			statRange(Summarize(r.connSamples(s.Name, func(x ConnSample) float64 { return x.Client.TTFBp99ms })), ms),
			mig, done, broken)
	}
	var loads []float64
	for _, x := range run.Samples {
		loads = append(loads, x.Load1)
	}
	load := Summarize(loads)
	p("\n1-minute load average after each run: %s.\n\n", statRange(load, func(v float64) string { return fmt.Sprintf("%.1f", v) }))
	p("Ratios, same rep (connections/s: higher is better for the numerator; p99: lower is):\n\n")
	p("| numerator | ÷ direct (ceiling) conn/s | ÷ haproxy conn/s | ÷ nft-dnat conn/s | p99 ÷ haproxy p99 | p99 ÷ nft-dnat p99 |\n|---|---|---|---|---|---|\n")
	two := func(v float64) string { return fmt.Sprintf("%.2f", v) }
	cps := func(x ConnSample) float64 { return x.CPS }
	p99 := func(x ConnSample) float64 { return x.Client.TTFBp99ms }
	for _, n := range []string{NameAnyschedMig, NameAnyschedLegacy, NameNftDNAT, NameHAProxy} {
		p("| %s | %s | %s | %s | %s | %s |\n", n, statRange(r.connRatio(n, NameDirect, cps), two), statRange(r.connRatio(n, NameHAProxy, cps), two), statRange(r.connRatio(n, NameNftDNAT, cps), two),
			statRange(r.connRatio(n, NameHAProxy, p99), two), statRange(r.connRatio(n, NameNftDNAT, p99), two))
	}
	p("\n")
	r.stateSection(b, plots)
}

func (r *Results) stateSection(b *bytes.Buffer, plots []string) {
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	c, run := r.Conn, r.Conns
	d := run.Derived
	p("### State versus live connections\n\n")
	p("Each front end holds %d connections open at once (opened at %.0f/s; %d requests each, %.1f s think time between them), at %v %% migration-capable clients (`--policy rendezvous`; the rest `--policy never`). Live connections are the client namespace's established TCP connections to port 443 (of the VIP, or of a node's unicast address after a migration), read from /proc/net/tcp when all were open. State is read at the same moment, minus the front end's idle state:\n\n",
		c.Hold, c.HoldRate, d.HoldRequests, d.HoldThinkSeconds, c.Shares)
	p("- **anysched**: (pins + transition records) × %.2f B. The per-entry size is lookup's flow-table slot: the entry (flow key %d B — two 16-byte addresses, ports, protocol, family — a 2-byte node, 1 byte of flags, a 4-byte last-activity stamp and an 8-byte deadline, %d B with alignment), its 4-byte bucket tag and 1/64 B of the bucket occupancy bitmap. The table is preallocated at its capacity: this is what each entry in use takes of it.\n",
		d.PinEntryBytes, flowKeyBytes, int(d.PinEntryBytes-4))
	p("- **nft-dnat**: conntrack entries (`nf_conntrack_count` of the router's namespace) × the nf_conntrack slab object size, %.0f B (/sys/kernel/slab/nf_conntrack/object_size: `struct nf_conn` alone, without its NAT extension, so a lower bound). Entries of closed connections (TIME_WAIT: a migrated client's VIP leg) still count: the kernel holds them. The DNAT points at the nodes' port %d, whose replies the nodes route back through the router (DNAT needs them); a migrated client's connection to a node's unicast port 443 is direct and untracked, as with the other front ends.\n", d.ConntrackObjectSize, dnatPort)
	p("- **haproxy**: growth of HAProxy's resident set (VmRSS) over its idle RSS. A migrated client leaves HAProxy too (its TCP proxying does not hide the node's token).\n\n")
	p("| front end | migration-capable | live connections (on VIP / on nodes) | entries | state growth | bytes per live connection | broken |\n|---|---|---|---|---|---|---|\n")
	for _, f := range run.Fronts {
		for _, share := range c.Shares {
			s, ok := r.state(f.Name, share)
			if !ok {
				continue
			}
			entries := "—"
			if f.Name != NameHAProxy {
				entries = num(s.Plateau.Entries - s.Baseline.Entries)
			}
			p("| %s | %d %% (%d of %d) | %d (%d / %d) | %s | %s | %.1f B | %d |\n", f.Name, share, s.Migrating, s.Held, s.Live, s.OnVIP, s.OnNodes,
				entries, bytesText(s.Growth()), s.PerConn(), s.Broken)
		}
	}
	p("\n**Goals** (anysched):\n\n")
	if s, ok := r.state(NameAnysched, 100); ok {
		p("- per migrating connection (all %d migration-capable): %.1f B (goal %d B): %s\n", s.Held, s.PerConn(), goalMigratingBytes, metText(s.PerConn() <= goalMigratingBytes))
	}
	if s, ok := r.state(NameAnysched, 0); ok && s.Legacy > 0 {
		perLegacy := s.Growth() / float64(s.Legacy)
		p("- per legacy connection (all %d legacy): %.1f B (goal ≤ %d B): %s\n", s.Held, perLegacy, goalLegacyBytes, metText(perLegacy <= goalLegacyBytes))
		for _, share := range c.Shares {
			m, ok := r.state(NameAnysched, share)
			if !ok || share == 0 || share == 100 || m.Migrating == 0 {
				continue
			}
			// Rounded to 0.1 B: float residue is not state.
			perMig := math.Round(max(0, m.Growth()-float64(m.Legacy)*perLegacy)/float64(m.Migrating)*10) / 10
			p("- at %d %%: per migrating connection, after the legacy ones at the 0 %% rate: %.1f B (goal %d B): %s\n", share, perMig, goalMigratingBytes, metText(perMig <= goalMigratingBytes))
		}
	}
	for _, share := range c.Shares {
		a, ok1 := r.state(NameAnysched, share)
		n, ok2 := r.state(NameNftDNAT, share)
		h, ok3 := r.state(NameHAProxy, share)
		if ok1 && ok2 && ok3 {
			p("- at %d %% migration-capable: anysched %.1f B, conntrack %.1f B, HAProxy RSS %.1f B per live connection", share, a.PerConn(), n.PerConn(), h.PerConn())
			if a.PerConn() > 0 {
				p(" (conntrack ÷ anysched %.1f×)", n.PerConn()/a.PerConn())
			}
			p("\n")
		}
	}
	p("\n")
	for _, f := range plots {
		switch filepath.Base(f) {
		case "state.svg":
			p("![router state vs live connections: anysched and conntrack](%s)\n\n", f)
		case "state-haproxy.svg":
			p("![HAProxy RSS growth vs live connections](%s)\n\n", f)
		}
	}
}

// flowKeyBytes is parser.FlowKey's size as the report states it.
const flowKeyBytes = 16 + 16 + 2 + 2 + 1 + 1

func metText(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

func bytesText(v float64) string {
	switch {
	case v >= 1<<20:
		return fmt.Sprintf("%.2f MiB", v/(1<<20))
	case v >= 1<<10:
		return fmt.Sprintf("%.1f KiB", v/(1<<10))
	default:
		return fmt.Sprintf("%.0f B", v)
	}
}

// statePlot draws the state growth of each hold through one of fronts
// against its live connections as they opened.
func (r *Results) statePlot(path, title string, fronts ...string) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "live connections"
	p.Y.Label.Text = "state growth, KiB"
	colour := map[string]int{NameAnysched: 1, NameNftDNAT: 2, NameHAProxy: 3}
	dashes := map[int][]vg.Length{50: {vg.Points(6), vg.Points(3)}, 90: {vg.Points(2), vg.Points(2)}, 100: {vg.Points(10), vg.Points(2), vg.Points(2), vg.Points(2)}}
	top := 1.0
	for _, s := range r.Conns.States {
		if len(s.Curve) == 0 || !contains(fronts, s.Front) {
			continue
		}
		pts := make(plotter.XYs, 0, len(s.Curve)+1)
		pts = append(pts, plotter.XY{})
		for _, c := range s.Curve {
			pts = append(pts, plotter.XY{X: float64(c.Live), Y: c.Bytes / 1024})
			top = max(top, c.Bytes/1024)
		}
		sort.SliceStable(pts, func(a, b int) bool { return pts[a].X < pts[b].X })
		line, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		line.Color = palette[colour[s.Front]%len(palette)]
		line.Width = vg.Points(1.5)
		line.Dashes = dashes[s.Share]
		p.Add(line)
		p.Legend.Add(fmt.Sprintf("%s, %d %% migrating", s.Front, s.Share), line)
	}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Y.Min, p.Y.Max = 0, top*1.6 // room for the legend
	p.X.Min = 0
	return p.Save(7*vg.Inch, 4.5*vg.Inch, path)
}
