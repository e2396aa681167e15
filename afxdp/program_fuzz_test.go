package afxdp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// refVerdict is the XDP program's classification written plainly in Go:
// the fuzz test holds the program to it.
func refVerdict(f []byte, vips map[[vipKeySize]byte]bool) Counter {
	if len(f) < 14 {
		return CounterPassMalformed
	}
	et := binary.BigEndian.Uint16(f[12:])
	off := 14
	for i := 0; i < 2 && (et == 0x8100 || et == 0x88a8); i++ {
		if len(f) < off+4 {
			return CounterPassMalformed
		}
		et = binary.BigEndian.Uint16(f[off+2:])
		off += 4
	}
	var key [vipKeySize]byte
	var ttl byte
	var l4 int
	var proto byte
	lookup := func() Counter {
		if !vips[key] {
			return CounterPassNotVIP
		}
		if ttl <= 1 {
			return CounterPassTTL
		}
		return CounterPassNoSocket // redirect, and no socket in the test
	}
	switch et {
	case 0x0800:
		if len(f) < off+20 || f[off]>>4 != 4 {
			return CounterPassMalformed
		}
		ihl := int(f[off]&15) * 4
		if ihl < 20 {
			return CounterPassMalformed
		}
		key[10], key[11] = 0xff, 0xff
		copy(key[12:16], f[off+16:off+20])
		ttl = f[off+8]
		if binary.BigEndian.Uint16(f[off+6:])&0x1fff != 0 {
			return lookup()
		}
		proto = f[off+9]
		l4 = off + ihl
		if len(f) < l4+4 {
			return CounterPassMalformed
		}
		switch {
		case proto == 6:
		case proto == 1 && (f[l4] == 3 || f[l4] == 11):
			return lookup()
		default:
			return CounterPassNotVIP
		}
	case 0x86dd:
		if len(f) < off+40 || f[off]>>4 != 6 {
			return CounterPassMalformed
		}
		dst := f[off+24 : off+40]
		if binary.BigEndian.Uint64(dst[0:8]) == 0 && binary.BigEndian.Uint32(dst[8:12]) == 0xffff {
			return CounterPassNotVIP
		}
		copy(key[:16], dst)
		ttl = f[off+7]
		proto = f[off+6]
		switch proto {
		case 0, 43, 44, 60:
			return lookup()
		}
		l4 = off + 40
		if len(f) < l4+4 {
			return CounterPassMalformed
		}
		switch {
		case proto == 6:
		case proto == 58 && f[l4] >= 1 && f[l4] <= 3:
			return lookup()
		default:
			return CounterPassNotVIP
		}
	default:
		return CounterPassNonIP
	}
	copy(key[16:18], f[l4+2:l4+4]) // TCP destination port
	return lookup()
}

func fuzzSeeds() [][]byte {
	other4 := netip.MustParseAddr("10.99.0.2")
	seeds := [][]byte{
		frame{dst: testVIP4, ttl: 64, proto: 6, dport: 443}.bytes(),
		frame{dst: testVIP4, ttl: 1, proto: 6, dport: 443}.bytes(),
		frame{dst: testVIP4, ttl: 64, proto: 6, dport: 443, ihl: 7}.bytes(),
		frame{dst: testVIP4, ttl: 64, proto: 6, fragOff: 0x00b9}.bytes(),
		frame{dst: testVIP4, ttl: 64, proto: 1, icmp: 3}.bytes(),
		frame{dst: other4, ttl: 64, proto: 6, dport: 443}.bytes(),
		frame{vlans: 2, dst: testVIP4, ttl: 64, proto: 6, dport: 443}.bytes(),
		frame{vlans: 1, dst: testVIP6, ttl: 64, proto: 6, dport: 443}.bytes(),
		frame{dst: testVIP6, ttl: 64, proto: 58, icmp: 2}.bytes(),
		frame{dst: testVIP6, ttl: 64, proto: 44}.bytes(),
		frame{etype: 0x0806}.bytes(),
		frame{dst: testVIP4, ttl: 64, proto: 6, dport: 443, cut: 18}.bytes(),
	}
	return seeds
}

// FuzzProgramVerdict runs the XDP program on arbitrary frames with
// BPF_PROG_TEST_RUN and checks that it always passes (no socket is in
// the XSK map), moves exactly one counter, and agrees with refVerdict.
func FuzzProgramVerdict(f *testing.F) {
	requireRoot(f)
	if os.Getenv("AFXDP_WRITE_CORPUS") != "" {
		dir := filepath.Join("testdata", "fuzz", "FuzzProgramVerdict")
		os.MkdirAll(dir, 0o755)
		for i, s := range fuzzSeeds() {
			os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%02d", i)), []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)), 0o644)
		}
	}
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	p, err := LoadProgram(ProgramOptions{MaxVIPs: 16, MaxQueues: 1})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { p.Close() })
	vips := []netip.AddrPort{netip.AddrPortFrom(testVIP4, 443), netip.AddrPortFrom(testVIP6, 443)}
	if err := p.SetVIPs(vips); err != nil {
		f.Fatal(err)
	}
	keys := map[[vipKeySize]byte]bool{}
	for _, v := range vips {
		keys[vipKey(v.Addr(), v.Port())] = true
		keys[vipKey(v.Addr(), 0)] = true
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 14 || len(data) > 2048 {
			return // the kernel refuses test runs on less than an Ethernet header
		}
		got := runVerdict(t, p, data)
		if want := refVerdict(data, keys); got != want {
			t.Fatalf("frame %x: program %s, reference %s", data, got, want)
		}
	})
}
