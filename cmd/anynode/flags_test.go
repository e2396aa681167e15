package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCapture(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestHelpExplainsEveryFlag(t *testing.T) {
	code, out, _ := runCapture("--help")
	if code != exitOK {
		t.Fatalf("--help: exit %d", code)
	}
	for _, f := range []string{"--name", "--vip", "--unicast", "--cert", "--key", "--server-name", "--write-cert",
		"--ticket-keys", "--ticket-keys-check", "--profile", "--replay", "--backend", "--admin-addr", "--metrics-addr",
		"--drain-timeout", "--drain-linger", "--drain-target", "--token-lifetime", "--ticket-lifetime", "--capacity", "--code-points", "--log-level",
		"POST /migrate", "POST /drain", "GET /status", "GET /load", "SIGHUP", "SIGUSR1", "SIGTERM", "report_port"} {
		if !strings.Contains(out, f) {
			t.Errorf("--help does not mention %s", f)
		}
	}
}

func TestBadUsageExits2NamingTheFlagOrFile(t *testing.T) {
	dir := t.TempDir()
	badKeys := filepath.Join(dir, "keys.txt")
	// Line 1 is a comment, line 2 a good key, line 3 is wrong.
	if err := os.WriteFile(badKeys, []byte("# pool keys\n"+strings.Repeat("ab", 32)+"\nnot-a-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyKeys := filepath.Join(dir, "empty.txt")
	if err := os.WriteFile(emptyKeys, []byte("# nothing\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badCert := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(badCert, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"--name", "n1", "--vip", "127.0.0.1:0", "--unicast", "127.0.0.2:0"}
	with := func(extra ...string) []string { return append(append([]string{}, base...), extra...) }
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--vip", "127.0.0.1:0", "--unicast", "127.0.0.2:0"}, "--name"},
		{[]string{"--name", "n1", "--unicast", "127.0.0.2:0"}, "--vip"},
		{[]string{"--name", "n1", "--vip", "127.0.0.1:0"}, "--unicast"},
		{with("--bogus"), "bogus"},
		{with("extra-arg"), "extra-arg"},
		{[]string{"--name", "n 1", "--vip", "127.0.0.1:0", "--unicast", "127.0.0.2:0"}, "--name"},
		{[]string{"--name", "n1", "--vip", "localhost:443", "--unicast", "127.0.0.2:0"}, "--vip"},
		{[]string{"--name", "n1", "--vip", "127.0.0.1:0", "--unicast", "0.0.0.0:443"}, "--unicast"},
		{[]string{"--name", "n1", "--vip", "127.0.0.1:443", "--unicast", "127.0.0.1:443"}, "--unicast"},
		{with("--profile", "draft02"), "--profile"},
		{with("--replay", "memcached://x"), "--replay"},
		{with("--replay", "redis://"), "--replay"},
		{with("--backend", "ftp://x/"), "--backend"},
		{with("--admin-addr", "nope"), "--admin-addr"},
		{with("--metrics-addr", "nope"), "--metrics-addr"},
		{with("--drain-timeout", "0s"), "--drain-timeout"},
		{with("--drain-linger", "-1s"), "--drain-linger"},
		{with("--drain-target", "node2:443"), "--drain-target"},
		{with("--cert", badCert), "--cert and --key"},
		{with("--cert", badCert, "--key", badCert), badCert},
		{with("--cert", filepath.Join(dir, "missing.pem"), "--key", badCert), "missing.pem"},
		{with("--ticket-keys", badKeys), badKeys + ":3"},
		{with("--ticket-keys", emptyKeys), emptyKeys},
		{with("--ticket-keys", filepath.Join(dir, "absent")), "absent"},
		{with("--token-lifetime", "2h", "--ticket-lifetime", "1h"), "--token-lifetime"},
		{with("--ticket-lifetime", "200h"), "--ticket-lifetime"},
		{with("--capacity", "-1"), "--capacity"},
		{with("--log-level", "loud"), "--log-level"},
		{with("--code-points", "token=0xFE4D"), "--code-points"},
	}
	for _, c := range cases {
		code, _, stderr := runCapture(c.args...)
		if code != exitUsage {
			t.Errorf("%q: exit %d, want %d (stderr %q)", c.args, code, exitUsage, stderr)
			continue
		}
		if !strings.Contains(stderr, c.want) {
			t.Errorf("%q: stderr %q does not name %q", c.args, stderr, c.want)
		}
	}
}
