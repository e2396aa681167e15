package fastpath

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/anysched/anysched/header"
)

// TestDecrementTTL4MatchesFullRecompute checks the RFC 1624 update against a
// checksum computed from scratch over random headers of every legal length,
// including the corner cases of checksum 0x0000/0xffff that break the older
// RFC 1141 formula.
func TestDecrementTTL4MatchesFullRecompute(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 50000; i++ {
		ihl := 5 + rng.IntN(11)
		hdr := make([]byte, ihl*4)
		for j := range hdr {
			hdr[j] = byte(rng.UintN(256))
		}
		hdr[0] = 0x40 | byte(ihl)
		hdr[8] = byte(2 + rng.IntN(254))
		binary.BigEndian.PutUint16(hdr[10:12], ipv4HeaderChecksum(hdr))
		ttl := hdr[8]
		if !decrementTTL4(hdr) {
			t.Fatalf("decrementTTL4 refused TTL %d", ttl)
		}
		if hdr[8] != ttl-1 {
			t.Fatalf("TTL %d after decrementing %d", hdr[8], ttl)
		}
		got := binary.BigEndian.Uint16(hdr[10:12])
		if want := ipv4HeaderChecksum(hdr); got != want {
			t.Fatalf("header % x: incremental checksum %#04x, full recompute %#04x", hdr, got, want)
		}
	}
}

func TestDecrementTTL4Corners(t *testing.T) {
	// Headers whose checksum is 0x0000 and 0xffff before the update: the
	// identification field is solved for so the checksum lands there.
	for _, want := range []uint16{0x0000, 0xffff} {
		for _, ttl := range []byte{2, 3, 64, 128, 255} {
			hdr := make([]byte, 20)
			hdr[0], hdr[8], hdr[9] = 0x45, ttl, 6
			found := false
			for id := 0; id < 65536 && !found; id++ {
				binary.BigEndian.PutUint16(hdr[4:6], uint16(id))
				found = ipv4HeaderChecksum(hdr) == want
			}
			if !found {
				// 0xffff is never produced by a correct checksum over
				// non-zero data; 0x0000 always can be.
				if want == 0 {
					t.Fatalf("ttl %d: no id gives checksum 0", ttl)
				}
				continue
			}
			binary.BigEndian.PutUint16(hdr[10:12], want)
			if !decrementTTL4(hdr) {
				t.Fatal("refused")
			}
			if got, full := binary.BigEndian.Uint16(hdr[10:12]), ipv4HeaderChecksum(hdr); got != full {
				t.Fatalf("ttl %d from checksum %#04x: got %#04x want %#04x", ttl, want, got, full)
			}
		}
	}
}

func TestDecrementTTLRefusesExpiry(t *testing.T) {
	for _, ttl := range []byte{0, 1} {
		hdr := make([]byte, 20)
		hdr[0], hdr[8] = 0x45, ttl
		binary.BigEndian.PutUint16(hdr[10:12], ipv4HeaderChecksum(hdr))
		before := append([]byte(nil), hdr...)
		if decrementTTL4(hdr) {
			t.Fatalf("TTL %d accepted", ttl)
		}
		if string(before) != string(hdr) {
			t.Fatalf("TTL %d: header changed", ttl)
		}
		h6 := make([]byte, 40)
		h6[0], h6[7] = 0x60, ttl
		if decrementHopLimit6(h6) || h6[7] != ttl {
			t.Fatalf("hop limit %d accepted or changed", ttl)
		}
	}
	if decrementTTL4(make([]byte, 19)) || decrementHopLimit6(make([]byte, 39)) {
		t.Fatal("short header accepted")
	}
	h6 := make([]byte, 40)
	h6[7] = 64
	if !decrementHopLimit6(h6) || h6[7] != 63 {
		t.Fatalf("hop limit %d after decrementing 64", h6[7])
	}
}

func TestSetMACsKeepsVLAN(t *testing.T) {
	frame := []byte{
		1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2,
		0x81, 0x00, 0x00, 0x2a, 0x08, 0x00,
	}
	dst := MAC{0xa, 0xb, 0xc, 0xd, 0xe, 0xf}
	src := MAC{0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f}
	if !setMACs(frame, &dst, &src) {
		t.Fatal("refused")
	}
	if MAC(frame[0:6]) != dst || MAC(frame[6:12]) != src {
		t.Fatalf("MACs % x", frame[:12])
	}
	if frame[12] != 0x81 || frame[15] != 0x2a || frame[16] != 0x08 {
		t.Fatalf("VLAN tag changed: % x", frame[12:])
	}
	if setMACs(frame[:11], &dst, &src) {
		t.Fatal("short frame accepted")
	}
}

// ipv4HeaderChecksum computes the IPv4 header checksum from scratch over
// hdr with its checksum field taken as zero: the reference the tests hold
// the incremental update to.
func ipv4HeaderChecksum(hdr []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(hdr); i += 2 {
		if i == header.IPv4ChecksumOffset {
			continue
		}
		sum += uint32(binary.BigEndian.Uint16(hdr[i : i+2]))
	}
	if len(hdr)%2 == 1 {
		sum += uint32(hdr[len(hdr)-1]) << 8
	}
	for sum > 0xffff {
		sum = (sum & 0xffff) + (sum >> 16)
	}
	return ^uint16(sum)
}
