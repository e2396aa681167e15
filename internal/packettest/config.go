package packettest

import (
	"fmt"
	"strings"
	"time"
)

// TwoNodeConfig is a router configuration with the given VIPs (port 443,
// TLS) and one pool of two nodes with configured MACs, a (02:..:0a, the
// address 10.201.0.11) and b (02:..:0b, 10.201.0.12), on a 1009-slot
// table: what tests that forward frames need.
func TwoNodeConfig(vips ...string) string {
	var b strings.Builder
	b.WriteString("vips:\n")
	for _, v := range vips {
		b.WriteString("  - address: " + v + "\n    port: 443\n")
	}
	b.WriteString(`pools:
  - name: p
    nodes:
      - name: a
        address: 10.201.0.11
        mac: "02:00:00:00:00:0a"
      - name: b
        address: 10.201.0.12
        mac: "02:00:00:00:00:0b"
table:
  size: 1009
  seed: "6a1c5e0f3b9d47a2c8e1f05d7b3a9c64"
`)
	return b.String()
}

// EqualNodesConfig is a router configuration of n equal nodes n0…n(n-1)
// in one pool, a table of m slots and the given grace period; extra adds
// lines (e.g. "drain: true") to the node of that index.
func EqualNodesConfig(n int, m uint32, grace time.Duration, extra map[int]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "vips:\n  - address: 10.200.0.1\npolicy: weighted\ntable:\n  size: %d\n  seed: 6a1c5e0f3b9d47a2c8e1f05d7b3a9c64\ngrace_period: %v\npools:\n  - name: p\n    nodes:\n", m, grace)
	for i := range n {
		fmt.Fprintf(&b, "      - name: n%d\n        address: 10.201.0.%d\n", i, i+1)
		if e, ok := extra[i]; ok {
			fmt.Fprintf(&b, "        %s\n", e)
		}
	}
	return b.String()
}
