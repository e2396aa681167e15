package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/anysched/anysched/internal/testbed"
)

// FuzzParseDelay: any word either parses to a node in range and a delay in
// 0..1m that prints back to the same assignment, or is refused with an
// error that names the word; never a panic.
func FuzzParseDelay(f *testing.F) {
	for _, s := range []string{"node1=20ms", "node2=0s", "node200=1m", "node0=1ms", "node01=1ms", "node1=-1ms",
		"node1=61s", "node1", "=1ms", "node=1ms", "nodex=1ms", "node1=1ms=2ms", "node99999999999999999999=1s", "eth0=1ms"} {
		f.Add(s, 4)
	}
	f.Fuzz(func(t *testing.T, word string, nodes int) {
		nodes = max(0, min(nodes, 200))
		a, err := parseDelay(word, nodes)
		if err != nil {
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", word)) {
				t.Fatalf("%q: error %q does not name the word", word, err)
			}
			return
		}
		if a.node < 1 || (nodes > 0 && a.node > nodes) || a.delay < 0 || a.delay > time.Minute {
			t.Fatalf("%q with %d nodes: accepted %+v", word, nodes, a)
		}
		again, err := parseDelay(fmt.Sprintf("node%d=%v", a.node, a.delay), nodes)
		if err != nil || again != a {
			t.Fatalf("%q: %+v prints as something that parses to %+v, %v", word, a, again, err)
		}
	})
}

// FuzzControlRequest: whatever line arrives on the control socket, the
// answer is one line, "ok ..." or "error ...", and a refused request
// changes no delay. The bed here has delay lines on no node, so a request
// that names a node is refused at SetDelay, after its words parsed; only
// "delay" alone (show) is ok, with the delays as they were.
func FuzzControlRequest(f *testing.F) {
	for _, s := range []string{"delay", "delay node1=5ms", "delay node1=5ms node3=1ms", "delay node9=1ms", "hello", "",
		"delay node1=1ms\nnode2=2ms", "delay  node2=7ms\t", "DELAY node1=1ms"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		bed := &testbed.Bed{Prefix: "fuzz", Nodes: []*testbed.Host{{Role: "node1"}, {Role: "node2"}, {Role: "node3"}}}
		dc := &delayControl{bed: bed, delays: []time.Duration{time.Millisecond, 0, 0}}
		answer := dc.handle(line)
		if strings.ContainsAny(answer, "\r\n") {
			t.Fatalf("%q: the answer %q is not one line", line, answer)
		}
		switch {
		case answer == "ok "+formatDelays(dc.delays):
		case strings.HasPrefix(answer, "error "):
			if dc.delays[0] != time.Millisecond || dc.delays[1] != 0 || dc.delays[2] != 0 {
				t.Fatalf("%q: refused (%q) but the delays changed to %v", line, answer, dc.delays)
			}
		default:
			t.Fatalf("%q: answer %q is neither ok with the delays nor an error", line, answer)
		}
	})
}
