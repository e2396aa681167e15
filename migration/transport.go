package migration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
)

// Transport is an http.RoundTripper (HTTP/1.1 over Dialer connections,
// https only, a keep-alive pool per host) that migrates with no change to
// the application: each request goes out on an idle connection after
// SwitchIfReady, so a move prepared in the background takes effect
// between requests, and an idle pooled connection switches as soon as
// its move is ready.
type Transport struct {
	Dialer *Dialer
	// MaxIdlePerHost bounds the idle connections kept per host; 0 means 2.
	MaxIdlePerHost int

	mu    sync.Mutex
	idle  map[string][]*pooledConn
	dials atomic.Int64
}

// Dials is how many connections t has dialed. A move to a node's unicast
// address is not a dial; a second dial means a connection was lost (the
// peer closed it, or a request on it failed and was retried on a new
// one), which a load generator counts as broken.
func (t *Transport) Dials() int64 { return t.dials.Load() }

const defaultMaxIdlePerHost = 2

// pooledConn is a Conn with its HTTP reader, kept across requests.
type pooledConn struct {
	c   *Conn
	key string
	br  *bufio.Reader
	bw  *bufio.Writer
	cw  countingWriter
}

// countingWriter counts the bytes the connection accepted, so that a
// request can be retried only when none of it went out.
type countingWriter struct {
	c *Conn
	n int64
}

func (w *countingWriter) Write(b []byte) (int, error) {
	n, err := w.c.Write(b)
	w.n += int64(n)
	return n, err
}

// RoundTrip sends req and returns its response. A request is retried on
// a fresh connection only when nothing of it was written, or when it is
// idempotent and a reused connection closed before any response byte.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil {
		closeBody(req)
		return nil, errors.New("migration: Transport: request without URL")
	}
	if req.URL.Scheme != "https" {
		closeBody(req)
		return nil, fmt.Errorf("migration: Transport: scheme %q is not https", req.URL.Scheme)
	}
	if t.Dialer == nil {
		closeBody(req)
		return nil, errors.New("migration: Transport.Dialer is nil")
	}
	key := hostPort(req)
	for attempt := 0; ; attempt++ {
		pc, reused, err := t.getConn(req.Context(), key)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		resp, written, gotResponse, err := t.send(pc, req)
		if err == nil {
			return resp, nil
		}
		pc.c.Close()
		retry := attempt < 2 && reused && req.Context().Err() == nil &&
			(written == 0 || (!gotResponse && idempotent(req))) && rewindable(req)
		if !retry {
			closeBody(req)
			return nil, err
		}
		if req.GetBody != nil && req.Body != nil && req.Body != http.NoBody {
			body, gerr := req.GetBody()
			if gerr != nil {
				return nil, err
			}
			r2 := *req
			r2.Body = body
			req = &r2
		}
	}
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

func idempotent(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return req.Header.Get("Idempotency-Key") != "" || req.Header.Get("X-Idempotency-Key") != ""
}

func rewindable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

func hostPort(req *http.Request) string {
	host := req.URL.Host
	if req.URL.Port() == "" {
		host = net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(req.URL.Hostname(), "["), "]"), "443")
	}
	return host
}

// getConn takes an idle connection (switching it to a prepared move
// first) or dials a new one.
func (t *Transport) getConn(ctx context.Context, key string) (*pooledConn, bool, error) {
	for {
		t.mu.Lock()
		list := t.idle[key]
		if len(list) == 0 {
			t.mu.Unlock()
			break
		}
		pc := list[len(list)-1]
		t.idle[key] = list[:len(list)-1]
		t.mu.Unlock()
		pc.c.setOnReady(nil)
		if pc.br.Buffered() > 0 || pc.c.current().isDead.Load() {
			pc.c.Close() // the server spoke out of turn or went away
			continue
		}
		if _, err := pc.c.SwitchIfReady(); err != nil {
			pc.c.Close()
			continue
		}
		return pc, true, nil
	}
	t.dials.Add(1)
	c, err := t.Dialer.DialContext(ctx, "tcp", key)
	if err != nil {
		return nil, false, err
	}
	pc := &pooledConn{c: c, key: key}
	pc.cw.c = c
	pc.br = bufio.NewReader(c)
	pc.bw = bufio.NewWriter(&pc.cw)
	return pc, false, nil
}

// send writes req on pc and reads the response headers.
func (t *Transport) send(pc *pooledConn, req *http.Request) (resp *http.Response, written int64, gotResponse bool, err error) {
	pc.cw.n = 0
	if _, err := pc.c.SwitchIfReady(); err != nil {
		return nil, 0, false, err
	}
	stop := context.AfterFunc(req.Context(), func() { pc.c.Close() })
	werr := req.Write(pc.bw)
	if werr == nil {
		werr = pc.bw.Flush()
	}
	if werr != nil {
		stop()
		pc.bw.Reset(&pc.cw)
		return nil, pc.cw.n, false, werr
	}
	resp, err = http.ReadResponse(pc.br, req)
	if err != nil {
		stop()
		if ctxErr := req.Context().Err(); ctxErr != nil {
			err = ctxErr
		}
		return nil, pc.cw.n, pc.br.Buffered() > 0, err
	}
	info := pc.c.Info()
	body := &responseBody{t: t, pc: pc, rc: resp.Body, info: info, stop: stop,
		reuse: !resp.Close && !req.Close}
	resp.Body = body
	if resp.ContentLength == 0 && (req.Method == http.MethodHead || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified) {
		body.finish(true)
	}
	return resp, pc.cw.n, true, nil
}

// responseBody returns its connection to the pool at EOF, or closes it
// on Connection: close, an early Close or an error.
type responseBody struct {
	t     *Transport
	pc    *pooledConn
	rc    io.ReadCloser
	info  ConnInfo
	stop  func() bool
	reuse bool

	mu   sync.Mutex
	done bool
}

func (b *responseBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	done := b.done
	b.mu.Unlock()
	if done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.finish(true)
	} else if err != nil {
		b.finish(false)
	}
	return n, err
}

func (b *responseBody) Close() error {
	b.finish(false)
	return nil
}

func (b *responseBody) finish(atEOF bool) {
	b.mu.Lock()
	if b.done {
		b.mu.Unlock()
		return
	}
	b.done = true
	b.mu.Unlock()
	b.stop()
	if atEOF && b.reuse {
		b.t.putIdle(b.pc)
		return
	}
	b.pc.c.Close()
}

// putIdle pools pc; a background move that becomes ready while pc is
// idle switches it at once.
func (t *Transport) putIdle(pc *pooledConn) {
	max := t.MaxIdlePerHost
	if max <= 0 {
		max = defaultMaxIdlePerHost
	}
	t.mu.Lock()
	if t.idle == nil {
		t.idle = make(map[string][]*pooledConn)
	}
	if len(t.idle[pc.key]) >= max {
		t.mu.Unlock()
		pc.c.Close()
		return
	}
	t.idle[pc.key] = append(t.idle[pc.key], pc)
	t.mu.Unlock()
	pc.c.setOnReady(func() { t.switchIdle(pc) })
	if pc.c.ready() {
		t.switchIdle(pc)
	}
}

// switchIdle switches pc if it is still idle; it stays in the pool
// meanwhile (the switch itself does not block: the old conn closes in
// the background). Taken out of the pool, its next RoundTrip switches it.
func (t *Transport) switchIdle(pc *pooledConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	list := t.idle[pc.key]
	i := -1
	for j, x := range list {
		if x == pc {
			i = j
		}
	}
	if i < 0 {
		return
	}
	if _, err := pc.c.SwitchIfReady(); err != nil || pc.br.Buffered() > 0 {
		t.idle[pc.key] = append(list[:i:i], list[i+1:]...)
		go pc.c.Close()
	}
}

// CloseIdleConnections closes every idle pooled connection.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, list := range idle {
		for _, pc := range list {
			pc.c.Close()
		}
	}
}

// ResponseConnInfo returns the ConnInfo of the connection that served
// resp, as it was when the response headers arrived (set by Transport).
func ResponseConnInfo(resp *http.Response) (ConnInfo, bool) {
	if resp == nil {
		return ConnInfo{}, false
	}
	if b, ok := resp.Body.(*responseBody); ok {
		return b.info, true
	}
	return ConnInfo{}, false
}
