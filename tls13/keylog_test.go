package tls13

import (
	"crypto/tls"
	"encoding/hex"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/anysched/anysched/tls13/internal/oracle"
)

// TestKeyLogWriter: the tls13 end's key log (NSS format, one
// "LABEL client_random secret" line per secret) names every traffic
// secret and the exporter secret, and Wireshark-style decryption of a
// capture with it works, for the server's log and the client's.
func TestKeyLogWriter(t *testing.T) {
	p := verGetPKI(t, verECDSA)
	check := func(t *testing.T, w *verWireConn, kl *oracle.KeyLog, lines *verLockedBuffer) {
		t.Helper()
		for _, line := range strings.Split(strings.TrimSpace(lines.String()), "\n") {
			f := strings.Fields(line)
			if len(f) != 3 || len(f[1]) != 64 || len(f[2]) != 64 {
				t.Errorf("malformed key log line %q", line)
			}
		}
		c2s, s2c, _, _, err := verDecryptConn(w, kl)
		if err != nil {
			t.Fatalf("decrypting with the key log: %v", err)
		}
		var up, down []byte
		for _, r := range c2s {
			if r.Type == verRecordAppData {
				up = append(up, r.Payload...)
			}
		}
		for _, r := range s2c {
			if r.Type == verRecordAppData {
				down = append(down, r.Payload...)
			}
		}
		if string(up) != "secret\n" || string(down) != "secret\n" {
			t.Errorf("decrypted application data: up %q down %q", up, down)
		}
		recs, _ := verSplitRecords(w.wroteBytes())
		random := hex.EncodeToString(recs[0][5+4+2 : 5+4+2+32])
		randoms := kl.ClientRandoms()
		if len(randoms) != 1 || !randoms[random] {
			t.Errorf("key log client_random fields %v, want only the ClientHello's %s", randoms, random)
		}
		for _, label := range []string{"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
			"CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0", "EXPORTER_SECRET"} {
			if kl.Secret(label) == nil {
				t.Errorf("key log lacks %s", label)
			}
		}
	}
	t.Run("tls13-server", func(t *testing.T) {
		kl, lines := &oracle.KeyLog{}, &verLockedBuffer{}
		scfg := verTLS13ServerConfig(t, p)
		scfg.KeyLogWriter = io.MultiWriter(kl, lines)
		ln := verListen(t)
		done := verAcceptOne(ln, func(c net.Conn) error { return verEchoLine(Server(c, scfg)) })
		w := &verWireConn{Conn: verDial(t, ln.Addr().String())}
		c := tls.Client(w, verStdlibClientConfig(p))
		if err := verPingPong(c, "secret"); err != nil {
			t.Fatal(err)
		}
		verWaitErr(t, done, "server")
		check(t, w, kl, lines)
	})
	t.Run("tls13-client", func(t *testing.T) {
		kl, lines := &oracle.KeyLog{}, &verLockedBuffer{}
		ln := verListen(t)
		done := verAcceptOne(ln, func(c net.Conn) error { return verEchoLine(tls.Server(c, verStdlibServerConfig(p))) })
		w := &verWireConn{Conn: verDial(t, ln.Addr().String())}
		ccfg := verTLS13ClientConfig(p)
		ccfg.KeyLogWriter = io.MultiWriter(kl, lines)
		c := Client(w, ccfg)
		if err := verPingPong(c, "secret"); err != nil {
			t.Fatal(err)
		}
		verWaitErr(t, done, "server")
		check(t, w, kl, lines)
	})
}
