package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os/exec"
	"sort"
	"strconv"
	"strings"
)

// MicroPackages and MicroBenchmarks select the Go micro-benchmarks of the
// per-packet core and the handshakes.
var (
	MicroPackages   = []string{"./parser", "./lookup", "./sched", "./fastpath", "./ring/offline", "./afxdp", "./tls13", "./migration"}
	MicroBenchmarks = "^Benchmark(ParseFrame|ScanClientHello|ReassemblerFeed|GopacketDLP|FlowHash|Lookup|PinTable|MaglevBuild|Pipeline|MemRingReplay|Program|ReflectBatch|Handshake|TokenIssue|TokenVerify|ConnectFirstByte)$"
)

// MicroConfig sizes the micro-benchmark run.
type MicroConfig struct {
	// Dir is the module root to run `go test` in.
	Dir string
	// Count is go test -count (runs per benchmark, for statistics).
	Count int
	// Benchtime is go test -benchtime.
	Benchtime string
	// Packages and Bench default to MicroPackages and MicroBenchmarks.
	Packages []string
	Bench    string
}

// RunMicro runs the micro-benchmarks; the raw output (benchstat reads it)
// is returned whole, and every "Benchmark" line is passed to progress.
func RunMicro(ctx context.Context, cfg MicroConfig, progress func(string)) ([]byte, error) {
	if cfg.Count < 1 || cfg.Count > 100 {
		return nil, fmt.Errorf("count %d: want 1..100", cfg.Count)
	}
	if cfg.Benchtime == "" {
		return nil, fmt.Errorf("benchtime: required")
	}
	pkgs, bench := cfg.Packages, cfg.Bench
	if len(pkgs) == 0 {
		pkgs = MicroPackages
	}
	if bench == "" {
		bench = MicroBenchmarks
	}
	args := append([]string{"test", "-run", "^$", "-bench", bench, "-benchmem",
		"-count", strconv.Itoa(cfg.Count), "-benchtime", cfg.Benchtime, "-timeout", "20m"}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = cfg.Dir
	var raw bytes.Buffer
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("go test -bench: %w", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait(); pw.Close() }()
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		raw.WriteString(line)
		raw.WriteByte('\n')
		if progress != nil && strings.HasPrefix(line, "Benchmark") {
			progress(line)
		}
	}
	if err := <-waited; err != nil {
		return raw.Bytes(), fmt.Errorf("go test -bench: %w\n%s", err, lastLines(raw.String(), 20))
	}
	return raw.Bytes(), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// MicroResult is one benchmark over all its runs.
type MicroResult struct {
	Pkg  string `json:"pkg"`
	Name string `json:"name"` // without the -GOMAXPROCS suffix
	// Values holds, per unit (ns/op, B/op, cpu-ns/pkt, ...), one value per run.
	Values map[string][]float64 `json:"values"`
}

// Stat is the median and range of some values.
type Stat struct {
	Median, Min, Max float64
	N                int
}

// Summarize returns the median, minimum and maximum of vs (zero Stat for
// none).
func Summarize(vs []float64) Stat {
	if len(vs) == 0 {
		return Stat{}
	}
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Stat{Median: med, Min: s[0], Max: s[len(s)-1], N: len(s)}
}

// MicroOutput is what ParseMicro reads from go test output.
type MicroOutput struct {
	CPU     string        `json:"cpu"`
	Results []MicroResult `json:"results"`
}

// ParseMicro reads `go test -bench` output (the format benchstat reads):
// "pkg:" and "cpu:" header lines and result lines "BenchmarkName-P N
// value unit [value unit]...". Lines it does not understand are skipped;
// results keep the order of first appearance.
func ParseMicro(raw []byte) MicroOutput {
	var out MicroOutput
	index := map[string]int{}
	pkg := ""
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if v, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(v)
			continue
		}
		if v, ok := strings.CutPrefix(line, "cpu: "); ok && out.CPU == "" {
			out.CPU = strings.TrimSpace(v)
			continue
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || len(f)%2 != 0 {
			continue
		}
		if _, err := strconv.ParseUint(f[1], 10, 64); err != nil {
			continue
		}
		vals := map[string]float64{}
		ok := true
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				ok = false
				break
			}
			vals[f[i+1]] = v
		}
		if !ok {
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		if name == "" {
			continue
		}
		key := pkg + "\x00" + name
		j, seen := index[key]
		if !seen {
			j = len(out.Results)
			index[key] = j
			out.Results = append(out.Results, MicroResult{Pkg: pkg, Name: name, Values: map[string][]float64{}})
		}
		for u, v := range vals {
			out.Results[j].Values[u] = append(out.Results[j].Values[u], v)
		}
	}
	return out
}

// LineRateBudget is the time per packet a link of this speed leaves for a
// minimum-size (64-byte) Ethernet frame: 84 bytes on the wire with the
// preamble and inter-frame gap.
type LineRateBudget struct {
	Name string
	NS   float64
}

// Budgets are the per-packet time budgets of 64-byte frames at line rate
// (84 bytes on the wire with preamble and gap).
var Budgets = []LineRateBudget{{"10GbE", 67.2}, {"25GbE", 26.9}, {"100GbE", 6.72}}
