package sched

import (
	"encoding/binary"
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
func BuildMaglev(k HashKey, m uint32, nodes []MaglevNode) []uint16 {
	table := make([]uint16, m)
	for i := range table {
		table[i] = NoNode
	}
	type walker struct {
		id     uint16
		name   string
		weight uint64
		pos    uint32
		skip   uint32
		credit uint64
	}
	ws := make([]walker, 0, len(nodes))
	var maxW uint64
	for _, n := range nodes {
		if n.Weight == 0 {
			continue
		}
		off, skip := maglevPermutation(k, n.Name, m)
		ws = append(ws, walker{id: n.ID, name: n.Name, weight: uint64(n.Weight), pos: off, skip: skip})
		maxW = max(maxW, uint64(n.Weight))
	}
	if len(ws) == 0 {
		return table
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].name < ws[j].name })
	filled := uint32(0)
	for {
		for i := range ws {
			w := &ws[i]
			w.credit += w.weight
			if w.credit < maxW {
				continue
			}
			w.credit -= maxW
			for table[w.pos] != NoNode {
				w.pos += w.skip
				if w.pos >= m {
					w.pos -= m
				}
			}
			table[w.pos] = w.id
			w.pos += w.skip
			if w.pos >= m {
				w.pos -= m
			}
			filled++
			if filled == m {
				return table
			}
		}
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
