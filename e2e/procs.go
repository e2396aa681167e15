package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// failAfter bounds every wait of these tests: past it the test fails. It
// is a failure deadline, never a pause.
const failAfter = 60 * time.Second

// bins is where TestMain built the binaries the tests run.
var bins struct {
	dir string
	err error
}

// buildBinaries builds anysched, anynode and anyclient once per test
// binary, without -race (the router's fast path under the race detector
// would be too slow for the bed; the packages have their own race tests).
func buildBinaries() (string, error) {
	dir, err := os.MkdirTemp("", "anysched-e2e-bin-")
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "build", "-o", dir+string(os.PathSeparator),
		"github.com/anysched/anysched/cmd/anysched",
		"github.com/anysched/anysched/cmd/anynode",
		"github.com/anysched/anysched/cmd/anyclient")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return dir, nil
}

// RunTests is the package's TestMain: it builds the binaries, runs the
// tests and removes the binaries.
func RunTests(m *testing.M) int {
	bins.dir, bins.err = buildBinaries()
	if bins.err == nil && bins.dir == "" {
		bins.err = fmt.Errorf("e2e: no binaries")
	}
	code := m.Run()
	if bins.dir != "" {
		os.RemoveAll(bins.dir)
	}
	return code
}

// bin returns the path of a built binary; it fails the test when the
// build failed or RunTests did not run.
func bin(t testing.TB, name string) string {
	t.Helper()
	if bins.err != nil {
		t.Fatal(bins.err)
	}
	if bins.dir == "" {
		t.Fatal("e2e: the binaries are built by RunTests (the package's TestMain)")
	}
	return filepath.Join(bins.dir, name)
}

// logBuffer collects a process's output for the failure log.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// maxLoggedOutput caps what a failed test logs of one process (its tail).
const maxLoggedOutput = 48 << 10

// Proc is a process the test started (router, node, Redis or client),
// inside a bed namespace, with its stdout and stderr captured. It is
// killed when the test ends, and its output goes to t.Log if the test
// failed.
type Proc struct {
	Name           string
	Cmd            *exec.Cmd
	Stdout, Stderr *logBuffer

	// client: a short-lived client whose output a failed test logs only
	// if it failed too (a churn runs hundreds of them).
	client bool
	exited chan struct{}
	err    error
}

// startProc starts cmd (from testbed.Host.Command: `ip netns exec` execs
// the program itself, so the PID is the program's and signals reach it).
func startProc(t testing.TB, name string, cmd *exec.Cmd) *Proc {
	t.Helper()
	p := &Proc{Name: name, Cmd: cmd, Stdout: &logBuffer{}, Stderr: &logBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.Stdout, p.Stderr
	// If the test binary dies without its cleanups, so do its daemons.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() && (!p.client || p.Cmd.ProcessState.ExitCode() != 0) {
			p.logTo(t)
		}
	})
	return p
}

// startClientProc is startProc for a short-lived client.
func startClientProc(t testing.TB, name string, cmd *exec.Cmd) *Proc {
	t.Helper()
	p := startProc(t, name, cmd)
	p.client = true
	return p
}

func (p *Proc) logTo(t testing.TB) {
	for _, s := range []struct {
		what string
		b    *logBuffer
	}{{"stdout", p.Stdout}, {"stderr", p.Stderr}} {
		out := s.b.String()
		if out == "" {
			continue
		}
		if len(out) > maxLoggedOutput {
			out = "[...]" + out[len(out)-maxLoggedOutput:]
		}
		t.Logf("--- %s %s (%s):\n%s", p.Name, s.what, p.state(), out)
	}
}

func (p *Proc) state() string {
	select {
	case <-p.exited:
		return "exited: " + p.Cmd.ProcessState.String()
	default:
		return "running"
	}
}

// Running reports whether the process has not exited.
func (p *Proc) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Exited is closed when the process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Signal sends sig to the process.
func (p *Proc) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.Cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: signal %v: %v", p.Name, sig, err)
	}
}

// Kill SIGKILLs the process (if it still runs) and waits for it.
func (p *Proc) Kill() {
	if p.Running() {
		p.Cmd.Process.Kill()
	}
	<-p.exited
}

// Wait waits for the process to exit and returns its exit code; the test
// fails if it is still running after failAfter.
func (p *Proc) Wait(t testing.TB) int {
	t.Helper()
	code, err := p.wait()
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// wait is Wait for goroutines other than the test's: an error instead of
// t.Fatal.
func (p *Proc) wait() (int, error) {
	select {
	case <-p.exited:
		return p.Cmd.ProcessState.ExitCode(), nil
	case <-time.After(failAfter):
		return -1, fmt.Errorf("%s still running after %v", p.Name, failAfter)
	}
}

// waitLog polls the process's stderr (where anysched and anynode log) for
// substr; the test fails if the process exits or failAfter passes first.
func (p *Proc) waitLog(t testing.TB, substr string) {
	t.Helper()
	deadline := time.Now().Add(failAfter)
	for !strings.Contains(p.Stderr.String(), substr) {
		if !p.Running() {
			t.Fatalf("%s exited (%s) before logging %q", p.Name, p.state(), substr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not log %q within %v", p.Name, substr, failAfter)
		}
		time.Sleep(20 * time.Millisecond) // polling interval of a deadline wait
	}
}
