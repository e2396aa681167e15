package parser

const tcpMinHeaderLen = 20

// parseTCP reads the TCP header at off; frame ends where the IP packet ends.
// Options are skipped by the data offset, never interpreted.
func parseTCP(frame []byte, off int, p *Packet) Status {
	p.L4Off = uint16(off)
	b := frame[off:]
	if len(b) < tcpMinHeaderLen {
		return StatusTruncatedTCP
	}
	doff := int(b[12]>>4) * 4
	if doff < tcpMinHeaderLen || doff > len(b) {
		return StatusTCPBadDataOffset
	}
	p.Flow.SrcPort = be16(b[0:2])
	p.Flow.DstPort = be16(b[2:4])
	p.Seq = be32(b[4:8])
	p.Ack = be32(b[8:12])
	p.TCPFlags = b[13]
	p.PayloadOff = uint16(off + doff)
	p.Payload = b[doff:]
	return StatusOK
}
