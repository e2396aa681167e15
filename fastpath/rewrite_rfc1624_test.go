package fastpath

import (
	"encoding/binary"
	"testing"

	"github.com/anysched/anysched/parser"
)

// TestDecrementTTL4ConstantDelta checks the shortcut in decrementTTL4 (the
// checksum delta of a TTL decrement is the constant 0xfeff) against the
// general RFC 1624 update over the real old and new words, for every
// checksum value and a spread of TTLs and protocols.
func TestDecrementTTL4ConstantDelta(t *testing.T) {
	hdr := make([]byte, 20)
	for _, ttl := range []uint8{2, 3, 64, 128, 255} {
		for _, proto := range []uint8{0, 1, 6, 17, 58, 255} {
			for check := range 0x10000 {
				hdr[8], hdr[9] = ttl, proto
				binary.BigEndian.PutUint16(hdr[10:12], uint16(check))
				oldWord := uint16(ttl)<<8 | uint16(proto)
				want := parser.UpdateChecksum16(uint16(check), oldWord, oldWord-0x100)
				if !decrementTTL4(hdr) {
					t.Fatalf("ttl %d refused", ttl)
				}
				if got := binary.BigEndian.Uint16(hdr[10:12]); got != want || hdr[8] != ttl-1 || hdr[9] != proto {
					t.Fatalf("ttl %d proto %d check %#04x: got %#04x ttl %d, want %#04x", ttl, proto, check, got, hdr[8], want)
				}
			}
		}
	}
}
