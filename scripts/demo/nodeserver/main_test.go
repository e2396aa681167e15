package main

import (
	"bufio"
	"crypto/tls"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a log destination the test can read while servers write.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestAnswersEveryLineWithTheNodeName(t *testing.T) {
	cert, err := selfSigned("vip.test")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var logged syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- serve(tls.NewListener(raw, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}), "node7", log.New(&logged, "", 0))
	}()

	c, err := tls.Dial("tcp", raw.Addr().String(), &tls.Config{ServerName: "vip.test", InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if v := c.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("TLS version %x, want 1.3", v)
	}
	r := bufio.NewReader(c)
	for i := 0; i < 3; i++ {
		if _, err := io.WriteString(c, "which node?\n"); err != nil {
			t.Fatal(err)
		}
		line, err := r.ReadString('\n')
		if err != nil || line != "node7\n" {
			t.Fatalf("answer %d: %q, %v", i, line, err)
		}
	}
	local := c.LocalAddr().String()
	c.Close()
	// The connection is logged when the server sees it close.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logged.String(), local+": served 3 requests") {
		if time.Now().After(deadline) {
			t.Fatalf("no log line for %s; log:\n%s", local, logged.String())
		}
		time.Sleep(10 * time.Millisecond)
	}

	raw.Close()
	if err := <-done; err == nil {
		t.Error("serve returned nil after its listener closed")
	}
}

func TestBadFlagsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"--listen", "127.0.0.1:0"},
		{"--name", "n"},
		{"--nope"},
		{"--name", "n", "--listen", "not-an-address"},
	} {
		if code := run(args); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	// An address that cannot be bound here is a runtime failure.
	if code := run([]string{"--name", "n", "--listen", "192.0.2.1:1"}); code != 1 {
		t.Errorf("unbindable --listen: exit %d, want 1", code)
	}
	if code := run([]string{"--help"}); code != 0 {
		t.Errorf("--help: exit %d, want 0", code)
	}
}
