package testbed

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// ICMP message types the probe sends and reads.
const (
	icmp4EchoReply    = 0
	icmp4EchoRequest  = 8
	icmp4TimeExceeded = 11
	icmp6TimeExceeded = 3
	icmp6EchoRequest  = 128
	icmp6EchoReply    = 129
)

// PingReply is what answered an echo request.
type PingReply struct {
	From netip.Addr
	// TimeExceeded: a router on the way answered that the hop limit ran
	// out, instead of the destination answering the echo.
	TimeExceeded bool
}

// ErrNoReply is Ping's error when nothing answered before the timeout.
var ErrNoReply = errors.New("testbed: no ICMP answer")

var pingID atomic.Uint32

// Ping sends one ICMP (or ICMPv6) echo request to dst from inside the
// host's namespace and waits up to timeout for the echo reply or a time
// exceeded message about it; ttl 0 keeps the kernel's default hop limit.
// It uses a raw socket of its own, so the bed needs no ping binary.
func (h *Host) Ping(dst netip.Addr, ttl int, timeout time.Duration) (PingReply, error) {
	var reply PingReply
	err := h.Do(func() (err error) {
		reply, err = ping(dst.Unmap(), ttl, timeout)
		return err
	})
	if err != nil {
		return reply, fmt.Errorf("ping %s from %s: %w", dst, h.Role, err)
	}
	return reply, nil
}

// PingOK pings dst and fails unless dst itself answered the echo.
func (h *Host) PingOK(dst netip.Addr, timeout time.Duration) error {
	r, err := h.Ping(dst, 0, timeout)
	if err != nil {
		return err
	}
	if r.TimeExceeded || r.From != dst.Unmap() {
		return fmt.Errorf("ping %s from %s: answered by %s (time exceeded %v)", dst, h.Role, r.From, r.TimeExceeded)
	}
	return nil
}

func ping(dst netip.Addr, ttl int, timeout time.Duration) (PingReply, error) {
	v6 := dst.Is6()
	family, proto, request := unix.AF_INET, unix.IPPROTO_ICMP, byte(icmp4EchoRequest)
	if v6 {
		family, proto, request = unix.AF_INET6, unix.IPPROTO_ICMPV6, icmp6EchoRequest
	}
	fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return PingReply{}, err
	}
	defer unix.Close(fd)
	if ttl > 0 {
		if v6 {
			err = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, ttl)
		} else {
			err = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TTL, ttl)
		}
		if err != nil {
			return PingReply{}, err
		}
	}
	id := uint16(pingID.Add(1))
	const seq = 1
	msg := []byte{request, 0, 0, 0, byte(id >> 8), byte(id), 0, seq, 'a', 'n', 'y', 's', 'c', 'h', 'e', 'd'}
	var sa unix.Sockaddr
	if v6 {
		sa = &unix.SockaddrInet6{Addr: dst.As16()} // the kernel fills in the ICMPv6 checksum
	} else {
		binary.BigEndian.PutUint16(msg[2:], ^Checksum(0, msg))
		sa = &unix.SockaddrInet4{Addr: dst.As4()}
	}
	if err := unix.Sendto(fd, msg, 0, sa); err != nil {
		return PingReply{}, err
	}
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 1500)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return PingReply{}, ErrNoReply
		}
		tv := unix.NsecToTimeval(left.Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return PingReply{}, err
		}
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return PingReply{}, err
		}
		var src netip.Addr
		switch a := from.(type) {
		case *unix.SockaddrInet4:
			src = netip.AddrFrom4(a.Addr)
		case *unix.SockaddrInet6:
			src = netip.AddrFrom16(a.Addr)
		}
		if r, ok := matchEcho(buf[:n], v6, id, seq); ok {
			r.From = src
			return r, nil
		}
	}
}

// matchEcho reports whether pkt answers the echo request (id, seq): the
// echo reply itself, or a time exceeded message quoting the request. An
// IPv4 raw socket reads the IP header too; an ICMPv6 one does not.
func matchEcho(pkt []byte, v6 bool, id uint16, seq uint16) (PingReply, bool) {
	if !v6 {
		if len(pkt) < 20 || pkt[0]>>4 != 4 {
			return PingReply{}, false
		}
		ihl := int(pkt[0]&0x0f) * 4
		if ihl < 20 || len(pkt) < ihl {
			return PingReply{}, false
		}
		pkt = pkt[ihl:]
	}
	if len(pkt) < 8 {
		return PingReply{}, false
	}
	echoOf := func(m []byte, want byte) bool {
		return len(m) >= 8 && m[0] == want && binary.BigEndian.Uint16(m[4:]) == id && binary.BigEndian.Uint16(m[6:]) == seq
	}
	typ, quoted := pkt[0], pkt[8:]
	switch {
	case !v6 && typ == icmp4EchoReply, v6 && typ == icmp6EchoReply:
		return PingReply{}, echoOf(pkt, typ)
	case !v6 && typ == icmp4TimeExceeded:
		// The quoted IPv4 header, then the first 8 bytes of our request.
		if len(quoted) < 20 || quoted[0]>>4 != 4 || len(quoted) < int(quoted[0]&0x0f)*4 {
			return PingReply{}, false
		}
		return PingReply{TimeExceeded: true}, echoOf(quoted[int(quoted[0]&0x0f)*4:], icmp4EchoRequest)
	case v6 && typ == icmp6TimeExceeded:
		// The quoted IPv6 header (no extension headers: we sent none).
		if len(quoted) < 40 || quoted[6] != unix.IPPROTO_ICMPV6 {
			return PingReply{}, false
		}
		return PingReply{TimeExceeded: true}, echoOf(quoted[40:], icmp6EchoRequest)
	}
	return PingReply{}, false
}
