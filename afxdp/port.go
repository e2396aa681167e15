package afxdp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
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
	for _, q := range queues {
		if q < 0 {
			return nil, fmt.Errorf("afxdp: queue %d: must not be negative", q)
		}
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

// RxQueueCount asks the kernel (netlink, so it answers for the network
// namespace of the calling thread, unlike sysfs) how many RX queues an
// interface has.
func RxQueueCount(ifname string) (int, error) {
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return 0, fmt.Errorf("afxdp: interface %q: %w", ifname, err)
	}
	if n := l.Attrs().NumRxQueues; n > 0 {
		return n, nil
	}
	return 1, nil
}
