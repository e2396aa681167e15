// Command anybench runs the side-by-side benchmark (`make bench`): the
// packet scenarios and the connection scenarios on the veth bed (package
// bench) and the Go micro-benchmarks, and writes results/<date>.json, the
// raw go test output, REPORT.md and SVG plots. It needs root (network
// namespaces, XDP) and the nft, conntrack and haproxy binaries.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/anysched/anysched/bench"
)

const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

type options struct {
	out         string
	module      string
	packet      bench.PacketConfig
	conn        bench.ConnConfig
	microCount  int
	microTime   string
	skipMicro   bool
	skipPackets bool
	skipConns   bool
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("anybench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	var cpus, only, shares string
	fs.StringVar(&o.out, "out", "bench", "directory for REPORT.md, plots/ and results/")
	fs.StringVar(&o.module, "module", ".", "module root to run the Go micro-benchmarks in")
	fs.StringVar(&o.packet.Anysched, "anysched", "bin/anysched", "the built anysched binary (make build)")
	fs.IntVar(&o.packet.Reps, "reps", 5, "repetitions of the interleaved scenario sequence")
	fs.DurationVar(&o.packet.Burst, "burst", 2*time.Second, "generator burst per scenario and workload")
	fs.IntVar(&o.packet.Unit, "unit", 16384, "frames per template per generator call")
	fs.IntVar(&o.packet.Flows, "flows", 65536, "distinct source address/port pairs per template")
	fs.StringVar(&cpus, "cpus", "0,1", "SENDER,ROUTER: the generator's CPU and the router's")
	fs.StringVar(&only, "scenarios", "", "comma-separated subset of "+strings.Join(bench.ScenarioNames(), ","))
	fs.StringVar(&o.conn.Anynode, "anynode", "bin/anynode", "the built anynode binary (make build)")
	fs.StringVar(&o.conn.Anyclient, "anyclient", "bin/anyclient", "the built anyclient binary (make build)")
	fs.IntVar(&o.conn.Reps, "conn-reps", 3, "repetitions of the interleaved connections/s sequence")
	fs.DurationVar(&o.conn.Duration, "conn-duration", 2*time.Second, "how long each connections/s run opens connections")
	fs.IntVar(&o.conn.Concurrency, "conn-concurrency", 16, "connections open at once in a connections/s run")
	fs.IntVar(&o.conn.Hold, "hold", 2000, "live connections the state sweep holds through each front end")
	fs.Float64Var(&o.conn.HoldRate, "hold-rate", 250, "connections/s at which the held connections are opened")
	fs.StringVar(&shares, "shares", "0,50,90,100", "the state sweep's migration-capable shares, in percent")
	fs.BoolVar(&o.skipConns, "skip-conns", false, "do not run the connection scenarios")
	fs.IntVar(&o.microCount, "micro-count", 5, "go test -count for the micro-benchmarks")
	fs.StringVar(&o.microTime, "micro-benchtime", "200ms", "go test -benchtime for the micro-benchmarks")
	fs.BoolVar(&o.skipMicro, "skip-micro", false, "do not run the Go micro-benchmarks")
	fs.BoolVar(&o.skipPackets, "skip-packets", false, "do not run the packet scenarios")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	s, r, ok := strings.Cut(cpus, ",")
	var err1, err2 error
	o.packet.SenderCPU, err1 = strconv.Atoi(strings.TrimSpace(s))
	o.packet.RouterCPU, err2 = strconv.Atoi(strings.TrimSpace(r))
	if !ok || err1 != nil || err2 != nil {
		return nil, fmt.Errorf("--cpus %q: want SENDER,ROUTER (two CPU numbers)", cpus)
	}
	if only != "" {
		o.packet.Only = strings.Split(only, ",")
	}
	o.conn.Anysched = o.packet.Anysched
	o.conn.ClientCPU, o.conn.RouterCPU = o.packet.SenderCPU, o.packet.RouterCPU
	for _, f := range strings.Split(shares, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("--shares %q: want comma-separated percentages", shares)
		}
		o.conn.Shares = append(o.conn.Shares, n)
	}
	if !o.skipPackets {
		if err := o.packet.Check(); err != nil {
			return nil, fmt.Errorf("--%w", err)
		}
	}
	if !o.skipConns {
		if err := o.conn.Check(); err != nil {
			return nil, fmt.Errorf("--%w", err)
		}
	}
	if !o.skipMicro {
		if o.microCount < 1 || o.microCount > 100 {
			return nil, fmt.Errorf("--micro-count %d: want 1..100", o.microCount)
		}
		if _, err := time.ParseDuration(o.microTime); err != nil && !strings.HasSuffix(o.microTime, "x") {
			return nil, fmt.Errorf("--micro-benchtime %q: want a duration or Nx", o.microTime)
		}
	}
	return o, nil
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "anybench:", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	progress := func(line string) {
		el := time.Since(start).Round(time.Second)
		fmt.Fprintf(stderr, "[%02d:%02d] %s\n", int(el.Minutes()), int(el.Seconds())%60, line)
	}
	res := &bench.Results{Date: start.UTC(), Machine: bench.ReadMachine(), Packet: o.packet}
	stamp := start.UTC().Format("2006-01-02T1504Z")
	resultsDir := filepath.Join(o.out, "results")
	if err := os.MkdirAll(resultsDir, 0o755); err != nil {
		fmt.Fprintln(stderr, "anybench:", err)
		return exitFailure
	}
	progress(fmt.Sprintf("%s, %d cores, load %.2f", res.Machine.CPU, res.Machine.Cores, res.Machine.LoadStart[0]))
	failed := false
	if !o.skipPackets {
		dir, err := os.MkdirTemp("", "anybench-")
		if err == nil {
			defer os.RemoveAll(dir)
			o.packet.Dir = dir
			res.Packets, err = bench.RunPackets(ctx, o.packet, progress)
		}
		if err != nil {
			fmt.Fprintln(stderr, "anybench: packet scenarios:", err)
			failed = true
		}
	}
	if !o.skipConns && ctx.Err() == nil {
		res.Conn = o.conn
		dir, err := os.MkdirTemp("", "anybench-conn-")
		if err == nil {
			defer os.RemoveAll(dir)
			o.conn.Dir = dir
			res.Conns, err = bench.RunConns(ctx, o.conn, progress)
		}
		if err != nil {
			fmt.Fprintln(stderr, "anybench: connection scenarios:", err)
			failed = true
		}
	}
	if !o.skipMicro && ctx.Err() == nil {
		progress("Go micro-benchmarks: go test -bench (count " + strconv.Itoa(o.microCount) + ", benchtime " + o.microTime + ")")
		raw, err := bench.RunMicro(ctx, bench.MicroConfig{Dir: o.module, Count: o.microCount, Benchtime: o.microTime}, progress)
		if len(raw) > 0 {
			res.MicroRaw = stamp + "-gobench.txt"
			if werr := os.WriteFile(filepath.Join(resultsDir, res.MicroRaw), raw, 0o644); werr != nil {
				err = errors.Join(err, werr)
			}
			res.Micro = bench.ParseMicro(raw)
		}
		if err != nil {
			fmt.Fprintln(stderr, "anybench: micro-benchmarks:", err)
			failed = true
		}
	}
	res.Machine.LoadEnd = bench.LoadAverage()
	res.Seconds = time.Since(start).Seconds()
	jsonName := stamp + ".json"
	if err := res.WriteJSON(filepath.Join(resultsDir, jsonName)); err != nil {
		fmt.Fprintln(stderr, "anybench:", err)
		return exitFailure
	}
	plotDir := filepath.Join(o.out, "plots")
	if err := os.MkdirAll(plotDir, 0o755); err != nil {
		fmt.Fprintln(stderr, "anybench:", err)
		return exitFailure
	}
	plots, err := res.WritePlots(plotDir)
	if err != nil {
		fmt.Fprintln(stderr, "anybench: plots:", err)
		return exitFailure
	}
	report := filepath.Join(o.out, "REPORT.md")
	if err := os.WriteFile(report, []byte(res.Report(jsonName, plots)), 0o644); err != nil {
		fmt.Fprintln(stderr, "anybench:", err)
		return exitFailure
	}
	progress(fmt.Sprintf("wrote %s, %s and %d plots (load %.2f at the end)", report, filepath.Join(resultsDir, jsonName), len(plots), res.Machine.LoadEnd[0]))
	fmt.Fprintln(stdout, report)
	if failed {
		return exitFailure
	}
	return exitOK
}
