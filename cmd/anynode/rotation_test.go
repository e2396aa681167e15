package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/anysched/anysched/tls13"
)

// ticketClient is a plain tls13 client (no migration) that keeps the last
// ticket it was given.
type ticketClient struct {
	t       *testing.T
	session *tls13.ClientSession
}

// get makes one request to addr, offering resume (nil: a full
// handshake); it returns whether the server resumed and remembers the
// new ticket.
func (c *ticketClient) get(addr string, resume *tls13.ClientSession) bool {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	conn, err := tls13.Dial(ctx, "tcp", addr, &tls13.Config{
		InsecureSkipVerify: true,
		Session:            resume,
		OnNewSessionTicket: func(_ *tls13.Conn, s *tls13.ClientSession) { c.session = s },
	})
	if err != nil {
		c.t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	if _, err := fmt.Fprint(conn, "GET / HTTP/1.1\r\nHost: vip\r\nConnection: close\r\n\r\n"); err != nil {
		c.t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		c.t.Fatalf("response from %s: %v", addr, err)
	}
	resp.Body.Close()
	return conn.ConnectionState().DidResume
}

// writeKeys replaces the key file the way operators rotate it: a new file
// renamed over the old one.
func writeKeys(t *testing.T, file string, keys ...string) {
	t.Helper()
	tmp := file + ".new"
	if err := os.WriteFile(tmp, []byte(strings.Join(keys, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
}

func TestTicketKeyRotationWithoutRestart(t *testing.T) {
	k1, k2, k3 := strings.Repeat("11", 32), strings.Repeat("22", 32), strings.Repeat("33", 32)
	file := filepath.Join(t.TempDir(), "pool.keys")
	writeKeys(t, file, k1)
	n := startNode(t, nodeArgs("rota", "--ticket-keys", file, "--ticket-keys-check", "50ms")...)
	c := &ticketClient{t: t}
	if c.get(n.unicast, nil) {
		t.Fatal("first connection resumed")
	}
	oldTicket := c.session
	if oldTicket == nil {
		t.Fatal("no ticket")
	}

	// SIGHUP: k2 current, k1 previous. The k1 ticket still resumes.
	writeKeys(t, file, k2, k1)
	from := n.logLen()
	n.signal(syscall.SIGHUP)
	from, _ = n.waitLog("ticket keys loaded", from)
	if !c.get(n.unicast, oldTicket) {
		t.Error("a ticket sealed with the previous key did not resume after the rotation")
	}
	k2Ticket := c.session

	// A broken file is refused; the keys in use stay.
	writeKeys(t, file, "garbage")
	n.signal(syscall.SIGHUP)
	from, line := n.waitLog("ticket keys not reloaded", from)
	if !strings.Contains(line, file+":1") {
		t.Errorf("reload error does not name the file and line: %s", line)
	}
	if !c.get(n.vip, k2Ticket) {
		t.Error("a broken key file dropped the keys in use")
	}

	// The file changes on disk, no signal: k3 current, k2 previous. k1 is
	// gone, so its ticket gets a full handshake (and still service).
	writeKeys(t, file, k3, k2)
	n.waitLog("ticket keys loaded", from)
	if c.get(n.unicast, oldTicket) {
		t.Error("a ticket sealed with a key rotated out still resumed")
	}
	if !c.get(n.unicast, k2Ticket) {
		t.Error("a ticket sealed with the now-previous key did not resume")
	}
	// The file watcher may also have seen a change before its SIGHUP, so
	// the reloads are counted at least, not exactly.
	body := string(httpDo(t, http.MethodGet, "http://"+n.metrics+"/metrics", http.StatusOK))
	if ok := metricValue(body, `anynode_ticket_key_reloads_total{node="rota",result="ok"}`); ok < 2 {
		t.Errorf("ok reloads counted: %v, want at least 2", ok)
	}
	if bad := metricValue(body, `anynode_ticket_key_reloads_total{node="rota",result="error"}`); bad < 1 {
		t.Errorf("failed reloads counted: %v, want at least 1", bad)
	}
}

// metricValue is the value of one series in a Prometheus text scrape (-1
// when absent).
func metricValue(scrape, series string) float64 {
	for _, line := range strings.Split(scrape, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err == nil {
				return f
			}
		}
	}
	return -1
}
