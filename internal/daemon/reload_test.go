package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anysched/anysched/internal/packettest"
	"github.com/anysched/anysched/internal/testbed"
	"github.com/anysched/anysched/ring/offline"
	"github.com/anysched/anysched/sched"
)

// lockedBuffer is a log sink safe for the watcher's goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestBadReloadKeepsTheRunningConfig is the regression test of issue 11
// finding 13 on the reload path the daemon runs on SIGHUP: an alias bomb,
// a config that is /dev/zero, an oversized file and an invalid field each
// fail, are counted and logged with the problem, and leave the running
// config and table in place; a good file afterwards is applied.
func TestBadReloadKeepsTheRunningConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "router.yaml")
	good := packettest.TwoNodeConfig("10.200.0.1")
	if err := os.WriteFile(path, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := sched.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	c := &Config{ConfigPath: path, Sched: cfg, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	p, err := newPlane(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	hup := make(chan os.Signal, 1)
	var st reloadStats
	done := make(chan struct{})
	go func() { p.watchReloads(ctx, path, hup, c.Log, &st); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	running := p.s.Config().Source
	gen := p.s.Current().Generation
	nodes := "[&n {name: a, address: 10.0.0.1}" + strings.Repeat(", *n", 999) + "]"
	bomb := "vips:\n  - address: 10.200.0.1\ntable:\n  seed: 6a1c5e0f3b9d47a2c8e1f05d7b3a9c64\npools:\n  - &p {name: p0, nodes: " + nodes + "}\n" + strings.Repeat("  - *p\n", 999)
	bad := []struct {
		name, says string
		write      func() error
	}{
		{"alias bomb", "YAML nodes with its aliases expanded", func() error { return os.WriteFile(path, []byte(bomb), 0o644) }},
		{"/dev/zero", "larger than 1048576 bytes", func() error {
			os.Remove(path)
			return os.Symlink("/dev/zero", path)
		}},
		{"2 MiB file", "larger than 1048576 bytes", func() error {
			os.Remove(path)
			return os.WriteFile(path, []byte(good+strings.Repeat("#\n", 1<<20)), 0o644)
		}},
		{"bad field", "pins.capacity", func() error { return os.WriteFile(path, []byte(good+"pins:\n  capacity: 3\n"), 0o644) }},
	}
	for i, b := range bad {
		if err := b.write(); err != nil {
			t.Fatal(err)
		}
		hup <- os.Interrupt
		if err := testbed.WaitFor(time.Now().Add(30*time.Second), func() error {
			if n := st.failed.Load(); n != uint64(i+1) {
				return fmt.Errorf("%d failed reloads", n)
			}
			return nil
		}); err != nil {
			t.Fatalf("%s: %v", b.name, err)
		}
		if p.s.Config().Source != running || p.s.Current().Generation != gen || st.ok.Load() != 0 {
			t.Fatalf("%s: the running config changed", b.name)
		}
		if !strings.Contains(logs.String(), b.says) {
			t.Fatalf("%s: the log does not say %q:\n%s", b.name, b.says, logs.String())
		}
	}
	// The router still reloads a good file.
	if err := os.WriteFile(path, []byte(strings.Replace(good, "name: b\n", "name: b\n        weight: 0\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	hup <- os.Interrupt
	if err := testbed.WaitFor(time.Now().Add(30*time.Second), func() error {
		if st.ok.Load() != 1 {
			return errors.New("not reloaded")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if p.s.Config().Source == running || p.s.Current().Generation <= gen {
		t.Fatal("a good reload was not applied")
	}
}

// Table capacities that do not fit in memory are a config error at start
// naming the field, before any table is allocated.
func TestCapacityBeyondMemoryFailsAtStart(t *testing.T) {
	orig := memoryAvailable
	memoryAvailable = func() (uint64, error) { return 1 << 30, nil }
	t.Cleanup(func() { memoryAvailable = orig })
	cfg, err := sched.ParseConfig([]byte(packettest.TwoNodeConfig("10.200.0.1")+"pins:\n  capacity: 67108864\n"), "big.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var pcap bytes.Buffer
	pcap.Write([]byte{0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0})
	in, err := offline.NewPcapRing(bytes.NewReader(pcap.Bytes()), int64(pcap.Len()), nil, 2, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	err = RunCapture(context.Background(), Config{ConfigPath: "big.yaml", Sched: cfg, Log: slog.New(slog.DiscardHandler)}, in)
	var ue *UsageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "pins.capacity") || !strings.Contains(err.Error(), "big.yaml:") {
		t.Fatalf("RunCapture: %v; want a usage error naming pins.capacity", err)
	}
}
