package packettest

import "strings"

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
