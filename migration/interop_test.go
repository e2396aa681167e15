package migration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// OpenSSL's s_client is a legacy client (no migration_support): it gets
// normal service from a Server on both addresses, full and resumed
// (-sess_out / -sess_in), and no migration element ever reaches it.
func TestOpenSSLClientAgainstServer(t *testing.T) {
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatalf("openssl not installed (apt-get install openssl): %v", err)
	}
	node := startNode(t, nodeOpts{})
	caFile := getPKI(t).caFile(t)
	for _, addr := range []string{node.vipAddr(), node.uniAddr()} {
		sess := filepath.Join(t.TempDir(), "session.pem")
		out := runSClient(t, bin, addr, caFile, "-sess_out", sess)
		for _, want := range []string{"New, TLSv1.3", "Verify return code: 0 (ok)", "HTTP/1.1 200 OK", "Anysched-Node: node"} {
			if !strings.Contains(out, want) {
				t.Fatalf("s_client %s (full): output lacks %q:\n%s", addr, want, out)
			}
		}
		if fi, err := os.Stat(sess); err != nil || fi.Size() == 0 {
			t.Fatalf("s_client saved no session from %s: %v", addr, err)
		}
		out = runSClient(t, bin, addr, caFile, "-sess_in", sess)
		for _, want := range []string{"Reused, TLSv1.3", "HTTP/1.1 200 OK", "resumed=true"} {
			if !strings.Contains(out, want) {
				t.Fatalf("s_client %s (resumed): output lacks %q:\n%s", addr, want, out)
			}
		}
	}
	node.srv.MigrateAll(addrOf(node.uni))
	st := node.srv.Stats()
	if st.TokensIssued != 0 || st.NotificationsSent != 0 || st.HandshakesFull != 2 || st.HandshakesResumed != 2 {
		t.Errorf("stats after the OpenSSL clients: %+v", st)
	}
}

func runSClient(t *testing.T, bin, addr, caFile string, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	args := append([]string{"s_client", "-connect", addr, "-servername", testServerName,
		"-CAfile", caFile, "-verify_return_error", "-verify_hostname", testServerName,
		"-tls1_3", "-ign_eof"}, extra...)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader("GET / HTTP/1.1\r\nHost: " + testServerName + "\r\nConnection: close\r\n\r\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
