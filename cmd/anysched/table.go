package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/anysched/anysched/lookup"
	"github.com/anysched/anysched/sched"
	"github.com/spf13/pflag"
)

func init() {
	register(subcommand{name: "table", summary: "print the Maglev table a config gives: nodes, pools, weights, slots, digest", run: runTable})
}

type tableNodeJSON struct {
	Name    string  `json:"name"`
	Pool    string  `json:"pool"`
	Address string  `json:"address"`
	Weight  uint32  `json:"weight"`
	Slots   uint32  `json:"slots"`
	Share   float64 `json:"share"`
	Drain   bool    `json:"drain,omitempty"`
}

type tablePoolJSON struct {
	Name   string `json:"name"`
	Weight uint64 `json:"weight"`
	Slots  uint64 `json:"slots"`
}

type tableJSON struct {
	Config    string          `json:"config"`
	TableSize uint32          `json:"table_size"`
	Policy    string          `json:"policy"`
	Digest    string          `json:"digest"`
	Nodes     []tableNodeJSON `json:"nodes"`
	Pools     []tablePoolJSON `json:"pools"`
	Warnings  []string        `json:"warnings"`
}

func runTable(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("table", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "router config file (YAML, see examples/router.yaml) (required)")
	asJSON := fs.Bool("json", false, `print one JSON object ("digest", "nodes" with "name", "pool", "weight", "slots", ...) instead of a table`)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintln(w, "usage: anysched table --config FILE [--json]")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Builds the weighted Maglev table that the config gives when every node is up")
		fmt.Fprintln(w, "and nothing is measured yet (the table a router publishes at start), and prints")
		fmt.Fprintln(w, "each node's pool, weight and slot count and the table digest. Two routers with")
		fmt.Fprintln(w, "the same digest send every flow to the same node. The seed is never printed.")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "flags:")
		fs.PrintDefaults()
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Exit codes: 0 ok, 1 write failure, 2 bad flags or an unreadable or invalid config.")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.Usage()
			return exitOK
		}
		fmt.Fprintf(stderr, "anysched table: %v\n", err)
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "anysched table: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if *configPath == "" {
		fmt.Fprintln(stderr, "anysched table: --config is required")
		return exitUsage
	}
	cfg, err := sched.LoadConfig(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "anysched table: --config: %v\n", err)
		return exitUsage
	}
	s, err := sched.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "anysched table: %v\n", err)
		return exitUsage
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(stderr, "anysched table: warning: %s\n", w)
	}
	snap := s.Current()
	out := tableJSON{
		Config: *configPath, TableSize: snap.M(), Policy: cfg.Policy.String(),
		Digest: hex.EncodeToString(snap.Digest[:]), Warnings: cfg.Warnings,
	}
	if out.Warnings == nil {
		out.Warnings = []string{}
	}
	for _, pool := range cfg.Pools {
		pj := tablePoolJSON{Name: pool.Name}
		for _, nc := range pool.Nodes {
			n := nodeByName(snap, nc.Name)
			out.Nodes = append(out.Nodes, tableNodeJSON{
				Name: n.Name, Pool: n.Pool, Address: n.Unicast.String(), Weight: n.Weight, Slots: n.Slots,
				Share: float64(n.Slots) / float64(snap.M()), Drain: n.Draining,
			})
			pj.Weight += uint64(n.Weight)
			pj.Slots += uint64(n.Slots)
		}
		out.Pools = append(out.Pools, pj)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			fmt.Fprintf(stderr, "anysched table: %v\n", err)
			return exitFailure
		}
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "config:\t%s\n", out.Config)
	fmt.Fprintf(tw, "table size:\t%d\n", out.TableSize)
	fmt.Fprintf(tw, "policy:\t%s\n", out.Policy)
	fmt.Fprintf(tw, "digest:\t%s\n", out.Digest)
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "POOL\tNODE\tADDRESS\tWEIGHT\tSLOTS\tSHARE\t")
	for _, n := range out.Nodes {
		drain := ""
		if n.Drain {
			drain = "draining"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%.2f%%\t%s\n", n.Pool, n.Name, n.Address, n.Weight, n.Slots, 100*n.Share, drain)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "POOL\tWEIGHT\tSLOTS\tSHARE\t")
	for _, p := range out.Pools {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.2f%%\t\n", p.Name, p.Weight, p.Slots, 100*float64(p.Slots)/float64(out.TableSize))
	}
	if err := tw.Flush(); err != nil {
		fmt.Fprintf(stderr, "anysched table: %v\n", err)
		return exitFailure
	}
	return exitOK
}

func nodeByName(snap *lookup.Snapshot, name string) *lookup.Node {
	for i := range snap.Nodes {
		if snap.Nodes[i].Name == name {
			return &snap.Nodes[i]
		}
	}
	return &lookup.Node{Name: name}
}
