package fastpath

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/anysched/anysched/lookup"
	"github.com/anysched/anysched/parser"
	"github.com/anysched/anysched/ring"
)

// Defaults of Config.
const (
	DefaultBatch  = 64
	MaxBatch      = 1024
	DefaultPollMs = 100
	// sweepBudget is how many pin/transition entries a worker expires per
	// batch, so idle entries leave without a pass over the whole table.
	sweepBudget            = 64
	tlsHandshakeRecordType = 0x16
)

// SnapshotSource gives the scheduling state; the worker calls Current once
// per batch. *sched.Scheduler is one.
type SnapshotSource interface {
	Current() *lookup.Snapshot
}

// Config configures a Worker.
type Config struct {
	// Batch is the most frames received and processed at once (default 64).
	Batch int
	// SourceMAC is the router interface's address, the source of every
	// forwarded frame.
	SourceMAC MAC
	// MACs resolves nodes without a configured MAC (nil: only configured
	// MACs are used). Shared by all workers.
	MACs *MACBook
	// Hello has the code points of migration_support and migration_token
	// (zero value: the defaults).
	Hello parser.HelloConfig
	// Reassembly sizes the ClientHello reassembler.
	Reassembly parser.ReassemblerConfig
	// Decider sizes the pin table and the transition set.
	Decider lookup.DeciderConfig
	// Clock returns the time on lookup.Now's scale; nil means lookup.Now.
	// It is read once per batch.
	Clock func() int64
	// PollMs is how long Run waits in Receive for frames before it looks
	// at its context again (default 100).
	PollMs int
	// PinCPU pins the worker's OS thread to CPU.
	PinCPU bool
	CPU    int
	// Explain, when set, is called for every frame with the decision
	// taken; for tools (anysched run --explain), not for speed. The
	// Explanation is reused: copy what you keep.
	Explain func(*Explanation)
}

// Explanation describes what the pipeline did with one frame.
type Explanation struct {
	// Frame counts frames since the worker started, from 1.
	Frame  uint64
	Status parser.Status
	Packet *parser.Packet
	// Forwarded frames have Node and Route; dropped ones a Drop reason
	// (when Status is StatusOK).
	Forwarded bool
	Drop      DropReason
	Route     Route
	Via       lookup.Via
	Node      *lookup.Node
	// Hello is the ClientHello verdict for frames with client payload;
	// HelloInfo is valid when it is not VerdictNotHello.
	Hello     parser.Verdict
	HelloInfo *parser.ClientHello
	// Pinned / Unpinned: the frame made or removed a pin.
	Pinned, Unpinned bool
}

// Worker runs the pipeline of one queue: receive a batch, parse, decide,
// rewrite in place, transmit the same frames, release the dropped ones,
// reclaim completions. One goroutine drives it; everything it touches per
// packet is preallocated, so a batch does not allocate. It reads the
// scheduler's snapshot and the MAC book once per batch (one atomic load
// each) and owns its Decider (pins, transitions) and its ClientHello
// reassembler, so no lock is taken per packet.
//
// Per frame:
//   - ParseFrame; any status but OK is counted by status and dropped.
//   - The destination must be a VIP:port of the snapshot (for an ICMP
//     error, the quoted flow's): otherwise drop, not_vip. The XDP program
//     only redirects VIP traffic, so this catches reloads in flight.
//   - TTL / hop limit <= 1: drop, ttl_expired (the XDP program passes such
//     frames to the kernel; one that still arrives is not forwarded).
//   - Decide: a SYN goes to the table (the Decider records it if its slot
//     is moving); anything else to its pin, its transition record, or the
//     table. ICMP errors are decided as a non-SYN packet of the flow they
//     quote, so "fragmentation needed" / "packet too big" reach the node
//     that sent the packet and path-MTU discovery works.
//   - SYN to a VIP declared tls: false pins the flow at once.
//   - Client payload that may start a TLS handshake record, or continues a
//     ClientHello in progress, goes to the reassembler once its TCP
//     checksum verified (the node drops a bad one, so the router must not
//     believe it): migration_support → unpin (nothing stored); no
//     migration_support, malformed or unfollowable → pin; still incomplete
//     → pin while unknown. A TLS VIP's SYN opens a slot (and a TCP Fast
//     Open SYN's payload is scanned like any ClientHello); its FIN or RST
//     frees it. Other payloads cost one byte comparison and, while any
//     slot is taken, a lookup.
//   - No single packet the node would ignore ends or moves a pin: a SYN
//     on a live pinned 5-tuple follows the pin; a client RST only
//     shortens the pin's idle time (the real client's next packet
//     restores it); a complete legacy ClientHello makes the pin final
//     (a later hello with migration_support does not unpin). A packet
//     changes state (pin, record, refresh, shorten, reassembly) only if
//     its TCP checksum is right; it is checked only then, at most once
//     per frame. A FIN changes nothing in the pin table.
//   - Rewrite as a router: destination MAC = the node's (from the config,
//     else the MAC book), source MAC = ours, VLAN tags untouched, TTL or
//     hop limit minus one with an RFC 1624 checksum update.
//
// "Pass to the kernel" exists only in the XDP program; in user space a
// frame is either sent or dropped, and every drop is counted by reason.
type Worker struct {
	queue  ring.Ring
	umem   []byte
	src    SnapshotSource
	cfg    Config
	clock  func() int64
	dec    *lookup.Decider
	reasm  *parser.Reassembler
	hello  parser.HelloConfig
	srcMAC MAC

	rx, tx, drop []ring.Desc
	pkt          parser.Packet
	ch           parser.ClientHello
	snap         *lookup.Snapshot
	vips         []vipEntry
	frames       uint64
	expl         Explanation

	// frame is the frame being processed and checked what is known of
	// its TCP checksum; intact is packetIntact as a func value, made
	// once, for DecidePacket.
	frame   []byte
	checked checksumState
	intact  func() bool

	c        Counters
	xch      *counterExchange
	stopping atomic.Bool
}

type vipEntry struct {
	addr   [16]byte
	port   uint16
	family uint8 // parser.FamilyIPv4 / FamilyIPv6: ::ffff:a.b.c.d over IPv6 is not a.b.c.d
	tls    bool
}

// NewWorker makes a worker over ring. src must already have a snapshot.
func NewWorker(queue ring.Ring, src SnapshotSource, cfg Config) (*Worker, error) {
	if cfg.Batch == 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Batch < 1 || cfg.Batch > MaxBatch {
		return nil, fmt.Errorf("fastpath: batch %d out of range 1..%d", cfg.Batch, MaxBatch)
	}
	if cfg.PollMs == 0 {
		cfg.PollMs = DefaultPollMs
	}
	if src == nil || src.Current() == nil {
		return nil, errors.New("fastpath: no scheduling snapshot")
	}
	reasm, err := parser.NewReassembler(cfg.Reassembly)
	if err != nil {
		return nil, fmt.Errorf("fastpath: %w", err)
	}
	w := &Worker{
		queue:  queue,
		umem:   queue.UMEM(),
		src:    src,
		cfg:    cfg,
		clock:  cfg.Clock,
		dec:    lookup.NewDecider(cfg.Decider),
		reasm:  reasm,
		hello:  cfg.Hello,
		srcMAC: cfg.SourceMAC,
		rx:     make([]ring.Desc, cfg.Batch),
		tx:     make([]ring.Desc, 0, cfg.Batch),
		drop:   make([]ring.Desc, 0, cfg.Batch),
		xch:    newCounterExchange(),
	}
	if w.clock == nil {
		w.clock = lookup.Now
	}
	w.intact = w.packetIntact
	if w.hello == (parser.HelloConfig{}) {
		w.hello = parser.DefaultHelloConfig()
	}
	w.useSnapshot(src.Current())
	return w, nil
}

// Decider returns the worker's decider; its Stats may be read from any
// goroutine.
func (w *Worker) Decider() *lookup.Decider { return w.dec }

// useSnapshot switches to a new snapshot: the VIP list is copied into a
// flat array the per-packet check scans without building netip values.
func (w *Worker) useSnapshot(s *lookup.Snapshot) {
	w.snap = s
	w.vips = w.vips[:0]
	for _, v := range s.VIPs {
		// As16 gives IPv4 in its v4-mapped form, as FlowKey stores it.
		fam := parser.FamilyIPv6
		if v.Addr.Unmap().Is4() {
			fam = parser.FamilyIPv4
		}
		w.vips = append(w.vips, vipEntry{addr: v.Addr.Unmap().As16(), port: v.Port, family: fam, tls: v.TLS})
	}
}

func (w *Worker) vipOf(k *parser.FlowKey) *vipEntry {
	for i := range w.vips {
		v := &w.vips[i]
		if v.port == k.DstPort && v.addr == k.Dst && v.family == k.Family {
			return v
		}
	}
	return nil
}

// Step runs one batch: it waits up to timeoutMs for frames and returns how
// many it received. A Ring error is returned after the batch is finished.
func (w *Worker) Step(timeoutMs int) (int, error) {
	w.xch.serve(&w.c, w.extra)
	if err := w.queue.Reclaim(); err != nil {
		return 0, fmt.Errorf("fastpath: reclaim: %w", err)
	}
	n, rerr := w.queue.Receive(w.rx, timeoutMs)
	if n <= 0 {
		// An idle queue still lets pins, transition records and
		// reassembly slots time out, so the gauges fall back after a
		// burst.
		now := w.clock()
		w.dec.Sweep(now, sweepBudget)
		w.expireReassembly(now)
		return 0, rerr
	}
	w.c.countBatch(n)
	if s := w.src.Current(); s != w.snap && s != nil {
		w.useSnapshot(s)
	}
	now := w.clock()
	var macs *macTable
	if w.cfg.MACs != nil {
		macs = w.cfg.MACs.cur.Load()
	}
	tx, drop := w.tx[:0], w.drop[:0]
	umemLen := uint64(len(w.umem))
	for _, d := range w.rx[:n] {
		end := d.Addr + uint64(d.Len)
		if end > umemLen || end < d.Addr {
			// A descriptor outside the UMEM: the Ring is broken. Count it
			// as a frame too long to parse and give it back.
			w.c.ParseStatus[parser.StatusFrameTooLong]++
			drop = append(drop, d)
			continue
		}
		frame := w.umem[d.Addr:end:end]
		w.c.RxPackets++
		w.c.RxBytes += uint64(d.Len)
		if w.process(frame, now, macs) {
			tx = append(tx, d)
			w.c.TxBytes += uint64(d.Len)
		} else {
			drop = append(drop, d)
		}
	}
	if len(drop) > 0 {
		w.queue.Release(drop)
	}
	err := w.transmit(tx)
	w.dec.Sweep(now, sweepBudget)
	w.expireReassembly(now)
	if err == nil {
		err = rerr
	}
	return n, err
}

// transmit hands tx to the Ring, retrying what it did not take after
// reclaiming completions, so no frame is lost; only a stop request or a
// Ring error releases the rest.
func (w *Worker) transmit(tx []ring.Desc) error {
	first := true
	for len(tx) > 0 {
		k, err := w.queue.Transmit(tx)
		if k < 0 || k > len(tx) {
			k = 0
		}
		w.c.TxPackets += uint64(k)
		tx = tx[k:]
		if err != nil {
			w.c.Dropped[DropTxError] += uint64(len(tx))
			if len(tx) > 0 {
				w.queue.Release(tx)
			}
			return fmt.Errorf("fastpath: transmit: %w", err)
		}
		if len(tx) == 0 {
			return nil
		}
		if first {
			w.c.TxPartial++
			first = false
		}
		w.c.TxRetries++
		if w.stopping.Load() {
			w.c.Dropped[DropShutdown] += uint64(len(tx))
			w.queue.Release(tx)
			return nil
		}
		if err := w.queue.Reclaim(); err != nil {
			w.c.Dropped[DropTxError] += uint64(len(tx))
			w.queue.Release(tx)
			return fmt.Errorf("fastpath: reclaim: %w", err)
		}
		if w.c.TxRetries%64 == 0 {
			runtime.Gosched()
		}
	}
	return nil
}

// process runs the pipeline on one frame in place and reports whether to
// send it.
func (w *Worker) process(frame []byte, now int64, macs *macTable) bool {
	p := &w.pkt
	st := parser.ParseFrame(frame, p)
	w.c.ParseStatus[st]++
	if w.cfg.Explain != nil {
		w.frames++
		w.expl = Explanation{Frame: w.frames, Status: st, Packet: p, Node: nil}
	}
	if st != parser.StatusOK {
		return w.explainDrop(DropReason(NumDropReasons))
	}
	vip := w.vipOf(&p.Flow)
	if vip == nil {
		return w.explainDrop(DropNotVIP)
	}
	if int(p.TTLOff) >= len(frame) || frame[p.TTLOff] <= 1 {
		return w.explainDrop(DropTTLExpired)
	}
	if p.Flags&parser.FlagFragment != 0 {
		return w.explainDrop(DropFragment)
	}
	snap := w.snap
	syn := !p.ICMPError && p.TCPFlags&(parser.TCPFlagSYN|parser.TCPFlagACK) == parser.TCPFlagSYN
	kind := lookup.PacketData
	switch {
	case p.ICMPError:
		kind = lookup.PacketPassive
	case syn:
		kind = lookup.PacketSYN
	case p.TCPFlags&parser.TCPFlagRST != 0:
		kind = lookup.PacketRST
	}
	w.frame, w.checked = frame, checksumUnknown
	d := w.dec.DecidePacket(snap, &p.Flow, kind, now, w.intact)
	if d.Node == lookup.NoNode || int(d.Node) >= len(snap.Nodes) {
		return w.explainDrop(DropNoNode)
	}
	node := &snap.Nodes[d.Node]
	var dst *MAC
	if node.HasMAC {
		dst = (*MAC)(&node.MAC)
	} else if macs != nil && int(d.Node) < len(macs.entries) && macs.entries[d.Node].ok {
		dst = &macs.entries[d.Node].mac
	} else {
		return w.explainDrop(DropNoMAC)
	}

	route := RouteTable
	hello := parser.VerdictNotHello
	pinned, unpinned := false, false
	switch {
	case p.ICMPError:
		route = RouteICMP
	case syn:
		route = RouteSYN
		if d.Node < MaxNodes {
			w.c.NodeNewFlows[d.Node]++
		}
		if !vip.tls {
			// A SYN on a live pinned 5-tuple went to its pin and leaves
			// it as it is; a bad-checksum SYN pins nothing.
			if d.Via != lookup.ViaPin {
				pinned = w.dec.PinIntact(&p.Flow, d.Hash, d.Node, snap.PinIdle, now, w.intact)
			}
		} else if w.checksumOK() {
			// The SYN fixes where the ClientHello starts, so its segments
			// are placed exactly even when the first arrives last. Slots
			// that never see a byte are the first to give way, so a SYN
			// flood costs reordered hellos a pin, never a real hello's slot.
			// A SYN with another sequence number is a new connection on
			// the 5-tuple: its slot starts over. (A forged one costs the
			// flow at most a pin: what follows no longer fits and is
			// pinned while pending.) Checksum first: the node ignores a
			// segment whose checksum is wrong, so must the reassembler.
			w.reasm.Open(&p.Flow, p.Seq, now)
			if len(p.Payload) > 0 {
				// TCP Fast Open: the ClientHello rides on the SYN, its
				// first byte numbered ISN+1.
				hello, pinned, unpinned = w.clientHello(p, p.Seq+1, &d, now)
			}
			w.c.Reassembly = w.reasm.Stats()
		}
	default:
		switch d.Via {
		case lookup.ViaPin:
			route = RoutePin
		case lookup.ViaTransitionOld, lookup.ViaTransitionNew:
			route = RouteTransition
		}
		if vip.tls {
			hello, pinned, unpinned = w.reassemble(p, &d, now)
		}
		// A client RST only shortened the flow's pin (in DecidePacket):
		// it may be spoofed, and the real client's next packet restores
		// the pin. A FIN changes nothing (the client still ACKs the
		// node's FIN); the idle timeout ends the pin.
	}

	if p.IPVersion == 4 {
		if !decrementTTL4(frame[p.L3Off:]) {
			return w.explainDrop(DropTTLExpired)
		}
	} else if !decrementHopLimit6(frame[p.L3Off:]) {
		return w.explainDrop(DropTTLExpired)
	}
	setMACs(frame, dst, &w.srcMAC)
	w.c.Routed[route]++
	if d.Node < MaxNodes {
		w.c.NodeForwarded[d.Node]++
	}
	if w.cfg.Explain != nil {
		e := &w.expl
		e.Forwarded, e.Route, e.Via, e.Node = true, route, d.Via, node
		e.Hello, e.Pinned, e.Unpinned = hello, pinned, unpinned
		if hello != parser.VerdictNotHello {
			e.HelloInfo = &w.ch
		}
		w.cfg.Explain(e)
	}
	return true
}

// reassemble gives a non-SYN segment of a TLS VIP flow to the
// reassembler when it can change its state, checksum verified first: a
// payload that may start a ClientHello (first byte 0x16) or continues one
// in progress is scanned; a FIN or RST ends the connection and frees its
// slot, so the 5-tuple's next connection starts over. Segments of a
// decided flow, and payloads of untracked flows that cannot start a
// ClientHello, cost a lookup and a byte comparison, no checksum. RST
// payload is never scanned (the node ignores it).
func (w *Worker) reassemble(p *parser.Packet, d *lookup.Decision, now int64) (v parser.Verdict, pinned, unpinned bool) {
	ends := p.TCPFlags&(parser.TCPFlagFIN|parser.TCPFlagRST) != 0
	if len(p.Payload) == 0 && !ends {
		return parser.VerdictNotHello, false, false
	}
	track := w.reasm.Tracks(&p.Flow)
	scan := len(p.Payload) > 0 && p.TCPFlags&parser.TCPFlagRST == 0 &&
		(track == parser.TrackingCollecting || track == parser.TrackingNone && p.Payload[0] == tlsHandshakeRecordType)
	forget := ends && track != parser.TrackingNone
	if !scan && !forget {
		if track == parser.TrackingDecided && len(p.Payload) > 0 {
			w.reasm.Ignore()
		}
		return parser.VerdictNotHello, false, false
	}
	if !w.checksumOK() {
		return parser.VerdictNotHello, false, false
	}
	v = parser.VerdictNotHello
	if scan {
		v, pinned, unpinned = w.clientHello(p, p.Seq, d, now)
	}
	if forget {
		w.reasm.Forget(&p.Flow)
	}
	w.c.Reassembly = w.reasm.Stats()
	return v, pinned, unpinned
}

// checksumOK verifies the segment's TCP checksum for the reassembler,
// counting a bad one.
func (w *Worker) checksumOK() bool {
	if w.packetIntact() {
		return true
	}
	w.c.ReassemblyBadChecksum++
	return false
}

// expireReassembly frees a bounded number of timed-out reassembly slots
// and publishes the reassembler's counters (once per batch or idle poll,
// so they and the in-use gauge never lag).
func (w *Worker) expireReassembly(now int64) {
	w.reasm.Expire(now, sweepBudget)
	w.c.Reassembly = w.reasm.Stats()
}

// clientHello runs the client's payload, whose first byte is numbered seq,
// through the reassembler and pins or unpins the flow by what its
// ClientHello says: migration_support unpins (the client will move to a
// node's unicast address), anything else that began a ClientHello pins.
// The caller verified the segment's checksum.
func (w *Worker) clientHello(p *parser.Packet, seq uint32, d *lookup.Decision, now int64) (v parser.Verdict, pinned, unpinned bool) {
	v = w.reasm.Feed(&p.Flow, seq, p.Payload, now, &w.hello, &w.ch)
	idle := w.snap.PinIdle
	switch v {
	case parser.VerdictNotHello:
		return v, false, false
	case parser.VerdictPending:
		// Unknown yet: hold the flow on its node until the rest arrives.
		w.c.ClientHelloPending++
		w.dec.Pin(&p.Flow, d.Hash, d.Node, idle, now)
		return v, true, false
	case parser.VerdictComplete:
		w.c.ClientHellos++
		if w.ch.MigrationToken {
			w.c.ClientHelloMigrationToken++
		}
		if w.ch.MigrationSupport {
			w.c.ClientHelloMigrationSupport++
			if w.dec.UnpinUnlessFinal(w.snap, &p.Flow, d.Hash, now) {
				w.c.ClientHelloUnpins++
				return v, false, true
			}
			return v, false, false
		}
	case parser.VerdictMalformed:
		w.c.ClientHellos++
		w.c.ClientHelloMalformed++
	case parser.VerdictUnknown:
		w.c.ClientHellos++
		w.c.ClientHelloUnknown++
	}
	// Legacy, malformed or unknown: the client will not move, keep it.
	w.dec.Pin(&p.Flow, d.Hash, d.Node, idle, now)
	w.c.ClientHelloPins++
	if v == parser.VerdictComplete {
		// A complete legacy ClientHello is the flow's verdict: no later
		// hello on the 5-tuple (the node ignores a second one) may
		// unpin it.
		w.dec.MarkFinal(&p.Flow, d.Hash, now)
	}
	return v, true, false
}

type checksumState uint8

const (
	checksumUnknown checksumState = iota
	checksumGood
	checksumBad
)

// packetIntact reports whether the frame being processed has a correct
// TCP checksum, computing it at most once per frame and only when asked:
// only packets that would change state pay for it.
func (w *Worker) packetIntact() bool {
	if w.checked == checksumUnknown {
		w.checked = checksumBad
		if parser.TCPChecksumOK(w.frame, &w.pkt) {
			w.checked = checksumGood
		}
	}
	return w.checked == checksumGood
}

// explainDrop counts a drop (reason NumDropReasons: a parse failure,
// already counted by status) and reports false.
func (w *Worker) explainDrop(r DropReason) bool {
	if r < NumDropReasons {
		w.c.Dropped[r]++
	}
	if w.cfg.Explain != nil {
		w.expl.Drop = r
		w.cfg.Explain(&w.expl)
	}
	return false
}

func (w *Worker) extra() Gauges {
	return Gauges{Generation: w.snap.Generation, Reassembling: uint64(w.reasm.InUse()), ReassemblyDecided: uint64(w.reasm.Decided())}
}

// Stats returns a consistent copy of the worker's counters taken at a
// batch boundary, waiting at most wait for the worker to reach one; if it
// does not (it is blocked in Receive), the previous copy is returned. A
// stopped worker (Run returned, or Finish was called) returns its final
// counters at once. Safe from any goroutine.
func (w *Worker) Stats(wait time.Duration) (Counters, Gauges) {
	return w.xch.fetch(wait)
}

// Counters returns the counters directly; only the goroutine that drives
// the worker (calls Step) may call it.
func (w *Worker) Counters() (Counters, Gauges) { return w.c, w.extra() }

// Finish publishes the final counters of a worker driven by Step, so Stats
// returns them without waiting. The worker must not be stepped again.
func (w *Worker) Finish() { w.xch.final(&w.c, w.extra()) }

// Run drives the worker until ctx ends or the Ring fails: it locks its
// goroutine to an OS thread (pinned to Config.CPU if PinCPU) and runs Step
// in a loop. On return the counters are final.
func (w *Worker) Run(ctx context.Context) (err error) {
	defer w.Finish()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if w.cfg.PinCPU {
		var set unix.CPUSet
		set.Set(w.cfg.CPU)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return fmt.Errorf("fastpath: pinning to CPU %d: %w", w.cfg.CPU, err)
		}
	}
	stop := context.AfterFunc(ctx, func() { w.stopping.Store(true) })
	defer stop()
	for !w.stopping.Load() {
		if _, err := w.Step(w.cfg.PollMs); err != nil {
			return err
		}
	}
	return nil
}

// Stop asks Run to return after the current batch.
func (w *Worker) Stop() { w.stopping.Store(true) }
