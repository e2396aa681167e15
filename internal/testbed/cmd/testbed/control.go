package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/anysched/anysched/internal/testbed"
)

// The delay lines live in the `up --delay` process, so a later `testbed
// delay` asks that process, over a unix socket, to change them. One
// request is one line, "delay" followed by zero or more nodeI=DURATION
// words; the answer is one line, "ok" followed by every node's delay
// after the change, or "error" and why. Only root can reach the socket
// (its directory is 0700), as only root can build the bed.

// controlDir holds one socket per running `up --delay`, named by prefix.
var controlDir = "/run/anysched-testbed"

// maxControlLine bounds a request (200 nodes × "node200=59.999999999s").
const maxControlLine = 8 << 10

// controlTimeout bounds one request on either side: a client that
// connects and says nothing must not hold the server.
const controlTimeout = 5 * time.Second

func controlPath(prefix string) string { return filepath.Join(controlDir, prefix+".sock") }

// delayAssignment is one parsed nodeI=DURATION word (I is 1-based).
type delayAssignment struct {
	node  int
	delay time.Duration
}

// parseDelay reads nodeI=DURATION; nodes is the bed's node count (0: not
// known here, the running bed checks it).
func parseDelay(word string, nodes int) (delayAssignment, error) {
	node, dur, ok := strings.Cut(word, "=")
	num, hasNode := strings.CutPrefix(node, "node")
	i, err := strconv.Atoi(num)
	if !ok || !hasNode || err != nil || strconv.Itoa(i) != num || i < 1 || (nodes > 0 && i > nodes) {
		if nodes > 0 {
			return delayAssignment{}, fmt.Errorf("%q: want nodeI=DURATION with I in 1..%d", word, nodes)
		}
		return delayAssignment{}, fmt.Errorf("%q: want nodeI=DURATION (e.g. node2=20ms)", word)
	}
	d, err := time.ParseDuration(dur)
	if err != nil || d < 0 || d > time.Minute {
		return delayAssignment{}, fmt.Errorf("%q: want a duration 0..1m such as 20ms", word)
	}
	return delayAssignment{node: i, delay: d}, nil
}

// delayControl serves the control socket of one running bed.
type delayControl struct {
	bed  *testbed.Bed
	path string
	ln   net.Listener
	mu   sync.Mutex // serializes changes; guards delays
	// delays mirrors what was set on each node's delay line (the line
	// itself does not say), for the answer.
	delays []time.Duration
	wg     sync.WaitGroup
}

// serveDelayControl listens on the bed's control socket. A socket file
// left by an `up` that was killed is replaced; one that still answers
// belongs to a running bed and is an error.
func serveDelayControl(b *testbed.Bed, initial []time.Duration) (*delayControl, error) {
	if err := os.MkdirAll(controlDir, 0o700); err != nil {
		return nil, err
	}
	path := controlPath(b.Prefix)
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s is in use by another testbed up", path)
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	dc := &delayControl{bed: b, path: path, ln: ln, delays: make([]time.Duration, len(b.Nodes))}
	copy(dc.delays, initial)
	dc.wg.Add(1)
	go dc.accept()
	return dc, nil
}

func (dc *delayControl) accept() {
	defer dc.wg.Done()
	for {
		c, err := dc.ln.Accept()
		if err != nil {
			return // closed
		}
		dc.wg.Add(1)
		go func() {
			defer dc.wg.Done()
			defer c.Close()
			c.SetDeadline(time.Now().Add(controlTimeout))
			line, err := readLine(c)
			if err != nil {
				fmt.Fprintf(c, "error %v\n", err)
				return
			}
			fmt.Fprintln(c, dc.handle(line))
		}()
	}
}

// readLine reads one newline-terminated line of at most maxControlLine.
func readLine(r io.Reader) (string, error) {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 256), maxControlLine)
	if !s.Scan() {
		if s.Err() != nil {
			return "", fmt.Errorf("reading the request: %w", s.Err())
		}
		return "", errors.New("empty request")
	}
	return s.Text(), nil
}

// handle applies one request and returns the answer line.
func (dc *delayControl) handle(line string) string {
	words := strings.Fields(line)
	if len(words) == 0 || words[0] != "delay" {
		return "error unknown request (want: delay [nodeI=DURATION ...])"
	}
	var set []delayAssignment
	for _, w := range words[1:] {
		a, err := parseDelay(w, len(dc.bed.Nodes))
		if err != nil {
			return "error " + err.Error()
		}
		set = append(set, a)
	}
	dc.mu.Lock()
	defer dc.mu.Unlock()
	// All or nothing: setting a node's current delay again changes
	// nothing and fails only where there is no delay line, so a request
	// naming such a node is refused before any delay moves.
	for _, a := range set {
		if err := dc.bed.Nodes[a.node-1].SetDelay(dc.delays[a.node-1]); err != nil {
			return "error node" + strconv.Itoa(a.node) + ": " + err.Error()
		}
	}
	for _, a := range set {
		dc.bed.Nodes[a.node-1].SetDelay(a.delay)
		dc.delays[a.node-1] = a.delay
	}
	return "ok " + formatDelays(dc.delays)
}

func formatDelays(delays []time.Duration) string {
	words := make([]string, len(delays))
	for i, d := range delays {
		words[i] = fmt.Sprintf("node%d=%v", i+1, d)
	}
	return strings.Join(words, " ")
}

// close stops serving and removes the socket file.
func (dc *delayControl) close() {
	dc.ln.Close() // a unix listener removes its file on Close
	dc.wg.Wait()
	os.Remove(dc.path)
	os.Remove(controlDir) // only if empty: another bed's socket keeps it
}

// removeStaleControl removes the prefix's socket file unless a running
// `up` answers on it (down: nothing left behind, a live bed's socket
// kept until that process ends), then the directory if it is empty.
func removeStaleControl(prefix string) {
	path := controlPath(prefix)
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return
	}
	os.Remove(path)
	os.Remove(controlDir) // only if empty
}

// requestDelays sends words to the running bed's control socket and
// returns its answer (every node's delay), or why not.
func requestDelays(prefix string, words []string) (string, error) {
	path := controlPath(prefix)
	c, err := net.DialTimeout("unix", path, controlTimeout)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return "", fmt.Errorf("no running 'testbed up --delay' for bed %s (no listener on %s): delays can only change on a bed whose delay lines run", prefix, path)
		}
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(controlTimeout))
	if _, err := fmt.Fprintln(c, strings.Join(append([]string{"delay"}, words...), " ")); err != nil {
		return "", err
	}
	answer, err := readLine(c)
	if err != nil {
		return "", err
	}
	if rest, ok := strings.CutPrefix(answer, "ok"); ok {
		return strings.TrimSpace(rest), nil
	}
	return "", errors.New(strings.TrimSpace(strings.TrimPrefix(answer, "error")))
}
