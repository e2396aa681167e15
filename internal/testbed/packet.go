package testbed

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// TCP flag bits for TCPFrame.
const (
	TCPFin = 0x01
	TCPSyn = 0x02
	TCPRst = 0x04
	TCPPsh = 0x08
	TCPAck = 0x10
)

// TCPFrame builds an Ethernet frame holding an IPv4 or IPv6 TCP segment
// (by the family of dst) with TTL / hop limit 64 and correct checksums.
func TCPFrame(srcMAC, dstMAC [6]byte, src, dst netip.AddrPort, flags byte, payload []byte) []byte {
	tcp := make([]byte, 20+len(payload))
	binary.BigEndian.PutUint16(tcp[0:], src.Port())
	binary.BigEndian.PutUint16(tcp[2:], dst.Port())
	binary.BigEndian.PutUint32(tcp[4:], 1000)
	if flags&TCPAck != 0 {
		binary.BigEndian.PutUint32(tcp[8:], 2000)
	}
	tcp[12] = 5 << 4
	tcp[13] = flags
	binary.BigEndian.PutUint16(tcp[14:], 65535)
	copy(tcp[20:], payload)
	sa, da := src.Addr().Unmap(), dst.Addr().Unmap()
	binary.BigEndian.PutUint16(tcp[16:], ^Checksum(pseudoHeaderSum(sa, da, len(tcp)), tcp))

	f := make([]byte, 0, 14+40+len(tcp))
	f = append(f, dstMAC[:]...)
	f = append(f, srcMAC[:]...)
	if da.Is4() {
		f = binary.BigEndian.AppendUint16(f, 0x0800)
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(tcp)))
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
		ip[8], ip[9] = 64, 6
		s4, d4 := sa.As4(), da.As4()
		copy(ip[12:], s4[:])
		copy(ip[16:], d4[:])
		binary.BigEndian.PutUint16(ip[10:], ^Checksum(0, ip))
		f = append(f, ip...)
	} else {
		f = binary.BigEndian.AppendUint16(f, 0x86dd)
		ip := make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(len(tcp)))
		ip[6], ip[7] = 6, 64
		s16, d16 := sa.As16(), da.As16()
		copy(ip[8:], s16[:])
		copy(ip[24:], d16[:])
		f = append(f, ip...)
	}
	return append(f, tcp...)
}

// SetTTL rewrites the IPv4 TTL (and header checksum) or the IPv6 hop
// limit of an untagged frame made by TCPFrame.
func SetTTL(frame []byte, ttl byte) {
	switch binary.BigEndian.Uint16(frame[12:]) {
	case 0x0800:
		ip := frame[14:34]
		ip[8] = ttl
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:], ^Checksum(0, ip))
	case 0x86dd:
		frame[14+7] = ttl
	}
}

func pseudoHeaderSum(src, dst netip.Addr, l4len int) uint32 {
	var s uint32
	s = ChecksumAdd(s, src.AsSlice())
	s = ChecksumAdd(s, dst.AsSlice())
	return s + 6 + uint32(l4len)
}

// ChecksumAdd adds b, as 16-bit big-endian words, to a running one's
// complement sum (unfolded).
func ChecksumAdd(sum uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	return sum
}

// Checksum folds the Internet checksum of b onto sum (not complemented).
func Checksum(sum uint32, b []byte) uint16 {
	sum = ChecksumAdd(sum, b)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

// PacketSocket is a raw AF_PACKET socket bound to one interface, for
// sending hand-made frames and reading what comes back.
type PacketSocket struct {
	fd      int
	ifindex int
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// OpenPacketSocket opens a raw socket on ifname in the calling thread's
// namespace (use it inside Host.Do).
func OpenPacketSocket(ifname string) (*PacketSocket, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return nil, fmt.Errorf("testbed: packet socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("testbed: bind packet socket to %s: %w", ifname, err)
	}
	return &PacketSocket{fd: fd, ifindex: ifi.Index}, nil
}

// Send writes one frame.
func (s *PacketSocket) Send(frame []byte) error {
	return unix.Sendto(s.fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: s.ifindex, Halen: 6})
}

// ReceiveMatching returns the first incoming frame (not one this host
// sent) for which match is true, waiting at most timeout.
func (s *PacketSocket) ReceiveMatching(timeout time.Duration, match func([]byte) bool) ([]byte, error) {
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 65536)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, errors.New("testbed: no matching frame")
		}
		pfd := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, int(left.Milliseconds())+1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			continue
		}
		m, from, err := unix.Recvfrom(s.fd, buf, unix.MSG_DONTWAIT)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if match(buf[:m]) {
			return append([]byte(nil), buf[:m]...), nil
		}
	}
}

// Close closes the socket.
func (s *PacketSocket) Close() error { return unix.Close(s.fd) }
