package redistest

import (
	"net"
	"runtime"
	"testing"
)

func TestStartAnswersPingAndKillTakesItAway(t *testing.T) {
	s := StartServer(t)
	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("Addr = %q, want 127.0.0.1:PORT", s.Addr)
	}
	if err := ping(s.Addr); err != nil {
		t.Fatalf("PING after Start: %v\n%s", err, s.Log())
	}
	s.Kill()
	s.Kill() // idempotent, as t.Cleanup calls it again
	if err := ping(s.Addr); err == nil {
		t.Fatal("PING still answered after Kill")
	}
}

func TestTwoServersGetDifferentPorts(t *testing.T) {
	a, b := Start(t), Start(t)
	if a == b {
		t.Fatalf("both servers on %s", a)
	}
	for _, addr := range []string{a, b} {
		if err := ping(addr); err != nil {
			t.Fatalf("PING %s: %v", addr, err)
		}
	}
}

func TestMissingBinaryFailsTheTest(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	rec := &recordingTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Start(rec)
	}()
	<-done
	if !rec.fatal {
		t.Fatal("Start without redis-server on PATH did not fail the test")
	}
}

// recordingTB records Fatalf instead of failing, so the test can check that
// Start fails rather than skips.
type recordingTB struct {
	testing.TB
	fatal bool
}

func (r *recordingTB) Fatalf(format string, args ...any) {
	r.fatal = true
	r.TB.Logf("(expected) "+format, args...)
	runtime.Goexit()
}

func (r *recordingTB) Skip(args ...any) { r.TB.Errorf("Start skipped: %v", args) }
func (r *recordingTB) Skipf(format string, args ...any) {
	r.TB.Errorf("Start skipped: "+format, args...)
}
func (r *recordingTB) SkipNow() { r.TB.Error("Start skipped") }
