package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/anysched/anysched/internal/testbed"
)

func noEnv(string) string { return "" }

func TestBadUsageExits2NamingTheFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, "exactly one"},
		{[]string{"up", "down"}, nil, "exactly one"},
		{[]string{"sideways"}, nil, `"sideways"`},
		{[]string{"--nodes", "0", "up"}, nil, "--nodes"},
		{[]string{"up"}, map[string]string{"NODES": "201"}, "--nodes"},
		{[]string{"--vip4", "fd00::1", "up"}, nil, "--vip4"},
		{[]string{"up"}, map[string]string{"VIP6": "10.0.0.1"}, "--vip6"},
		{[]string{"--router-queues", "0", "up"}, nil, "--router-queues"},
		{[]string{"--prefix", "a/b", "down"}, nil, "--prefix"},
		{[]string{"--delay", "node3=1ms", "up"}, nil, "--delay"},
		{[]string{"--delay", "node1=soon", "up"}, nil, "--delay"},
		{[]string{"--delay", "node1=1ms", "status"}, nil, "--delay"},
		{[]string{"--frobnicate", "up"}, nil, "frobnicate"},
		{[]string{"--delay", "node1=1ms", "delay"}, nil, "--delay"},
		{[]string{"delay", "node1"}, nil, `delay "node1"`},
		{[]string{"delay", "node0=1ms"}, nil, `delay "node0=1ms"`},
		{[]string{"delay", "node01=1ms"}, nil, `delay "node01=1ms"`},
		{[]string{"delay", "node2=-1ms"}, nil, `delay "node2=-1ms"`},
		{[]string{"delay", "node2=2m"}, nil, `delay "node2=2m"`},
		{[]string{"delay", "eth0=1ms"}, nil, `delay "eth0=1ms"`},
	} {
		var stderr bytes.Buffer
		getenv := func(k string) string { return c.env[k] }
		if rc := run(c.args, getenv, &bytes.Buffer{}, &stderr, func() {}); rc != exitUsage || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v %v: exit %d, %q; want 2 naming %s", c.args, c.env, rc, stderr.String(), c.want)
		}
	}
}

// TestUpStatusDown: the command's bed is the package's bed, found again by
// status, and down leaves no namespace behind (twice in a row).
func TestUpStatusDown(t *testing.T) {
	testbed.RequireRoot(t)
	prefix := fmt.Sprintf("asbc%d", os.Getpid())
	t.Cleanup(func() { testbed.Down(prefix) })
	env := map[string]string{"PREFIX": prefix, "NODES": "3"}
	cmd := func(args ...string) (int, string) {
		var out, errs bytes.Buffer
		rc := run(args, func(k string) string { return env[k] }, &out, &errs, func() {})
		return rc, out.String() + errs.String()
	}
	if rc, out := cmd("up"); rc != exitOK || !strings.Contains(out, prefix+"-node3 ") {
		t.Fatalf("up: %d\n%s", rc, out)
	}
	if rc, out := cmd("up"); rc != exitFailure || !strings.Contains(out, "exists") {
		t.Fatalf("second up: %d\n%s", rc, out)
	}
	b, err := testbed.Open(prefix)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Client.PingOK(b.Nodes[2].Addr4, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	rc, out := cmd("status")
	if rc != exitOK {
		t.Fatalf("status: %d %s", rc, out)
	}
	for _, h := range b.Hosts() {
		if !strings.Contains(out, h.NS+" ") || !strings.Contains(out, h.Addr4.String()+" "+h.Addr6.String()) {
			t.Errorf("status does not show %s (%s %s):\n%s", h.NS, h.Addr4, h.Addr6, out)
		}
	}
	for range 2 {
		if rc, out := cmd("down"); rc != exitOK {
			t.Fatalf("down: %d %s", rc, out)
		}
		if exists, err := testbed.Exists(prefix); exists || err != nil {
			t.Fatalf("after down: exists %v %v", exists, err)
		}
	}
	if rc, out := cmd("status"); rc != exitOK || out != "testbed "+prefix+": down\n" {
		t.Fatalf("status after down: %d %q", rc, out)
	}
}

// TestUpWithDelayStaysUntilSignalled: with delay lines the bed lives as
// long as the command; it is gone when the command returns.
func TestUpWithDelayStaysUntilSignalled(t *testing.T) {
	testbed.RequireRoot(t)
	prefix := fmt.Sprintf("asbd%d", os.Getpid())
	t.Cleanup(func() { testbed.Down(prefix) })
	var during error
	wait := func() {
		b, err := testbed.Open(prefix)
		if err == nil {
			err = b.Client.PingOK(b.Nodes[1].Addr6, 2*time.Second) // through node2's delay line
		}
		during = err
	}
	var out bytes.Buffer
	if rc := run([]string{"--prefix", prefix, "--delay", "node2=5ms", "up"}, noEnv, &out, &out, wait); rc != exitOK {
		t.Fatalf("up --delay: %d\n%s", rc, out.String())
	}
	if during != nil {
		t.Fatalf("while up: %v", during)
	}
	if exists, err := testbed.Exists(prefix); exists || err != nil {
		t.Fatalf("bed left after up --delay returned: %v %v", exists, err)
	}
}

// TestDelayChangesWhileUp: `testbed delay` reaches the running `up
// --delay` and changes a node's delay line: an echo through node2 then
// takes at least the new delay (a delay line never releases a frame early,
// so this lower bound holds on any machine). A node the bed does not have
// is refused by the bed and changes nothing.
func TestDelayChangesWhileUp(t *testing.T) {
	testbed.RequireRoot(t)
	prefix := fmt.Sprintf("asbe%d", os.Getpid())
	t.Cleanup(func() { testbed.Down(prefix) })
	cmd := func(args ...string) (int, string, string) {
		var out, errs bytes.Buffer
		rc := run(append([]string{"--prefix", prefix}, args...), noEnv, &out, &errs, func() {})
		return rc, out.String(), errs.String()
	}
	var steps []string
	wait := func() {
		fail := func(format string, a ...any) { steps = append(steps, fmt.Sprintf(format, a...)) }
		b, err := testbed.Open(prefix)
		if err != nil {
			fail("open: %v", err)
			return
		}
		if rc, out, errs := cmd("delay"); rc != exitOK || out != "node1=0s node2=0s\n" {
			fail("delay (show): %d %q %q", rc, out, errs)
		}
		const longDelay = 300 * time.Millisecond
		if rc, out, errs := cmd("delay", "node2=300ms"); rc != exitOK || out != "node1=0s node2=300ms\n" {
			fail("delay node2=300ms: %d %q %q", rc, out, errs)
		}
		start := time.Now()
		if err := b.Client.PingOK(b.Nodes[1].Addr4, 5*time.Second); err != nil {
			fail("ping node2: %v", err)
		} else if took := time.Since(start); took < longDelay {
			fail("ping through node2's 300ms delay line answered in %v", took)
		}
		if rc, _, errs := cmd("delay", "node1=5ms", "node3=1ms"); rc != exitFailure || !strings.Contains(errs, "1..2") {
			fail("delay node3 on a 2-node bed: %d %q; want exit 1 naming 1..2", rc, errs)
		}
		if rc, out, errs := cmd("delay", "node2=0s"); rc != exitOK || out != "node1=0s node2=0s\n" {
			fail("delay node2=0s (node1 must be unchanged by the refused request): %d %q %q", rc, out, errs)
		}
	}
	var out bytes.Buffer
	if rc := run([]string{"--prefix", prefix, "--nodes", "2", "--delay", "node1=0s", "up"}, noEnv, &out, &out, wait); rc != exitOK {
		t.Fatalf("up --delay: %d\n%s", rc, out.String())
	}
	for _, s := range steps {
		t.Error(s)
	}
	if _, err := os.Stat(controlPath(prefix)); !os.IsNotExist(err) {
		t.Errorf("control socket left after up returned: %v", err)
	}
	if rc, _, errs := cmd("delay", "node1=1ms"); rc != exitFailure || !strings.Contains(errs, "no running") {
		t.Errorf("delay with no bed running: %d %q; want exit 1 saying no running bed", rc, errs)
	}
}
