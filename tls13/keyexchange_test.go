package tls13

// Key-share tests of the groups beyond X25519MLKEM768, X25519 and P-256
// (P-384, P-521, X448, FFDHE2048, FFDHE3072), over a raw socket: a valid share completes the
// handshake on that group; each invalid share (point at infinity, off the
// curve, compressed, truncated, padded, another group's share, low-order
// or out-of-range values) is illegal_parameter (RFC 8446 §4.2.8,
// RFC 7748 §6, RFC 7919 §5.1).

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/tls"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/cloudflare/circl/dh/x448"
)

// verGroupShare returns a valid client share for group, made without the
// engine's key exchange code.
func verGroupShare(t testing.TB, group tls.CurveID) []byte {
	t.Helper()
	switch group {
	case X25519, CurveP256, CurveP384, CurveP521:
		curves := map[tls.CurveID]ecdh.Curve{X25519: ecdh.X25519(), CurveP256: ecdh.P256(), CurveP384: ecdh.P384(), CurveP521: ecdh.P521()}
		k, err := curves[group].GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k.PublicKey().Bytes()
	case X448:
		var priv, pub x448.Key
		rand.Read(priv[:])
		x448.KeyGen(&pub, &priv)
		return pub[:]
	case FFDHE2048, FFDHE3072:
		p := verFFDHEPrime(t, group)
		x, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 256))
		y := new(big.Int).Exp(big.NewInt(2), x.Add(x, big.NewInt(2)), p)
		return y.FillBytes(make([]byte, (p.BitLen()+7)/8))
	}
	t.Fatalf("no share generator for %v", group)
	return nil
}

// verFFDHEPrime is the group's prime as OpenSSL knows it (RFC 7919).
func verFFDHEPrime(t testing.TB, group tls.CurveID) *big.Int {
	t.Helper()
	name := map[tls.CurveID]string{FFDHE2048: "ffdhe2048", FFDHE3072: "ffdhe3072"}[group]
	out := filepath.Join(t.TempDir(), name+".pem")
	cmd := exec.Command(verOpenSSL(t), "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "group:"+name, "-out", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl genpkey: %v\n%s", err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	var params struct{ P, G *big.Int }
	if block == nil {
		t.Fatal("openssl wrote no PEM")
	}
	if _, err := asn1.Unmarshal(block.Bytes, &params); err != nil {
		t.Fatalf("DH parameters: %v", err)
	}
	if params.G.Cmp(big.NewInt(2)) != 0 {
		t.Fatalf("generator %v, want 2", params.G)
	}
	return params.P
}

// TestFFDHEPrimes: the engine's primes are OpenSSL's, safe primes whose
// top and bottom 64 bits are all ones (the RFC 7919 construction).
func TestFFDHEPrimes(t *testing.T) {
	for _, tc := range []struct {
		group tls.CurveID
		g     *ffdheGroup
		bits  int
	}{{FFDHE2048, ffdhe2048, 2048}, {FFDHE3072, ffdhe3072, 3072}} {
		t.Run(fmt.Sprint(tc.bits), func(t *testing.T) {
			if tc.g.p.Cmp(verFFDHEPrime(t, tc.group)) != 0 {
				t.Fatal("prime differs from OpenSSL's")
			}
			p := tc.g.p
			ones := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 64), big.NewInt(1))
			if p.BitLen() != tc.bits || new(big.Int).And(p, ones).Cmp(ones) != 0 || new(big.Int).Rsh(p, uint(tc.bits-64)).Cmp(ones) != 0 {
				t.Fatal("prime lacks the RFC 7919 structure")
			}
			q := new(big.Int).Rsh(p, 1)
			if !p.ProbablyPrime(8) || !q.ProbablyPrime(8) {
				t.Fatal("not a safe prime")
			}
			if tc.g.size != tc.bits/8 {
				t.Fatalf("share size %d", tc.g.size)
			}
		})
	}
}

// verInvalidShares lists the invalid shares of group with their names.
func verInvalidShares(t *testing.T, group tls.CurveID) map[string][]byte {
	valid := verGroupShare(t, group)
	flip := func(b []byte) []byte { c := append([]byte(nil), b...); c[len(c)-1] ^= 1; return c }
	common := map[string][]byte{
		"truncated": valid[:len(valid)-1],
		"padded":    append(append([]byte(nil), valid...), 0),
		"one byte":  {0},
	}
	switch group {
	case CurveP384, CurveP521:
		other := verGroupShare(t, CurveP256)
		if group == CurveP521 {
			other = verGroupShare(t, CurveP384)
		}
		common["point at infinity"] = []byte{0}
		common["off the curve"] = flip(valid)
		common["compressed"] = append([]byte{2 | valid[len(valid)-1]&1}, valid[1:(len(valid)+1)/2]...)
		common["another curve's point"] = other
		common["all zero, full length"] = make([]byte, len(valid))
	case X448:
		one := make([]byte, 56)
		one[0] = 1
		common["all zero (low order)"] = make([]byte, 56)
		common["u = 1 (low order)"] = one
		common["an X25519 share"] = verGroupShare(t, X25519)
	case FFDHE2048, FFDHE3072:
		p := verFFDHEPrime(t, group)
		size := len(valid)
		enc := func(v *big.Int) []byte { return v.FillBytes(make([]byte, size)) }
		common["Y = 0"] = make([]byte, size)
		common["Y = 1"] = enc(big.NewInt(1))
		common["Y = p-1"] = enc(new(big.Int).Sub(p, big.NewInt(1)))
		common["Y = p"] = enc(p)
		common["Y unpadded"] = bytes.TrimLeft(enc(big.NewInt(5)), "\x00")
		other := FFDHE3072
		if group == FFDHE3072 {
			other = FFDHE2048
		}
		common["the other FFDHE group's share"] = verGroupShare(t, other)
	}
	return common
}

func TestGroupKeyShares(t *testing.T) {
	cfg := verTLS13ServerConfig(t, verGetPKI(t, verECDSA))
	groups := []tls.CurveID{CurveP384, CurveP521, X448, FFDHE2048, FFDHE3072}
	hello := func(group tls.CurveID, share []byte) *verHello {
		h := verDefaultHello(t)
		h.set(verExtSupportedGroups, verU16List(2, uint16(group)))
		h.set(verExtKeyShare, verKeyShareExt(verExt{uint16(group), share}))
		return h
	}
	for _, group := range groups {
		t.Run(fmt.Sprintf("%#04x valid", uint16(group)), func(t *testing.T) {
			rc := newRawClient(t, cfg, func(s *Conn) error {
				if g := s.ConnectionState().Group; g != group {
					return fmt.Errorf("negotiated %v", g)
				}
				return nil
			})
			rc.sendHello(hello(group, verGroupShare(t, group)).marshal())
			if err := rc.readServerFlight(); err != nil {
				t.Fatal(err)
			}
			rc.completeHandshake()
			if err := rc.serverErr(); err != nil {
				t.Fatalf("server: %v", err)
			}
		})
		for name, share := range verInvalidShares(t, group) {
			t.Run(fmt.Sprintf("%#04x %s", uint16(group), name), func(t *testing.T) {
				verExpectAlert(t, cfg, verAlertIllegalParameter, hello(group, share).record())
			})
		}
	}
}

// TestGroupServerPreference: the server's CurvePreferences order decides
// among the client's shares, whatever the client's order.
func TestGroupServerPreference(t *testing.T) {
	for _, pref := range [][]tls.CurveID{{CurveP521, CurveP384, X448}, {X448, CurveP384}, {FFDHE3072, FFDHE2048, CurveP384}} {
		t.Run(fmt.Sprint(pref), func(t *testing.T) {
			cfg := verTLS13ServerConfig(t, verGetPKI(t, verECDSA))
			cfg.CurvePreferences = pref
			offered := []tls.CurveID{CurveP384, CurveP521, X448, FFDHE2048, FFDHE3072}
			h := verDefaultHello(t)
			var ids []uint16
			var shares []verExt
			for _, g := range offered {
				ids = append(ids, uint16(g))
				shares = append(shares, verExt{uint16(g), verGroupShare(t, g)})
			}
			h.set(verExtSupportedGroups, verU16List(2, ids...))
			h.set(verExtKeyShare, verKeyShareExt(shares...))
			rc := newRawClient(t, cfg, func(s *Conn) error {
				if g := s.ConnectionState().Group; g != pref[0] {
					return fmt.Errorf("negotiated %v, want the server's first choice %v", g, pref[0])
				}
				return nil
			})
			rc.sendHello(h.marshal())
			if err := rc.readServerFlight(); err != nil {
				t.Fatal(err)
			}
			rc.completeHandshake()
			if err := rc.serverErr(); err != nil {
				t.Fatalf("server: %v", err)
			}
		})
	}
}

// TestGroupClientRejectsInvalidServerShare: the client's side of the
// exchange refuses the same invalid shares coming from a server.
func TestGroupClientRejectsInvalidServerShare(t *testing.T) {
	for _, group := range []tls.CurveID{CurveP384, CurveP521, X448, FFDHE2048, FFDHE3072} {
		ks, _, err := newClientKeyShare(group)
		if err != nil {
			t.Fatal(err)
		}
		for name, share := range verInvalidShares(t, group) {
			if _, err := ks.sharedSecret(share); err != errBadKeyShare {
				t.Errorf("%v %s: %v, want errBadKeyShare", group, name, err)
			}
		}
		if _, err := ks.sharedSecret(verGroupShare(t, group)); err != nil {
			t.Errorf("%v valid share: %v", group, err)
		}
	}
}
