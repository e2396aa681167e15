package tls13

import (
	"bytes"
	"strconv"
	"testing"
)

// TestAutomaticRekey: a writer rekeys on its own before the AEAD's usage
// limit (RFC 8446 §5.5), and the peer follows. At the real limit
// (keyUpdateAfter) both ends are tls13, which pretend that almost that
// many records went out, so the nonces still agree (crypto/tls cannot be
// told that); with crypto/tls as the peer that must follow, the writer's
// record limit is lowered to 3 through the engine's test knob.
func TestAutomaticRekey(t *testing.T) {
	p := verGetPKI(t, verECDSA)
	t.Run("tls13 peer/keyUpdateAfter", func(t *testing.T) {
		pr := verTLS13Pair(t, verTLS13ClientConfig(p), verTLS13ServerConfig(t, p))
		pr.client.outMu.Lock()
		pr.client.out.seq = keyUpdateAfter - 2
		pr.client.outMu.Unlock()
		pr.server.inMu.Lock()
		pr.server.in.seq = keyUpdateAfter - 2
		pr.server.inMu.Unlock()
		go func() {
			for i := 0; i < 5; i++ {
				if verEchoLine(pr.server) != nil {
					return
				}
			}
		}()
		for i := 0; i < 5; i++ {
			if err := verPingPong(pr.client, "near the limit "+strconv.Itoa(i)); err != nil {
				t.Fatalf("round %d: %v", i, err)
			}
		}
		pr.client.outMu.Lock()
		seq := pr.client.out.seq
		pr.client.outMu.Unlock()
		if seq >= keyUpdateAfter {
			t.Errorf("write sequence %d: the writer did not rekey at %d", seq, keyUpdateAfter)
		}
	})
	for _, side := range []string{"tls13-client", "tls13-server"} {
		t.Run("crypto-tls peer/"+side, func(t *testing.T) {
			_, _, c, other := verMixedPair(t, p, side)
			hs := make(chan error, 1)
			go func() { hs <- other.Handshake() }()
			if err := c.Handshake(); err != nil {
				t.Fatal(err)
			}
			if err := verWaitErr(t, hs, "crypto/tls handshake"); err != nil {
				t.Fatal(err)
			}
			c.outMu.Lock()
			c.rekeyAfter = 3
			firstSecret := c.out.secret
			c.outMu.Unlock()
			errc := make(chan error, 1)
			go func() {
				for i := 0; i < 10; i++ {
					if err := verEchoLine(other); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			for i := 0; i < 10; i++ {
				if err := verPingPong(c, "rekey round "+strconv.Itoa(i)); err != nil {
					t.Fatalf("round %d: %v", i, err)
				}
			}
			if err := verWaitErr(t, errc, "crypto/tls echo"); err != nil {
				t.Fatal(err)
			}
			c.outMu.Lock()
			seq, secret := c.out.seq, c.out.secret
			c.outMu.Unlock()
			if seq >= 3 || bytes.Equal(secret, firstSecret) {
				t.Errorf("write sequence %d after 10 records: no automatic KeyUpdate at 3", seq)
			}
		})
	}
}
