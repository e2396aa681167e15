package sched

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// TableBytes is the memory one fast-path worker's pin table and
// transition set take with this config: their entries as lookup counts
// them (capacities round up to a power of two), plus room for what it
// does not count (table headers, occupancy bitmaps of 1 bit per 8 entries,
// the allocator's rounding). TestTableBytesCoversDecider holds it above
// what lookup.NewDecider allocates.
func (c *Config) TableBytes() uint64 {
	entries := uint64(DeciderConfigFrom(c).Bytes())
	return entries + entries/256 + 4096
}

// MemoryBudgetShare is the part of the available memory the flow tables
// of all workers may take together; the rest is for the UMEM, the Go heap
// and everything else on the machine.
const MemoryBudgetShare = 2

// CheckMemory refuses a config whose flow tables, for workers workers,
// need more than available/MemoryBudgetShare bytes. The error names the
// larger of pins.capacity and transitions.capacity, where it is in the
// file, and what would fit. available 0 means unknown: nothing is checked.
func (c *Config) CheckMemory(workers int, available uint64) error {
	if available == 0 || workers <= 0 {
		return nil
	}
	budget := available / MemoryBudgetShare
	need := c.TableBytes() * uint64(workers)
	if need <= budget {
		return nil
	}
	field, capacity := "pins.capacity", c.Pins.Capacity
	if c.Transitions.Capacity > c.Pins.Capacity {
		field, capacity = "transitions.capacity", c.Transitions.Capacity
	}
	e := &ConfigError{File: c.Path, Field: field, Msg: fmt.Sprintf(
		"%d entries: the pin tables and transition sets of %d worker(s) need %d MiB, more than the %d MiB budget (1/%d of the %d MiB available); lower the capacity",
		capacity, workers, need>>20, budget>>20, MemoryBudgetShare, available>>20)}
	if pos, ok := c.positions[field]; ok {
		e.Line, e.Col = pos[0], pos[1]
	}
	return ConfigErrors{e}
}

// MemoryAvailable is the memory this process may still use: the kernel's
// MemAvailable, or less when a cgroup (v2) memory limit of this process
// or one of its parents leaves less room.
func MemoryAvailable() (uint64, error) {
	avail, err := memAvailable("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	if room, ok := cgroupRoom("/proc/self/cgroup", "/sys/fs/cgroup"); ok && room < avail {
		avail = room
	}
	return avail, nil
}

func memAvailable(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: MemAvailable %q: %w", path, rest, err)
		}
		return kb << 10, nil
	}
	return 0, errors.New(path + ": no MemAvailable line")
}

// cgroupRoom is the least room (memory.max - memory.current) over the
// cgroup v2 of this process and its parents; ok is false when none has a
// limit.
func cgroupRoom(selfCgroup, mount string) (room uint64, ok bool) {
	data, err := os.ReadFile(selfCgroup)
	if err != nil {
		return 0, false
	}
	var path string
	for _, line := range strings.Split(string(data), "\n") {
		if p, found := strings.CutPrefix(line, "0::"); found {
			path = p
		}
	}
	if path == "" {
		return 0, false
	}
	for dir := filepath.Join(mount, path); strings.HasPrefix(dir, mount); dir = filepath.Dir(dir) {
		max, err1 := readCgroupValue(filepath.Join(dir, "memory.max"))
		cur, err2 := readCgroupValue(filepath.Join(dir, "memory.current"))
		if err1 == nil && err2 == nil {
			r := uint64(0)
			if max > cur {
				r = max - cur
			}
			if !ok || r < room {
				room, ok = r, true
			}
		}
		if dir == mount {
			break
		}
	}
	return room, ok
}

// readCgroupValue reads a number from a cgroup file; "max" (no limit) is
// an error.
func readCgroupValue(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
}
