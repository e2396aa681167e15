package main

import (
	"runtime"
	"sync"
	"syscall"
	"time"
)

// cpuMeter measures this process's CPU use as a share of the machine
// (0..1, all cores together), from getrusage deltas between two calls to
// sample. The scheduler reads it in each load report.
type cpuMeter struct {
	mu       sync.Mutex
	lastWall time.Time
	lastCPU  time.Duration
	share    float64
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func newCPUMeter(now time.Time) *cpuMeter {
	return &cpuMeter{lastWall: now, lastCPU: processCPU()}
}

// sample returns the CPU share since the previous sample. Calls closer
// together than minWindow return the previous value, so a burst of report
// requests does not turn rounding noise into load.
func (m *cpuMeter) sample(now time.Time) float64 {
	const minWindow = 200 * time.Millisecond
	m.mu.Lock()
	defer m.mu.Unlock()
	wall := now.Sub(m.lastWall)
	if wall < minWindow {
		return m.share
	}
	cpu := processCPU()
	share := float64(cpu-m.lastCPU) / float64(wall) / float64(runtime.NumCPU())
	m.share = min(max(share, 0), 1)
	m.lastWall, m.lastCPU = now, cpu
	return m.share
}
