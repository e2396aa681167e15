package sched

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/anysched/anysched/lookup"

	"go.yaml.in/yaml/v3"
)

// Policy says how new flows are spread over pools.
type Policy uint8

const (
	// PolicyBestPool sends all new flows to the pool with the best score,
	// weighted by capacity inside it.
	PolicyBestPool Policy = iota
	// PolicyWeighted spreads new flows over all pools by score.
	PolicyWeighted
)

func (p Policy) String() string {
	switch p {
	case PolicyBestPool:
		return "best-pool"
	case PolicyWeighted:
		return "weighted"
	}
	return "policy(" + strconv.Itoa(int(p)) + ")"
}

// Defaults of the optional config settings.
const (
	DefaultTableSize          = 65537
	DefaultGracePeriod        = 5 * time.Second
	DefaultReportPath         = "/load"
	DefaultVIPPort            = 443
	DefaultCapacity           = 100
	DefaultPinCapacity        = 1 << 18
	DefaultPinIdleTimeout     = 5 * time.Minute
	DefaultTransitionCapacity = 1 << 16
	// MaxTableSize bounds the table's memory (16 bytes a slot).
	MaxTableSize = 1<<24 - 3 // 16777213, prime
	// MaxNodes is the most nodes a config may name: node IDs are uint16
	// and NoNode is reserved.
	MaxNodes = 4096
	// MaxCapacity bounds capacities and weights so that weights fit in
	// the table builder's arithmetic.
	MaxCapacity = 1_000_000
)

// DefaultPinRSTIdleTimeout is a pin's idle time after a client RST: long
// enough that a client whose pin a spoofed RST shortened sends again (and
// restores the pin) before it ends, short enough that the pins of
// connections that did end free their entries soon.
const DefaultPinRSTIdleTimeout = 10 * time.Second

// Config is a validated router configuration.
type Config struct {
	// Path is the file the config was read from ("" when parsed from
	// memory); errors and logs name it.
	Path        string
	VIPs        []lookup.VIP
	Pools       []Pool
	Policy      Policy
	TableSize   uint32
	Seed        lookup.Seed
	GracePeriod time.Duration
	Hysteresis  Hysteresis
	Probe       ProbeConfig
	Reports     ReportConfig
	Score       ScoreConfig
	Pins        PinConfig
	Transitions TransitionConfig
	// Source is the SHA-256 of the bytes the config was parsed from; the
	// file watcher compares it with the file's current content.
	Source [32]byte
	// Warnings are valid but questionable settings (e.g. a table too
	// small for the ~1% disruption bound), for the operator's log.
	Warnings []string

	// positions maps field paths to their line and column, for errors
	// found after parsing (CheckMemory).
	positions map[string][2]int
}

// Pool is a named group of nodes.
type Pool struct {
	Name  string
	Nodes []NodeConfig
}

// NodeConfig is one service node as configured.
type NodeConfig struct {
	Name string
	Pool string
	// Unicast is the node's own address (probes, reports, migration
	// target).
	Unicast netip.Addr
	// HealthPort is the TCP port probed; 0 disables probing (the node is
	// always considered up).
	HealthPort uint16
	// ReportURL is the node's load endpoint; "" disables reports.
	ReportURL string
	// MAC is the node's Ethernet address when HasMAC; otherwise the fast
	// path resolves it from the kernel's neighbour table.
	MAC    [6]byte
	HasMAC bool
	// Capacity is the node's relative size (also the denominator of its
	// load ratio).
	Capacity uint32
	// Weight, when HasWeight, overrides the capacity-based weight (0
	// takes the node out of the table without draining it).
	Weight    uint32
	HasWeight bool
	// Drain stops new flows to the node; existing ones stay.
	Drain bool
}

// Hysteresis limits how often score changes rebuild the table.
type Hysteresis struct {
	// Threshold is the relative change of a node's weight share that
	// justifies a rebuild (0.1 = 10% of its share).
	Threshold float64
	// MinInterval is the shortest time between two score-driven rebuilds.
	MinInterval time.Duration
}

// ProbeConfig drives the active TCP probes.
type ProbeConfig struct {
	Interval  time.Duration
	Timeout   time.Duration
	DownAfter int // consecutive failures that mark a node down (k)
	UpAfter   int // consecutive successes that mark it up again (r)
	// EWMAAlpha is the weight of a new RTT sample.
	EWMAAlpha float64
}

// ReportConfig drives the HTTP load reports.
type ReportConfig struct {
	Interval time.Duration
	Timeout  time.Duration
	// StaleAfter is the age at which a report counts for nothing (the
	// node's load is unknown).
	StaleAfter time.Duration
}

// ScoreConfig weighs delay against load.
type ScoreConfig struct {
	// DelayReference is the RTT that counts as the worst normalized
	// delay (1.0).
	DelayReference time.Duration
	DelayWeight    float64
	LoadWeight     float64
}

// PinConfig sizes each worker's pin table.
type PinConfig struct {
	Capacity    int
	IdleTimeout time.Duration
	// RSTIdleTimeout replaces the idle timeout after a client RST (it
	// only ever shortens a pin; the flow's next packet restores it).
	RSTIdleTimeout time.Duration
}

// TransitionConfig sizes each worker's transition set.
type TransitionConfig struct {
	Capacity int
}

// NodeCount returns the number of nodes in all pools.
func (c *Config) NodeCount() int {
	n := 0
	for i := range c.Pools {
		n += len(c.Pools[i].Nodes)
	}
	return n
}

// ConfigError is one problem in a config file: where it is and which field.
type ConfigError struct {
	File      string
	Line, Col int // 0 when the position is unknown
	Field     string
	Msg       string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
	} else {
		b.WriteString("config")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Col)
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ConfigErrors is every problem found in one config file, in file order.
type ConfigErrors []*ConfigError

func (es ConfigErrors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Unwrap lets errors.As find each *ConfigError.
func (es ConfigErrors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Limits on what loading a config may cost, whoever wrote the file: the
// router reads it at start and on every SIGHUP, and a bad reload must not
// take the running router down.
const (
	// MaxConfigBytes bounds the file; ReadConfigFile stops reading after it.
	MaxConfigBytes = 1 << 20
	// MaxConfigYAMLNodes bounds the YAML nodes of a config with every
	// alias expanded, counted before anything is built from them. A config
	// of MaxNodes nodes with every setting is about 70,000.
	MaxConfigYAMLNodes = 1 << 17
	// maxConfigErrors is how many problems are reported one by one; the
	// rest are counted in a last "and N more" entry.
	maxConfigErrors = 20
)

// ReadConfigFile reads the config file at path, at most MaxConfigBytes of
// it: a larger file (or /dev/zero) is an error naming the file, read no
// further.
func ReadConfigFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxConfigBytes {
		return nil, ConfigErrors{{File: path, Msg: fmt.Sprintf("larger than %d bytes: not a router config", MaxConfigBytes)}}
	}
	return data, nil
}

// LoadConfig reads (ReadConfigFile) and validates the config file at path.
func LoadConfig(path string) (*Config, error) {
	data, err := ReadConfigFile(path)
	if err != nil {
		return nil, err
	}
	return ParseConfig(data, path)
}

// ParseConfig validates a YAML config; name is used in error messages.
// Every error names the field and its line:col; unknown keys are errors.
// Its work is bounded: at most MaxConfigBytes of input and
// MaxConfigYAMLNodes expanded YAML nodes, and at most maxConfigErrors
// problems listed.
func ParseConfig(data []byte, name string) (*Config, error) {
	p := &cfgParser{file: name}
	if len(data) > MaxConfigBytes {
		return nil, ConfigErrors{{File: name, Msg: fmt.Sprintf("larger than %d bytes: not a router config", MaxConfigBytes)}}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		e := &ConfigError{File: name, Msg: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Col = 1
		}
		return nil, ConfigErrors{e}
	}
	cfg := &Config{
		Path:        name,
		Source:      sha256.Sum256(data),
		Policy:      PolicyBestPool,
		TableSize:   DefaultTableSize,
		GracePeriod: DefaultGracePeriod,
		Hysteresis:  Hysteresis{Threshold: 0.1, MinInterval: 2 * time.Second},
		Probe:       ProbeConfig{Interval: time.Second, Timeout: 500 * time.Millisecond, DownAfter: 3, UpAfter: 2, EWMAAlpha: 0.3},
		Reports:     ReportConfig{Interval: time.Second, Timeout: 500 * time.Millisecond, StaleAfter: 5 * time.Second},
		Score:       ScoreConfig{DelayReference: 50 * time.Millisecond, DelayWeight: 0.5, LoadWeight: 0.5},
		Pins:        PinConfig{Capacity: DefaultPinCapacity, IdleTimeout: DefaultPinIdleTimeout, RSTIdleTimeout: DefaultPinRSTIdleTimeout},
		Transitions: TransitionConfig{Capacity: DefaultTransitionCapacity},
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, ConfigErrors{{File: name, Msg: "empty config"}}
	}
	if n := expandedNodes(&doc, map[*yaml.Node]int{}); n > MaxConfigYAMLNodes {
		return nil, ConfigErrors{{File: name, Msg: fmt.Sprintf("more than %d YAML nodes with its aliases expanded: not a router config", MaxConfigYAMLNodes)}}
	}
	root := doc.Content[0]
	var seedNode, sizeNode *yaml.Node
	p.mapping(root, "", map[string]func(k, v *yaml.Node, f string){
		"vips":  func(_, v *yaml.Node, f string) { cfg.VIPs = p.vips(v, f) },
		"pools": func(_, v *yaml.Node, f string) { cfg.Pools = p.pools(v, f) },
		"policy": func(_, v *yaml.Node, f string) {
			switch s := p.str(v, f); s {
			case "best-pool":
				cfg.Policy = PolicyBestPool
			case "weighted":
				cfg.Policy = PolicyWeighted
			default:
				p.fail(v, f, "unknown policy %q (want best-pool or weighted)", s)
			}
		},
		"table": func(_, v *yaml.Node, f string) {
			p.mapping(v, f, map[string]func(k, v *yaml.Node, f string){
				"size": func(_, v *yaml.Node, f string) {
					sizeNode = v
					n := p.uint(v, f, 3, MaxTableSize)
					if n == 0 {
						return
					}
					if !isPrime(n) {
						p.fail(v, f, "%d is not prime: Maglev needs a prime table size so that every node's skip is coprime with it and each permutation visits every slot (try 65537 or 131071)", n)
						return
					}
					cfg.TableSize = uint32(n)
				},
				"seed": func(_, v *yaml.Node, f string) {
					seedNode = v
					s := p.str(v, f)
					b, err := hex.DecodeString(s)
					if err != nil || len(b) != 16 {
						p.fail(v, f, "want exactly 32 hex digits (a 128-bit secret; generate one with `openssl rand -hex 16`)")
						return
					}
					copy(cfg.Seed[:], b)
					if cfg.Seed == (lookup.Seed{}) {
						p.fail(v, f, "the all-zero seed is not a secret")
					}
				},
			})
		},
		"grace_period": func(_, v *yaml.Node, f string) { cfg.GracePeriod = p.duration(v, f, time.Millisecond, time.Hour) },
		"hysteresis": func(_, v *yaml.Node, f string) {
			p.mapping(v, f, map[string]func(k, v *yaml.Node, f string){
				"threshold":    func(_, v *yaml.Node, f string) { cfg.Hysteresis.Threshold = p.float(v, f, 0, 1) },
				"min_interval": func(_, v *yaml.Node, f string) { cfg.Hysteresis.MinInterval = p.duration(v, f, 0, time.Hour) },
			})
		},
		"probe": func(_, v *yaml.Node, f string) {
			p.mapping(v, f, map[string]func(k, v *yaml.Node, f string){
				"interval":   func(_, v *yaml.Node, f string) { cfg.Probe.Interval = p.duration(v, f, time.Millisecond, time.Hour) },
				"timeout":    func(_, v *yaml.Node, f string) { cfg.Probe.Timeout = p.duration(v, f, time.Millisecond, time.Hour) },
				"down_after": func(_, v *yaml.Node, f string) { cfg.Probe.DownAfter = int(p.uint(v, f, 1, 1000)) },
				"up_after":   func(_, v *yaml.Node, f string) { cfg.Probe.UpAfter = int(p.uint(v, f, 1, 1000)) },
				"ewma_alpha": func(_, v *yaml.Node, f string) {
					n := len(p.errs)
					cfg.Probe.EWMAAlpha = p.float(v, f, 0, 1)
					if cfg.Probe.EWMAAlpha == 0 && len(p.errs) == n {
						p.fail(v, f, "must be above 0: a sample weight of 0 ignores every probe")
					}
				},
			})
		},
		"reports": func(_, v *yaml.Node, f string) {
			p.mapping(v, f, map[string]func(k, v *yaml.Node, f string){
				"interval": func(_, v *yaml.Node, f string) { cfg.Reports.Interval = p.duration(v, f, time.Millisecond, time.Hour) },
				"timeout":  func(_, v *yaml.Node, f string) { cfg.Reports.Timeout = p.duration(v, f, time.Millisecond, time.Hour) },
				"stale_after": func(_, v *yaml.Node, f string) {
					cfg.Reports.StaleAfter = p.duration(v, f, time.Millisecond, 24*time.Hour)
				},
			})
		},
		"score": func(_, v *yaml.Node, f string) {
			p.mapping(v, f, map[string]func(k, v *yaml.Node, f string){
				"delay_reference": func(_, v *yaml.Node, f string) {
					cfg.Score.DelayReference = p.duration(v, f, time.Microsecond, time.Minute)
				},
				"delay_weight": func(_, v *yaml.Node, f string) { cfg.Score.DelayWeight = p.float(v, f, 0, 1000) },
				"load_weight":  func(_, v *yaml.Node, f string) { cfg.Score.LoadWeight = p.float(v, f, 0, 1000) },
			})
		},
		"pins": func(_, v *yaml.Node, f string) {
			p.mapping(v, f, map[string]func(k, v *yaml.Node, f string){
				"capacity": func(_, v *yaml.Node, f string) { cfg.Pins.Capacity = int(p.uint(v, f, 8, 1<<26)) },
				"idle_timeout": func(_, v *yaml.Node, f string) {
					cfg.Pins.IdleTimeout = p.duration(v, f, time.Millisecond, 24*time.Hour)
				},
				"rst_idle_timeout": func(_, v *yaml.Node, f string) {
					cfg.Pins.RSTIdleTimeout = p.duration(v, f, 0, 24*time.Hour)
				},
			})
		},
		"transitions": func(_, v *yaml.Node, f string) {
			p.mapping(v, f, map[string]func(k, v *yaml.Node, f string){
				"capacity": func(_, v *yaml.Node, f string) { cfg.Transitions.Capacity = int(p.uint(v, f, 8, 1<<26)) },
			})
		},
	})

	// Cross-field checks, positioned at the most relevant node.
	if _, ok := p.seen["table.seed"]; !ok && seedNode == nil {
		p.fail(root, "table.seed", "required: the 128-bit secret (32 hex digits) shared by all routers; without it anyone could aim flows at a node")
	}
	if _, ok := p.seen["vips"]; !ok {
		p.fail(root, "vips", "required: at least one VIP")
	}
	if _, ok := p.seen["pools"]; !ok {
		p.fail(root, "pools", "required: at least one pool")
	}
	if cfg.Probe.Timeout > cfg.Probe.Interval {
		p.fail(p.seen["probe.timeout"], "probe.timeout", "%v exceeds probe.interval %v", cfg.Probe.Timeout, cfg.Probe.Interval)
	}
	if cfg.Reports.Timeout > cfg.Reports.Interval {
		p.fail(p.seen["reports.timeout"], "reports.timeout", "%v exceeds reports.interval %v", cfg.Reports.Timeout, cfg.Reports.Interval)
	}
	if cfg.Reports.StaleAfter < cfg.Reports.Interval {
		p.fail(p.seen["reports.stale_after"], "reports.stale_after", "%v is shorter than reports.interval %v", cfg.Reports.StaleAfter, cfg.Reports.Interval)
	}
	if cfg.Score.DelayWeight+cfg.Score.LoadWeight == 0 {
		p.fail(p.seen["score.load_weight"], "score", "delay_weight and load_weight are both 0")
	}
	p.checkNodes(cfg)
	if n := cfg.NodeCount(); n > 0 && uint64(cfg.TableSize) < 100*uint64(n) {
		at := ""
		if sizeNode != nil {
			at = fmt.Sprintf(" (%s:%d:%d)", name, sizeNode.Line, sizeNode.Column)
		}
		cfg.Warnings = append(cfg.Warnings, fmt.Sprintf("table.size%s: %d slots for %d nodes is fewer than 100 per node: a node change will move more than the ~1%% of flows Maglev promises; use a prime >= %d", at, cfg.TableSize, n, 100*n))
	}
	if len(p.errs) > 0 {
		if p.dropped > 0 {
			p.errs = append(p.errs, &ConfigError{File: name, Msg: fmt.Sprintf("and %d more problems", p.dropped)})
		}
		return nil, p.errs
	}
	cfg.positions = map[string][2]int{}
	for f, n := range p.seen {
		if n != nil {
			cfg.positions[f] = [2]int{n.Line, n.Column}
		}
	}
	return cfg, nil
}

// expandedNodes counts the nodes under n with every alias expanded, up to
// just past MaxConfigYAMLNodes; memo makes the count linear in the
// document's real size (an alias of an alias of ... costs one lookup), so
// a few kilobytes of aliases that expand to millions of nodes are refused
// before anything walks them.
func expandedNodes(n *yaml.Node, memo map[*yaml.Node]int) int {
	if n == nil {
		return 0
	}
	if c, ok := memo[n]; ok {
		return c
	}
	memo[n] = MaxConfigYAMLNodes + 1 // an alias cycle counts as too many
	c := 1
	if n.Kind == yaml.AliasNode {
		c += expandedNodes(n.Alias, memo)
	}
	for _, ch := range n.Content {
		if c > MaxConfigYAMLNodes {
			break
		}
		c += expandedNodes(ch, memo)
	}
	c = min(c, MaxConfigYAMLNodes+1)
	memo[n] = c
	return c
}

func (p *cfgParser) checkNodes(cfg *Config) {
	names := map[string]bool{}
	pools := map[string]bool{}
	addrs := map[netip.Addr]string{}
	n := 0
	for pi := range cfg.Pools {
		pool := &cfg.Pools[pi]
		if pool.Name != "" {
			if pools[pool.Name] {
				p.fail(p.seen[fmt.Sprintf("pools[%d].name", pi)], fmt.Sprintf("pools[%d].name", pi), "duplicate pool name %q", pool.Name)
			}
			pools[pool.Name] = true
		}
		for ni := range pool.Nodes {
			nd := &pool.Nodes[ni]
			n++
			if nd.Name != "" {
				if names[nd.Name] {
					f := fmt.Sprintf("pools[%d].nodes[%d].name", pi, ni)
					p.fail(p.seen[f], f, "duplicate node name %q (names must be unique across pools: they seed the Maglev permutation)", nd.Name)
				}
				names[nd.Name] = true
			}
			if nd.Unicast.IsValid() {
				if other, dup := addrs[nd.Unicast]; dup {
					f := fmt.Sprintf("pools[%d].nodes[%d].address", pi, ni)
					p.fail(p.seen[f], f, "%v is also node %q's address", nd.Unicast, other)
				}
				addrs[nd.Unicast] = nd.Name
			}
		}
	}
	if n > MaxNodes {
		p.fail(p.seen["pools"], "pools", "%d nodes, at most %d are supported", n, MaxNodes)
	}
	vips := map[netip.AddrPort]bool{}
	for i, v := range cfg.VIPs {
		ap := netip.AddrPortFrom(v.Addr, v.Port)
		if v.Addr.IsValid() && vips[ap] {
			f := fmt.Sprintf("vips[%d]", i)
			p.fail(p.seen[f], f, "duplicate VIP %v", ap)
		}
		vips[ap] = true
	}
}

type cfgParser struct {
	file string
	errs ConfigErrors
	// dropped counts the problems past maxConfigErrors.
	dropped int
	// seen maps each field path that appeared to its value node, for
	// cross-field errors.
	seen map[string]*yaml.Node
}

func (p *cfgParser) fail(n *yaml.Node, field, format string, args ...any) {
	if len(p.errs) >= maxConfigErrors {
		p.dropped++
		return
	}
	e := &ConfigError{File: p.file, Field: field, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	p.errs = append(p.errs, e)
}

func join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// mapping walks a YAML mapping, calling the handler of each known key and
// failing on unknown and duplicate keys.
func (p *cfgParser) mapping(n *yaml.Node, field string, keys map[string]func(k, v *yaml.Node, f string)) {
	if p.seen == nil {
		p.seen = map[string]*yaml.Node{}
	}
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		p.fail(n, field, "want a mapping (key: value lines), got %s", kindName(n))
		return
	}
	dup := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		f := join(field, k.Value)
		h, ok := keys[k.Value]
		if !ok || k.Kind != yaml.ScalarNode {
			known := make([]string, 0, len(keys))
			for name := range keys {
				known = append(known, name)
			}
			sortStrings(known)
			p.fail(k, f, "unknown key %q (known here: %s)", k.Value, strings.Join(known, ", "))
			continue
		}
		if dup[k.Value] {
			p.fail(k, f, "key given twice")
			continue
		}
		dup[k.Value] = true
		p.seen[f] = v
		h(k, v, f)
	}
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

func (p *cfgParser) scalar(n *yaml.Node, field string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.fail(n, field, "want a single value, got %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

func (p *cfgParser) str(n *yaml.Node, field string) string {
	s, _ := p.scalar(n, field)
	return s
}

func (p *cfgParser) uint(n *yaml.Node, field string, lo, hi uint64) uint64 {
	s, ok := p.scalar(n, field)
	if !ok {
		return 0
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v < lo || v > hi {
		p.fail(n, field, "want a whole number from %d to %d, got %q", lo, hi, s)
		return 0
	}
	return v
}

func (p *cfgParser) float(n *yaml.Node, field string, lo, hi float64) float64 {
	s, ok := p.scalar(n, field)
	if !ok {
		return 0
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || v < lo || v > hi {
		p.fail(n, field, "want a number from %g to %g, got %q", lo, hi, s)
		return 0
	}
	return v
}

func (p *cfgParser) boolean(n *yaml.Node, field string) bool {
	s, ok := p.scalar(n, field)
	if !ok {
		return false
	}
	switch s {
	case "true":
		return true
	case "false":
		return false
	}
	p.fail(n, field, "want true or false, got %q", s)
	return false
}

func (p *cfgParser) duration(n *yaml.Node, field string, lo, hi time.Duration) time.Duration {
	s, ok := p.scalar(n, field)
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < lo || d > hi {
		p.fail(n, field, "want a duration from %v to %v such as \"5s\" or \"250ms\", got %q", lo, hi, s)
		return 0
	}
	return d
}

func (p *cfgParser) addr(n *yaml.Node, field string) netip.Addr {
	s, ok := p.scalar(n, field)
	if !ok {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		p.fail(n, field, "want an IPv4 or IPv6 address without zone, got %q", s)
		return netip.Addr{}
	}
	a = a.Unmap()
	if a.IsUnspecified() || a.IsMulticast() {
		p.fail(n, field, "%v is not a unicast address", a)
		return netip.Addr{}
	}
	return a
}

func (p *cfgParser) list(n *yaml.Node, field string) []*yaml.Node {
	n = deref(n)
	if n.Kind != yaml.SequenceNode {
		p.fail(n, field, "want a list, got %s", kindName(n))
		return nil
	}
	if len(n.Content) == 0 {
		p.fail(n, field, "the list is empty")
	}
	return n.Content
}

func (p *cfgParser) vips(n *yaml.Node, field string) []lookup.VIP {
	var out []lookup.VIP
	for i, item := range p.list(n, field) {
		f := fmt.Sprintf("%s[%d]", field, i)
		p.seen[f] = item
		v := lookup.VIP{Port: DefaultVIPPort, TLS: true}
		hasAddr := false
		p.mapping(item, f, map[string]func(k, v *yaml.Node, f string){
			"address": func(_, n *yaml.Node, f string) { v.Addr = p.addr(n, f); hasAddr = true },
			"port":    func(_, n *yaml.Node, f string) { v.Port = uint16(p.uint(n, f, 1, 65535)) },
			"tls":     func(_, n *yaml.Node, f string) { v.TLS = p.boolean(n, f) },
		})
		if !hasAddr && deref(item).Kind == yaml.MappingNode {
			p.fail(item, f+".address", "required")
		}
		out = append(out, v)
	}
	return out
}

func (p *cfgParser) pools(n *yaml.Node, field string) []Pool {
	var out []Pool
	for i, item := range p.list(n, field) {
		f := fmt.Sprintf("%s[%d]", field, i)
		var pool Pool
		hasNodes := false
		p.mapping(item, f, map[string]func(k, v *yaml.Node, f string){
			"name":  func(_, n *yaml.Node, f string) { pool.Name = p.name(n, f) },
			"nodes": func(_, n *yaml.Node, f string) { hasNodes = true; pool.Nodes = p.nodes(n, f) },
		})
		if deref(item).Kind == yaml.MappingNode {
			if pool.Name == "" && p.seen[f+".name"] == nil {
				p.fail(item, f+".name", "required")
			}
			if !hasNodes {
				p.fail(item, f+".nodes", "required: at least one node")
			}
		}
		for j := range pool.Nodes {
			pool.Nodes[j].Pool = pool.Name
		}
		out = append(out, pool)
	}
	return out
}

func (p *cfgParser) name(n *yaml.Node, field string) string {
	s, ok := p.scalar(n, field)
	if !ok {
		return ""
	}
	if s == "" || len(s) > 64 {
		p.fail(n, field, "want 1 to 64 characters, got %d", len(s))
		return ""
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			p.fail(n, field, "%q: use only letters, digits, '-', '_' and '.'", s)
			return ""
		}
	}
	return s
}

func (p *cfgParser) nodes(n *yaml.Node, field string) []NodeConfig {
	var out []NodeConfig
	for i, item := range p.list(n, field) {
		f := fmt.Sprintf("%s[%d]", field, i)
		nd := NodeConfig{Capacity: DefaultCapacity}
		var reportURL, reportPort *yaml.Node
		hasAddr := false
		p.mapping(item, f, map[string]func(k, v *yaml.Node, f string){
			"name":        func(_, n *yaml.Node, f string) { nd.Name = p.name(n, f) },
			"address":     func(_, n *yaml.Node, f string) { nd.Unicast = p.addr(n, f); hasAddr = true },
			"health_port": func(_, n *yaml.Node, f string) { nd.HealthPort = uint16(p.uint(n, f, 0, 65535)) },
			"report":      func(_, n *yaml.Node, f string) { reportURL = n },
			"report_port": func(_, n *yaml.Node, f string) { reportPort = n },
			"mac": func(_, n *yaml.Node, f string) {
				s, ok := p.scalar(n, f)
				if !ok {
					return
				}
				hw, err := net.ParseMAC(s)
				if err != nil || len(hw) != 6 {
					p.fail(n, f, "want a 48-bit MAC such as 02:00:00:00:00:01, got %q", s)
					return
				}
				if hw[0]&1 != 0 || [6]byte(hw) == ([6]byte{}) {
					p.fail(n, f, "%v is not a unicast MAC", hw)
					return
				}
				nd.MAC, nd.HasMAC = [6]byte(hw), true
			},
			"capacity": func(_, n *yaml.Node, f string) { nd.Capacity = uint32(p.uint(n, f, 1, MaxCapacity)) },
			"weight":   func(_, n *yaml.Node, f string) { nd.Weight = uint32(p.uint(n, f, 0, MaxCapacity)); nd.HasWeight = true },
			"drain":    func(_, n *yaml.Node, f string) { nd.Drain = p.boolean(n, f) },
		})
		if deref(item).Kind == yaml.MappingNode {
			if p.seen[f+".name"] == nil {
				p.fail(item, f+".name", "required")
			}
			if !hasAddr {
				p.fail(item, f+".address", "required: the node's unicast address")
			}
		}
		switch {
		case reportURL != nil && reportPort != nil:
			p.fail(reportPort, f+".report_port", "give either report (a URL) or report_port, not both")
		case reportURL != nil:
			s, ok := p.scalar(reportURL, f+".report")
			if ok {
				u, err := url.Parse(s)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					p.fail(reportURL, f+".report", "want an http:// or https:// URL, got %q", s)
				} else {
					nd.ReportURL = s
				}
			}
		case reportPort != nil:
			port := p.uint(reportPort, f+".report_port", 1, 65535)
			if port != 0 && nd.Unicast.IsValid() {
				nd.ReportURL = "http://" + netip.AddrPortFrom(nd.Unicast, uint16(port)).String() + DefaultReportPath
			}
		}
		out = append(out, nd)
	}
	return out
}

func isPrime(n uint64) bool {
	if n < 2 {
		return false
	}
	for d := uint64(2); d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

var errNoConfig = errors.New("sched: nil config")

var yamlLine = regexp.MustCompile(`^yaml: line (\d+):`)

// DeciderConfigFrom takes the pin and transition table sizes from a
// router config.
func DeciderConfigFrom(c *Config) lookup.DeciderConfig {
	return lookup.DeciderConfig{PinCapacity: c.Pins.Capacity, TransitionCapacity: c.Transitions.Capacity}
}
