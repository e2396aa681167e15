package bench

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/anysched/anysched/internal/testbed"
)

// Bed is the veth test bed (internal/testbed, two nodes) set up for
// measuring:
//
//   - the generator transmits out of the router's bridge port (pr, in the
//     fabric namespace), so its frames land on the router's eth0 as if the
//     switch had delivered them, without the bridge's cost on the sender;
//   - the router's eth0 has GRO on, which gives a veth NAPI whether or not
//     an XDP program is attached, and threaded NAPI, its kernel thread
//     pinned to RouterCPU: the router's receive path (XDP, AF_XDP copy,
//     kernel forwarding, conntrack) and the router process share one CPU
//     in every scenario;
//   - what the router sends back into the fabric (the bridge, the nodes'
//     counting) is processed on the CPU that sent it, the router's: every
//     scenario pays the same per delivered frame for it, and nothing is
//     lost to a backlog on the generator's busy CPU;
//   - each node's eth0 has the counting program: IPv4 TCP to port 443 is
//     counted and dropped at ingress, the rest (ARP) passes.
type Bed struct {
	TB        *testbed.Bed
	SenderCPU int
	RouterCPU int

	// PortIndex is the ifindex of the router's bridge port in the fabric
	// namespace: where the generator transmits.
	PortIndex int
	// NAPIThread is the PID of the router eth0's NAPI kernel thread.
	NAPIThread int

	counters []*Counter
	links    []link.Link
}

// NewBed builds a bed; Close removes it. senderCPU and routerCPU must be
// CPUs this process may run on.
func NewBed(senderCPU, routerCPU int) (*Bed, error) {
	return newBed(senderCPU, routerCPU, true)
}

// NewConnBed builds the same bed without the nodes' counting programs
// (they drop port 443 at the nodes' ingress): the connection scenarios'
// bed, where real servers answer. Delivered and PerNode count nothing.
func NewConnBed(clientCPU, routerCPU int) (*Bed, error) {
	return newBed(clientCPU, routerCPU, false)
}

func newBed(senderCPU, routerCPU int, counting bool) (*Bed, error) {
	tb, err := testbed.Build(testbed.Options{Nodes: 2})
	b := &Bed{TB: tb, SenderCPU: senderCPU, RouterCPU: routerCPU}
	if err != nil {
		if tb != nil {
			tb.Close()
		}
		return nil, err
	}
	if err := b.setup(counting); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

func (b *Bed) setup(counting bool) error {
	r := b.TB.Router
	if err := setGRO(r.NS, r.Iface, true); err != nil {
		return err
	}
	before, err := napiThreads()
	if err != nil {
		return err
	}
	if out, err := r.Exec("sh", "-c", "echo 1 > /sys/class/net/"+r.Iface+"/threaded"); err != nil {
		return fmt.Errorf("bench: threaded NAPI on the router: %v: %s", err, out)
	}
	after, err := napiThreads()
	if err != nil {
		return err
	}
	var fresh []int
	for pid := range after {
		if !before[pid] {
			fresh = append(fresh, pid)
		}
	}
	if len(fresh) != 1 {
		return fmt.Errorf("bench: want one new NAPI thread for the router's %s, found %d", r.Iface, len(fresh))
	}
	b.NAPIThread = fresh[0]
	if err := pinPID(b.NAPIThread, b.RouterCPU); err != nil {
		return err
	}
	if err := testbed.DoIn(b.TB.Fabric, func() error {
		ifi, err := net.InterfaceByName(r.Port)
		if err != nil {
			return err
		}
		b.PortIndex = ifi.Index
		return nil
	}); err != nil {
		return fmt.Errorf("bench: router port: %w", err)
	}
	// Static forwarding entries: the bridge never floods a frame for a
	// host it has not heard from yet.
	for _, h := range b.TB.Hosts() {
		if out, err := testbed.Exec(b.TB.Fabric, "bridge", "fdb", "replace", net.HardwareAddr(h.MAC[:]).String(),
			"dev", h.Port, "master", "static"); err != nil {
			return fmt.Errorf("bench: bridge fdb for %s: %v: %s", h.Role, err, out)
		}
	}
	if !counting {
		return nil
	}
	for _, n := range b.TB.Nodes {
		c, err := LoadCounter(n.MAC)
		if err != nil {
			return err
		}
		b.counters = append(b.counters, c)
		l, err := attachXDP(n, c.prog)
		if err != nil {
			return err
		}
		b.links = append(b.links, l)
	}
	return nil
}

// CheckPinning fails unless the router's NAPI thread still exists and runs
// only on RouterCPU (attaching an XDP program must not have replaced it).
func (b *Bed) CheckPinning() error {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(b.NAPIThread, &set); err != nil {
		return fmt.Errorf("bench: the router's NAPI thread %d: %w", b.NAPIThread, err)
	}
	if set.Count() != 1 || !set.IsSet(b.RouterCPU) {
		return fmt.Errorf("bench: the router's NAPI thread %d is not pinned to CPU %d alone", b.NAPIThread, b.RouterCPU)
	}
	return nil
}

// Delivered sums what the nodes' counting programs counted.
func (b *Bed) Delivered() (packets, bytes uint64, err error) {
	for _, c := range b.counters {
		p, by, err := c.Read()
		if err != nil {
			return 0, 0, err
		}
		packets += p
		bytes += by
	}
	return packets, bytes, nil
}

// PerNode is Delivered by node.
func (b *Bed) PerNode() ([]uint64, error) {
	out := make([]uint64, len(b.counters))
	for i, c := range b.counters {
		p, _, err := c.Read()
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

// Close detaches the programs and removes the bed.
func (b *Bed) Close() error {
	for _, l := range b.links {
		l.Close()
	}
	for _, c := range b.counters {
		c.Close()
	}
	b.links, b.counters = nil, nil
	return b.TB.Close()
}

// attachXDP attaches prog to h's interface in native mode (veth has it;
// generic mode's detach hangs on this kernel).
func attachXDP(h *testbed.Host, prog *ebpf.Program) (link.Link, error) {
	var l link.Link
	err := h.Do(func() error {
		ifi, err := net.InterfaceByName(h.Iface)
		if err != nil {
			return err
		}
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifi.Index, Flags: link.XDPDriverMode})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("bench: attach XDP to %s of %s: %w", h.Iface, h.Role, err)
	}
	return l, nil
}

// napiThreads lists the PIDs of kernel threads named napi/eth0-*.
func napiThreads() (map[int]bool, error) {
	out := map[int]bool{}
	dirs, err := filepath.Glob("/proc/[0-9]*/comm")
	if err != nil {
		return nil, err
	}
	for _, d := range dirs {
		comm, err := os.ReadFile(d)
		if err != nil {
			continue // the process went away
		}
		if strings.HasPrefix(string(comm), "napi/eth0-") {
			pid, err := strconv.Atoi(filepath.Base(filepath.Dir(d)))
			if err == nil {
				out[pid] = true
			}
		}
	}
	return out, nil
}

func pinPID(pid, cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(pid, &set); err != nil {
		return fmt.Errorf("bench: pin PID %d to CPU %d: %w", pid, cpu, err)
	}
	return nil
}

// setGRO turns generic receive offload on or off.
func setGRO(ns, ifname string, on bool) error {
	return testbed.SetOffload(ns, ifname, testbed.EthtoolSetGRO, on)
}
