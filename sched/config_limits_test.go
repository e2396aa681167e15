package sched

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/anysched/anysched/lookup"
)

// aliasBomb is an 11 KB config whose aliases expand to n×n node configs:
// the shape of issue 11 finding 13's file (1,000,000 nodes, 15 s, 1.5 GB).
func aliasBomb(n int) []byte {
	nodes := "[&n {name: a, address: 10.0.0.1}" + strings.Repeat(", *n", n-1) + "]"
	return []byte("vips:\n  - address: 10.200.0.1\ntable:\n  seed: 6a1c5e0f3b9d47a2c8e1f05d7b3a9c64\npools:\n  - &p {name: p0, nodes: " + nodes + "}\n" + strings.Repeat("  - *p\n", n-1))
}

func TestAliasBombIsRefusedBeforeItIsWalked(t *testing.T) {
	bomb := aliasBomb(1000)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := ParseConfig(bomb, "bomb.yaml")
	runtime.ReadMemStats(&after)
	var es ConfigErrors
	if !errors.As(err, &es) || len(es) != 1 || !strings.Contains(es[0].Error(), "YAML nodes with its aliases expanded") {
		t.Fatalf("%d-byte alias bomb: %v", len(bomb), err)
	}
	// Refused after the YAML parse and one linear count: the walk it
	// replaced allocated gigabytes.
	if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
		t.Errorf("refusing the bomb allocated %d bytes", got)
	}
	// Aliases that stay small are still fine.
	small := baseConfig + "probe: &p\n  interval: 2s\nreports: *p\n"
	if _, err := ParseConfig([]byte(small), "small.yaml"); err != nil {
		t.Fatalf("a config with one alias: %v", err)
	}
}

// The largest config the validation allows, MaxNodes nodes with every
// node setting, is well inside MaxConfigYAMLNodes and MaxConfigBytes.
func TestLargestValidConfigFitsTheLimits(t *testing.T) {
	var b strings.Builder
	b.WriteString("vips:\n  - address: 10.200.0.1\ntable:\n  size: 1000003\n  seed: 6a1c5e0f3b9d47a2c8e1f05d7b3a9c64\npools:\n  - name: p\n    nodes:\n")
	for i := 0; i < MaxNodes; i++ {
		fmt.Fprintf(&b, "      - {name: n%d, address: 10.1.%d.%d, health_port: 8080, report_port: 9100, mac: \"02:00:00:00:%02x:%02x\", capacity: 100, weight: 10, drain: false}\n", i, i/250, i%250+1, i>>8, i&0xff)
	}
	if b.Len() > MaxConfigBytes {
		t.Fatalf("%d bytes", b.Len())
	}
	cfg, err := ParseConfig([]byte(b.String()), "large.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NodeCount() != MaxNodes {
		t.Fatalf("%d nodes", cfg.NodeCount())
	}
}

func TestReadConfigFileStopsAtTheLimit(t *testing.T) {
	_, err := ReadConfigFile("/dev/zero")
	if err == nil || !strings.Contains(err.Error(), "/dev/zero") || !strings.Contains(err.Error(), "larger than 1048576 bytes") {
		t.Fatalf("/dev/zero: %v", err)
	}
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	pad := "#" + strings.Repeat("x", 99) + "\n"
	body := baseConfig + strings.Repeat(pad, (MaxConfigBytes-len(baseConfig))/len(pad))
	if err := os.WriteFile(big, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(big); err != nil {
		t.Fatalf("a %d-byte config: %v", len(body), err)
	}
	if err := os.WriteFile(big, []byte(body+strings.Repeat("#", MaxConfigBytes+1-len(body))), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("a config one byte over: %v", err)
	}
	if _, err := ParseConfig(make([]byte, MaxConfigBytes+1), "mem"); err == nil {
		t.Fatal("ParseConfig took more than MaxConfigBytes")
	}
}

func TestConfigErrorsAreCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString(baseConfig)
	for i := 0; i < 500; i++ {
		fmt.Fprintf(&b, "bogus%d: 1\n", i)
	}
	_, err := ParseConfig([]byte(b.String()), "many.yaml")
	var es ConfigErrors
	if !errors.As(err, &es) {
		t.Fatal(err)
	}
	if len(es) != maxConfigErrors+1 || es[len(es)-1].Msg != "and 480 more problems" {
		t.Fatalf("%d errors, last %q", len(es), es[len(es)-1].Msg)
	}
	if !strings.Contains(es[0].Error(), "many.yaml:") || !strings.Contains(es[0].Error(), "bogus0") {
		t.Fatalf("first error %q", es[0])
	}
}

func TestCheckMemoryNamesTheField(t *testing.T) {
	parse := func(extra string) *Config {
		cfg, err := ParseConfig([]byte(baseConfig+extra), "mem.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	huge := parse("pins:\n  capacity: 67108864\n")
	err := huge.CheckMemory(2, 8<<30)
	var es ConfigErrors
	if !errors.As(err, &es) || es[0].Field != "pins.capacity" || es[0].Line != 18 || !strings.Contains(es[0].Msg, "67108864") {
		t.Fatalf("pins.capacity 67108864 on 2 workers with 8 GiB: %v", err)
	}
	if err := huge.CheckMemory(1, 64<<30); err != nil {
		t.Fatalf("with 64 GiB: %v", err)
	}
	trans := parse("transitions:\n  capacity: 33554432\n")
	if err := trans.CheckMemory(4, 8<<30); err == nil || !strings.Contains(err.Error(), "transitions.capacity") {
		t.Fatalf("transitions.capacity: %v", err)
	}
	if err := parse("").CheckMemory(8, 1<<30); err != nil {
		t.Fatalf("defaults on 8 workers in 1 GiB: %v", err)
	}
	if err := huge.CheckMemory(2, 0); err != nil {
		t.Fatalf("unknown memory: %v", err)
	}
}

// TableBytes must not undercount what lookup.NewDecider allocates, or
// CheckMemory lets through what does not fit.
func TestTableBytesCoversDecider(t *testing.T) {
	for _, c := range []struct{ pins, trans int }{{1 << 14, 1 << 12}, {10000, 100}, {8, 8}} {
		cfg := &Config{Pins: PinConfig{Capacity: c.pins}, Transitions: TransitionConfig{Capacity: c.trans}}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		d := lookup.NewDecider(DeciderConfigFrom(cfg))
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(d)
		if got := after.TotalAlloc - before.TotalAlloc; got > cfg.TableBytes() {
			t.Errorf("capacities %d/%d: the decider allocated %d bytes, TableBytes says %d", c.pins, c.trans, got, cfg.TableBytes())
		}
	}
}

func TestMemoryAvailableFromMeminfoAndCgroup(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mi := write("meminfo", "MemTotal:       24683716 kB\nMemFree:        21929128 kB\nMemAvailable:   23973084 kB\n")
	if got, err := memAvailable(mi); err != nil || got != 23973084<<10 {
		t.Fatalf("MemAvailable %d, %v", got, err)
	}
	if _, err := memAvailable(write("bad", "MemTotal: 1 kB\n")); err == nil {
		t.Fatal("meminfo without MemAvailable accepted")
	}
	self := write("self-cgroup", "0::/router.slice/anysched.service\n")
	mount := filepath.Join(dir, "cg")
	write("cg/router.slice/memory.max", "4294967296\n")
	write("cg/router.slice/memory.current", "1073741824\n")
	write("cg/router.slice/anysched.service/memory.max", "max\n")
	write("cg/router.slice/anysched.service/memory.current", "1000\n")
	if room, ok := cgroupRoom(self, mount); !ok || room != 3<<30 {
		t.Fatalf("cgroup room %d, %v; want the parent's 3 GiB", room, ok)
	}
	if _, ok := cgroupRoom(write("none", "0::/\n"), filepath.Join(dir, "nothing")); ok {
		t.Fatal("a limit found where there is none")
	}
	if avail, err := MemoryAvailable(); err != nil || avail == 0 {
		t.Fatalf("this machine: %d, %v", avail, err)
	}
}

// BenchmarkParseConfigAliasBomb is what the 11 KB alias bomb costs a
// (re)load now: the YAML parse and one memoized count.
func BenchmarkParseConfigAliasBomb(b *testing.B) {
	bomb := aliasBomb(1000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseConfig(bomb, "bomb.yaml"); err == nil {
			b.Fatal("accepted")
		}
	}
}

// BenchmarkReadConfigDevZero is what --config /dev/zero costs: 1 MiB read.
func BenchmarkReadConfigDevZero(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := LoadConfig("/dev/zero"); err == nil {
			b.Fatal("accepted")
		}
	}
}
