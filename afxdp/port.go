package afxdp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"unsafe"

	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// AttachMode selects where the XDP program runs.
type AttachMode int

const (
	// Native runs the program in the driver (the default).
	Native AttachMode = iota
	// Generic runs it after the kernel has built an skb: every driver has
	// it, and it is slow.
	Generic
)

// String is the flag spelling of the mode.
func (m AttachMode) String() string {
	switch m {
	case Native:
		return "native"
	case Generic:
		return "generic"
	}
	return fmt.Sprintf("AttachMode(%d)", int(m))
}

// ParseAttachMode reads "native" or "generic".
func ParseAttachMode(s string) (AttachMode, error) {
	switch s {
	case "native", "":
		return Native, nil
	case "generic":
		return Generic, nil
	}
	return 0, fmt.Errorf("afxdp: XDP mode %q: want native or generic", s)
}

// Config describes one interface's AF_XDP setup.
type Config struct {
	// Interface is the network interface name.
	Interface string
	// Queues lists the RX queues to serve; empty means all of them.
	Queues []int
	// Mode is where the XDP program runs.
	Mode AttachMode
	// Ring sizes each queue's socket and UMEM.
	Ring RingOptions
	// VIPs are the TCP services whose traffic the program redirects.
	VIPs []netip.AddrPort
	// MaxVIPs bounds the VIP map (0: 4096 entries).
	MaxVIPs int
	// Logger receives the one-line notices (zero-copy fallback); nil means
	// slog.Default().
	Logger *slog.Logger
}

// Port is an interface under AF_XDP: the loaded program, its bpf_link and
// one Ring per served RX queue.
type Port struct {
	Interface *net.Interface
	// Rings are indexed like the configured queues, not by queue number;
	// Ring.Queue tells the number.
	Rings []*Ring

	prog *Program
	link link.Link
}

// Open loads the XDP program, fills its VIP map, opens one AF_XDP socket
// per queue, puts them in the XSK map and only then attaches the program,
// so no VIP frame is redirected to an empty slot. On error nothing is left
// behind.
func Open(cfg Config) (_ *Port, err error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("afxdp: interface %q: %w", cfg.Interface, err)
	}
	queues := cfg.Queues
	if len(queues) == 0 {
		n, err := RxQueueCount(cfg.Interface)
		if err != nil {
			return nil, err
		}
		for q := 0; q < n; q++ {
			queues = append(queues, q)
		}
	}
	maxQueue := 0
	seen := map[int]bool{}
	for _, q := range queues {
		if q < 0 {
			return nil, fmt.Errorf("afxdp: queue %d: must not be negative", q)
		}
		if seen[q] {
			return nil, fmt.Errorf("afxdp: queue %d listed twice", q)
		}
		seen[q] = true
		maxQueue = max(maxQueue, q)
	}
	p := &Port{Interface: ifi}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	p.prog, err = LoadProgram(ProgramOptions{MaxVIPs: cfg.MaxVIPs, MaxQueues: maxQueue + 1})
	if err != nil {
		return nil, err
	}
	if err = p.prog.SetVIPs(cfg.VIPs); err != nil {
		return nil, err
	}
	var zcErr error
	for _, q := range queues {
		var r *Ring
		r, err = NewRing(ifi.Index, q, cfg.Ring)
		if err != nil {
			return nil, err
		}
		p.Rings = append(p.Rings, r)
		if r.ZeroCopyError() != nil && zcErr == nil {
			zcErr = r.ZeroCopyError()
		}
		if err = p.prog.setSocket(q, r.FD()); err != nil {
			return nil, err
		}
	}
	if zcErr != nil {
		log.Info("afxdp: zero-copy unavailable, AF_XDP sockets run in copy mode",
			"interface", cfg.Interface, "queues", len(queues), "reason", zcErr)
	}
	flags := link.XDPDriverMode
	if cfg.Mode == Generic {
		flags = link.XDPGenericMode
	}
	p.link, err = link.AttachXDP(link.XDPOptions{Program: p.prog.prog, Interface: ifi.Index, Flags: flags})
	if err != nil {
		return nil, fmt.Errorf("afxdp: attach XDP program to %s (%s mode): %w", cfg.Interface, cfg.Mode, err)
	}
	return p, nil
}

// SetVIPs replaces the redirected VIP set (config reload).
func (p *Port) SetVIPs(vips []netip.AddrPort) error { return p.prog.SetVIPs(vips) }

// Counters reads the XDP program's verdict counters.
func (p *Port) Counters() (Counters, error) { return p.prog.Counters() }

// Close detaches the program (closing the link) and closes the sockets.
func (p *Port) Close() error {
	var errs []error
	if p.link != nil {
		if err := p.link.Close(); err != nil {
			errs = append(errs, fmt.Errorf("afxdp: detach: %w", err))
		}
		p.link = nil
	}
	for _, r := range p.Rings {
		if err := r.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	p.Rings = nil
	if p.prog != nil {
		p.prog.Close()
		p.prog = nil
	}
	return errors.Join(errs...)
}

// RxQueueCount returns how many RX queues of an interface are in use
// (ETHTOOL_GCHANNELS: rx + combined channels). It asks through a socket, so
// it answers for the calling thread's network namespace, unlike sysfs. A
// driver without channel reporting counts as one queue.
func RxQueueCount(ifname string) (int, error) {
	if len(ifname) == 0 || len(ifname) >= unix.IFNAMSIZ {
		return 0, fmt.Errorf("afxdp: bad interface name %q", ifname)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("afxdp: ethtool socket: %w", err)
	}
	defer unix.Close(fd)
	const ethtoolGChannels = 0x3c
	var ch struct {
		cmd                                         uint32
		maxRx, maxTx, maxOther, maxCombined         uint32
		rxCount, txCount, otherCount, combinedCount uint32
	}
	ch.cmd = ethtoolGChannels
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer
		_    [16]byte
	}
	copy(ifr.name[:], ifname)
	ifr.data = unsafe.Pointer(&ch)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(&ch)
	switch errno {
	case 0:
	case unix.EOPNOTSUPP:
		return 1, nil
	case unix.ENODEV:
		return 0, fmt.Errorf("afxdp: interface %q: %w", ifname, errno)
	default:
		return 0, fmt.Errorf("afxdp: ETHTOOL_GCHANNELS on %s: %w", ifname, errno)
	}
	if n := int(ch.rxCount + ch.combinedCount); n > 0 {
		return n, nil
	}
	return 1, nil
}
