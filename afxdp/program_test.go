package afxdp

import (
	"os"
	"testing"
)

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_BPF, CAP_NET_ADMIN) to load XDP programs")
	}
}

func TestLoadProgramPassesVerifier(t *testing.T) {
	requireRoot(t)
	p, err := LoadProgram(ProgramOptions{})
	if err != nil {
		t.Fatalf("%+v", err)
	}
	defer p.Close()
}
