package testbed

import (
	"errors"
	"fmt"
	"time"
)

// Pools splits the bed's nodes into p pools of consecutive nodes, as
// evenly as the count allows (5 nodes in 2 pools: 3 and 2), the way the
// router configs of the tests and the demo name them (pool 0 holds node1,
// node2, ...). It does not change the bed.
func (b *Bed) Pools(p int) ([][]*Host, error) {
	if p < 1 || p > len(b.Nodes) {
		return nil, fmt.Errorf("testbed: %d pools of %d nodes: want 1..%d", p, len(b.Nodes), len(b.Nodes))
	}
	pools := make([][]*Host, p)
	next := 0
	for i := range pools {
		size := len(b.Nodes) / p
		if i < len(b.Nodes)%p {
			size++
		}
		pools[i] = b.Nodes[next : next+size : next+size]
		next += size
	}
	return pools, nil
}

// SetDelays gives every host (e.g. the nodes of one pool) the egress delay
// d; see Host.SetDelay. It changes what it can and reports every failure.
func SetDelays(hosts []*Host, d time.Duration) error {
	var errs []error
	for _, h := range hosts {
		if err := h.SetDelay(d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
