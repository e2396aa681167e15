package packettest

import (
	"math/rand/v2"

	"github.com/anysched/anysched/parser"
)

// FlowKeyN is the i-th of a family of distinct IPv4 TCP flows to
// 10.200.0.1:443 (source 192.0.2.x, source port i).
func FlowKeyN(i int) parser.FlowKey {
	var k parser.FlowKey
	k.SetIPv4([]byte{192, 0, 2, byte(i >> 16)}, []byte{10, 200, 0, 1})
	k.SrcPort, k.DstPort, k.Proto = uint16(i), 443, 6
	return k
}

// RandomFlowKey is a TCP flow with random addresses (IPv6 when v6) and
// ports drawn from r.
func RandomFlowKey(r *rand.Rand, v6 bool) parser.FlowKey {
	var k parser.FlowKey
	var src, dst [16]byte
	for i := range src {
		src[i], dst[i] = byte(r.Uint32()), byte(r.Uint32())
	}
	if v6 {
		k.SetIPv6(src[:], dst[:])
	} else {
		k.SetIPv4(src[:4], dst[:4])
	}
	k.SrcPort, k.DstPort, k.Proto = uint16(r.Uint32()), uint16(r.Uint32()), 6
	return k
}
