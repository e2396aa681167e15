package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The end-to-end tests run the real binaries (signals, exit codes and
// process lifetime are part of what they check), built once per test run.
var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// failAfter bounds every wait of these tests: a deadline after which the
// test fails, never a pause.
const failAfter = 60 * time.Second

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "anynode-e2e-")
		if buildErr != nil {
			return
		}
		gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(gobin); err != nil {
			gobin = "go"
		}
		args := []string{"build", "-o", binDir + string(os.PathSeparator)}
		if raceBuild {
			args = append(args, "-race")
		}
		cmd := exec.Command(gobin, append(args, "github.com/anysched/anysched/cmd/anynode", "github.com/anysched/anysched/cmd/anyclient")...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// nodeProc is a running anynode and what it has logged.
type nodeProc struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	vip     string
	unicast string
	admin   string
	metrics string

	mu     sync.Mutex
	lines  []string
	grew   chan struct{} // closed and replaced on every new line
	exited chan struct{}
	code   int
}

// startNode runs anynode with args (plus --log-level debug) and waits for
// its "serving" line, from which it learns the bound addresses.
func startNode(t *testing.T, args ...string) *nodeProc {
	t.Helper()
	cmd := exec.Command(filepath.Join(binaries(t), "anynode"), args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &nodeProc{t: t, cmd: cmd, grew: make(chan struct{}), exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			n.mu.Lock()
			n.lines = append(n.lines, sc.Text())
			close(n.grew)
			n.grew = make(chan struct{})
			n.mu.Unlock()
		}
		err := cmd.Wait()
		n.mu.Lock()
		n.code = cmd.ProcessState.ExitCode()
		if err != nil && n.code == 0 {
			n.code = -1
		}
		n.mu.Unlock()
		close(n.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-n.exited:
		default:
			cmd.Process.Kill()
			<-n.exited
		}
		n.mu.Lock()
		for _, l := range n.lines {
			if strings.Contains(l, "DATA RACE") {
				t.Errorf("the race detector fired in anynode %v", args)
				break
			}
		}
		n.mu.Unlock()
		if t.Failed() {
			n.mu.Lock()
			t.Logf("anynode %v log:\n%s", args, strings.Join(n.lines, "\n"))
			n.mu.Unlock()
		}
	})
	_, line := n.waitLog("msg=serving", 0)
	fields := logFields(line)
	n.name, n.vip, n.unicast, n.admin, n.metrics = fields["node"], fields["vip"], fields["unicast"], fields["admin"], fields["metrics"]
	return n
}

// logFields reads the key=value pairs of a slog text line (values without
// spaces or quotes, as the serving line has).
func logFields(line string) map[string]string {
	m := map[string]string{}
	for _, f := range strings.Fields(line) {
		if k, v, ok := strings.Cut(f, "="); ok {
			m[k] = v
		}
	}
	return m
}

// waitLog waits for a log line containing substr at or after line index
// from; it returns the index after it and the line.
func (n *nodeProc) waitLog(substr string, from int) (int, string) {
	n.t.Helper()
	deadline := time.NewTimer(failAfter)
	defer deadline.Stop()
	for {
		n.mu.Lock()
		for i := from; i < len(n.lines); i++ {
			if strings.Contains(n.lines[i], substr) {
				line := n.lines[i]
				n.mu.Unlock()
				return i + 1, line
			}
		}
		from = max(from, len(n.lines))
		grew := n.grew
		n.mu.Unlock()
		select {
		case <-grew:
		case <-n.exited:
			// Lines still buffered are read before exited closes.
			n.mu.Lock()
			found := false
			for i := from; i < len(n.lines); i++ {
				found = found || strings.Contains(n.lines[i], substr)
			}
			n.mu.Unlock()
			if !found {
				n.t.Fatalf("anynode exited (code %d) before logging %q", n.exitCode(), substr)
			}
		case <-deadline.C:
			n.t.Fatalf("anynode did not log %q within %v", substr, failAfter)
		}
	}
}

func (n *nodeProc) logLen() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.lines)
}

func (n *nodeProc) exitCode() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.code
}

func (n *nodeProc) signal(sig syscall.Signal) {
	n.t.Helper()
	if err := n.cmd.Process.Signal(sig); err != nil {
		n.t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait waits for the process to exit and returns its exit code.
func (n *nodeProc) wait() int {
	n.t.Helper()
	select {
	case <-n.exited:
		return n.exitCode()
	case <-time.After(failAfter):
		n.t.Fatalf("anynode still running %v after it was asked to stop", failAfter)
		return -1
	}
}

// status fetches GET /status from the admin API.
func (n *nodeProc) status() statusReport {
	n.t.Helper()
	var st statusReport
	body := httpDo(n.t, http.MethodGet, "http://"+n.admin+"/status", http.StatusOK)
	if err := json.Unmarshal(body, &st); err != nil {
		n.t.Fatalf("GET /status: %v: %s", err, body)
	}
	return st
}

// waitStatus polls /status until cond holds (a readiness poll with a
// failure deadline).
func (n *nodeProc) waitStatus(what string, cond func(statusReport) bool) statusReport {
	n.t.Helper()
	deadline := time.Now().Add(failAfter)
	for {
		st := n.status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("%s: node %s never got there; last status %+v", what, n.name, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func httpDo(t *testing.T, method, url string, wantCode int) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if resp.StatusCode != wantCode {
		t.Fatalf("%s %s: status %d, want %d: %s", method, url, resp.StatusCode, wantCode, body)
	}
	return body
}

// clientProc is a running anyclient.
type clientProc struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	done           chan struct{}
}

func startClient(t *testing.T, args ...string) *clientProc {
	t.Helper()
	c := &clientProc{cmd: exec.Command(filepath.Join(binaries(t), "anyclient"), args...), done: make(chan struct{})}
	c.cmd.Stdout, c.cmd.Stderr = &c.stdout, &c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			c.cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

// wait returns the exit code, stdout and stderr.
func (c *clientProc) wait(t *testing.T) (int, string, string) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(2 * failAfter):
		t.Fatalf("anyclient %v did not finish", c.cmd.Args)
	}
	if strings.Contains(c.stderr.String(), "DATA RACE") {
		t.Errorf("the race detector fired in anyclient %v:\n%s", c.cmd.Args, c.stderr.String())
	}
	return c.cmd.ProcessState.ExitCode(), c.stdout.String(), c.stderr.String()
}

func runClient(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return startClient(t, args...).wait(t)
}

// clientGet is `anyclient get --json` as the test reads it.
type clientGet struct {
	Status   int    `json:"status"`
	Node     string `json:"node"`
	Migrated bool   `json:"migrated"`
	Resumed  bool   `json:"resumed"`
	Remote   string `json:"remote"`
	Anycast  string `json:"anycast"`
	Fallback string `json:"fallback"`
	Body     string `json:"body"`
}

func getJSON(t *testing.T, args ...string) clientGet {
	t.Helper()
	code, out, errOut := runClient(t, append([]string{"get", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("anyclient get %v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errOut)
	}
	var r clientGet
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("anyclient get %v: %v: %q", args, err, out)
	}
	return r
}

// loadResult is the final `anyclient load --json` line.
type loadResult struct {
	Final       bool           `json:"final"`
	Connections int            `json:"connections"`
	Migrated    int            `json:"migrated"`
	Resumed     int            `json:"resumed"`
	Fallbacks   int            `json:"fallbacks"`
	Broken      int            `json:"broken"`
	Requests    int            `json:"requests"`
	Failures    map[string]int `json:"failures"`
	Nodes       map[string]int `json:"nodes"`
}

func lastLoadResult(t *testing.T, out string) loadResult {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var r loadResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil || !r.Final {
		t.Fatalf("last line of anyclient load is not its final JSON result (%v): %q", err, out)
	}
	return r
}
