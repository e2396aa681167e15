package lookup

import (
	"encoding/binary"
	"math"
	"sort"
)

// MaglevNode is one input of BuildMaglev.
type MaglevNode struct {
	ID     uint16
	Name   string
	Weight uint32
}

// maglevPermutation returns the node's (offset, skip): its preference list
// is offset, offset+skip, offset+2·skip, ... mod m. It depends only on the
// name and the seed, so a node keeps its preferences when others come and
// go.
func maglevPermutation(k HashKey, name string, m uint32) (offset, skip uint32) {
	var buf [2 + 64 + 8]byte
	msg := append(buf[:0], 'o', 0)
	msg = append(msg, name...)
	offset = uint32(sipHash(k, 2, 4, msg) % uint64(m))
	msg[0] = 's'
	skip = uint32(sipHash(k, 2, 4, msg)%uint64(m-1)) + 1
	return offset, skip
}

// BuildMaglev fills a table of m slots (m prime) with node IDs, each node
// getting a share of slots proportional to its weight. Nodes with weight 0
// get none; if no node has weight, every slot is NoNode. The result
// depends only on the nodes' names and weights, the key and m — not on
// the order of nodes or their IDs.
//
// The fill is a race along the Maglev permutations in virtual time, in
// rounds: in each round every node still under its quota (m·w/Σw, rounded
// by largest remainder, so shares are exact to one slot) earns its weight
// in credit and, when its credit reaches the largest weight, visits the
// next slot of its permutation and claims it if it is free. Classic Maglev
// instead lets a node skip taken preferences for free within its turn;
// charging for them makes a slot's owner, while quotas do not bind,
// simply the node that reaches it first, which a change to one node does
// not alter for slots that node does not reach first. That cuts the slots
// moved beyond the minimum (see TestMaglevDisruption and the package doc).
func BuildMaglev(k HashKey, m uint32, nodes []MaglevNode) []uint16 {
	table := make([]uint16, m)
	for i := range table {
		table[i] = NoNode
	}
	ws := make([]raceWalker, 0, len(nodes))
	var total uint64
	for _, n := range nodes {
		if n.Weight == 0 {
			continue
		}
		off, skip := maglevPermutation(k, n.Name, m)
		ws = append(ws, raceWalker{id: n.ID, name: n.Name, weight: uint64(n.Weight), pos: off, skip: skip})
		total += uint64(n.Weight)
	}
	if len(ws) == 0 {
		return table
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].name < ws[j].name })
	setQuotas(ws, m, total)

	// Virtual time advances in rounds; in each round every walker still
	// under quota earns its weight in credit and visits one slot when its
	// credit reaches the largest weight, so it visits at a rate
	// proportional to its weight. Walkers act in name order.
	var maxW uint64
	active := ws[:0:0]
	for i := range ws {
		if ws[i].quota > 0 {
			active = append(active, ws[i])
			maxW = max(maxW, ws[i].weight)
		}
	}
	filled := uint32(0)
	for filled < m {
		// Skip rounds in which nobody would visit (weights far below
		// the largest, or the heaviest walkers done): advance every
		// credit by the rounds until the first walker reaches maxW.
		// This changes nothing but the time the build takes.
		skip := uint64(math.MaxUint64)
		for i := range active {
			w := &active[i]
			need := (maxW - min(w.credit+w.weight, maxW) + w.weight - 1) / w.weight
			skip = min(skip, need)
		}
		if skip > 0 {
			for i := range active {
				active[i].credit += skip * active[i].weight
			}
		}
		done := false
		for i := range active {
			w := &active[i]
			w.credit += w.weight
			if w.credit < maxW {
				continue
			}
			w.credit -= maxW
			if table[w.pos] == NoNode {
				table[w.pos] = w.id
				w.claimed++
				filled++
				done = done || w.claimed == w.quota
			}
			w.pos += w.skip
			if w.pos >= m {
				w.pos -= m
			}
		}
		if done {
			// Drop walkers that hold their quota, keeping name order.
			j := 0
			for i := range active {
				if active[i].claimed < active[i].quota {
					active[j] = active[i]
					j++
				}
			}
			active = active[:j]
		}
	}
	return table
}

type raceWalker struct {
	id      uint16
	name    string
	weight  uint64
	pos     uint32
	skip    uint32
	credit  uint64
	quota   uint32
	claimed uint32
}

// setQuotas gives each walker floor(m·w/total) slots and the remainder,
// one each, to the largest fractional parts (ties: name order), so the
// quotas add up to m.
func setQuotas(ws []raceWalker, m uint32, total uint64) {
	type frac struct {
		rem uint64
		i   int
	}
	fr := make([]frac, len(ws))
	left := m
	for i := range ws {
		q := uint64(m) * ws[i].weight
		ws[i].quota = uint32(q / total)
		left -= ws[i].quota
		fr[i] = frac{q % total, i}
	}
	sort.Slice(fr, func(a, b int) bool {
		if fr[a].rem != fr[b].rem {
			return fr[a].rem > fr[b].rem
		}
		return fr[a].i < fr[b].i
	})
	for j := 0; left > 0; j++ {
		ws[fr[j].i].quota++
		left--
	}
}

// tableBytes is the table as little-endian uint16 node IDs, for golden
// files and cross-process comparison.
func tableBytes(t []uint16) []byte {
	b := make([]byte, 2*len(t))
	for i, v := range t {
		binary.LittleEndian.PutUint16(b[2*i:], v)
	}
	return b
}
