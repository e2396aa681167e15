package parser

import "github.com/anysched/anysched/header"

// parseTCP reads the TCP header at off; frame ends where the IP packet ends.
// Options are skipped by the data offset, never interpreted.
func parseTCP(frame []byte, off int, p *Packet) Status {
	p.L4Off = uint16(off)
	b := frame[off:]
	if len(b) < header.TCPMinimumHeaderLen {
		return StatusTruncatedTCP
	}
	doff := int(b[header.TCPDataOffsetOffset]>>4) * 4
	if doff < header.TCPMinimumHeaderLen || doff > len(b) {
		return StatusTCPBadDataOffset
	}
	p.Flow.SrcPort = be16(b[header.TCPSrcPortOffset:])
	p.Flow.DstPort = be16(b[header.TCPDstPortOffset:])
	p.Seq = be32(b[header.TCPSeqNumOffset:])
	p.Ack = be32(b[header.TCPAckNumOffset:])
	p.TCPFlags = b[header.TCPFlagsOffset]
	p.PayloadOff = uint16(off + doff)
	p.Payload = b[doff:]
	return StatusOK
}
