// Package redistest owns the real redis-server that tests run against: it
// starts one on a free 127.0.0.1 port with persistence off, waits until it
// answers PING, and kills it when the test ends (or earlier, so a test can
// take Redis away). A test that needs Redis fails when redis-server is
// missing or will not start; it never skips.
package redistest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long a redis-server may take to become ready
// before the test fails; it is a failure deadline, not a wait.
const startTimeout = 30 * time.Second

// Server is a running redis-server owned by one test.
type Server struct {
	Addr string // 127.0.0.1:PORT

	cmd      *exec.Cmd
	killOnce sync.Once
	exited   chan struct{}
	log      *lockedBuffer
}

// Start launches a redis-server for t and returns its address. It is killed
// in t.Cleanup.
func Start(t testing.TB) (addr string) {
	t.Helper()
	return StartServer(t).Addr
}

// StartServer is Start that also returns the Server, for tests that Kill
// Redis while they run.
func StartServer(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redistest: redis-server not found (install the Debian package redis-server): %v", err)
	}
	// The free port is found by binding it and letting go; another process
	// may take it before redis-server does, so a bind failure is retried on
	// a fresh port.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("redistest: finding a free port: %v", err)
		}
		s, err := launch(bin, port, t.TempDir())
		if err == nil {
			t.Cleanup(s.Kill)
			return s
		}
		lastErr = err
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	t.Fatalf("redistest: redis-server will not start: %v", lastErr)
	return nil
}

var errAddrInUse = errors.New("address in use")

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func launch(bin string, port int, dir string) (*Server, error) {
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--daemonize", "no",
		"--loglevel", "notice",
	)
	// If the test binary dies without running its cleanups, so does Redis.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// An io.Pipe rather than StdoutPipe: Wait then returns only after all
	// output is copied, so an early exit's reason is in the log.
	logR, logW := io.Pipe()
	cmd.Stdout = logW
	cmd.Stderr = logW
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &Server{
		Addr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		cmd:    cmd,
		exited: make(chan struct{}),
		log:    &lockedBuffer{},
	}
	ready := make(chan struct{})
	logDone := make(chan struct{})
	go func() {
		s.watchLog(logR, ready)
		close(logDone)
	}()
	go func() {
		_ = cmd.Wait()
		logW.Close()
		<-logDone
		close(s.exited)
	}()

	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	select {
	case <-ready:
	case <-s.exited:
		out := s.log.String()
		if strings.Contains(out, "Address already in use") {
			return nil, fmt.Errorf("%w: port %d: %s", errAddrInUse, port, out)
		}
		return nil, fmt.Errorf("exited before ready: %s", out)
	case <-deadline.C:
		s.Kill()
		return nil, fmt.Errorf("not ready after %s: %s", startTimeout, s.log.String())
	}
	if err := ping(s.Addr); err != nil {
		s.Kill()
		return nil, fmt.Errorf("ready but PING failed: %v; log: %s", err, s.log.String())
	}
	return s, nil
}

// watchLog copies redis-server's log and closes ready at the line that says
// it accepts connections.
func (s *Server) watchLog(r io.Reader, ready chan struct{}) {
	sc := bufio.NewScanner(r)
	signalled := false
	for sc.Scan() {
		line := sc.Text()
		s.log.WriteLine(line)
		if !signalled && strings.Contains(line, "Ready to accept connections") {
			close(ready)
			signalled = true
		}
	}
	// Keep redis-server from blocking on a full pipe if a line was too long.
	_, _ = io.Copy(io.Discard, r)
}

// ping sends a RESP PING and expects +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, startTimeout)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(startTimeout)); err != nil {
		return err
	}
	if _, err := io.WriteString(c, "*1\r\n$4\r\nPING\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// Kill stops redis-server at once (SIGKILL) and waits until it has exited,
// so its port refuses connections when Kill returns. It may be called more
// than once.
func (s *Server) Kill() {
	s.killOnce.Do(func() {
		_ = s.cmd.Process.Kill()
		<-s.exited
	})
}

// Log returns what redis-server has printed so far, for failure messages.
func (s *Server) Log() string { return s.log.String() }

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) WriteLine(line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.WriteString(line)
	b.buf.WriteByte('\n')
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
