package parser

import "github.com/anysched/anysched/header"

// header.EthernetHeaderLen is destination MAC, source MAC and EtherType.
// parseEthernet reads the Ethernet II header and up to MaxVLANTags tags and
// returns the offset of the L3 header.
func parseEthernet(frame []byte, p *Packet) (int, Status) {
	if len(frame) < header.EthernetHeaderLen {
		return 0, StatusTruncatedEthernet
	}
	et := be16(frame[header.EthernetTypeOffset:])
	off := header.EthernetHeaderLen
	for et == EtherTypeVLAN || et == EtherTypeQinQ || et == EtherTypeQinQv1 {
		if p.VLANCount == MaxVLANTags {
			return 0, StatusTooManyVLANTags
		}
		if len(frame) < off+4 {
			return 0, StatusTruncatedVLAN
		}
		p.VLANOff[p.VLANCount] = uint16(off - 2)
		p.VLANTCI[p.VLANCount] = be16(frame[off : off+2])
		p.VLANCount++
		et = be16(frame[off+2 : off+4])
		off += 4
	}
	p.EtherType = et
	return off, StatusOK
}
