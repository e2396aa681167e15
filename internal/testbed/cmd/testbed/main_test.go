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
