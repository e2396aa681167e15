package tls13

import (
	"crypto/ecdh"
	"crypto/mlkem"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"io"
	"math/big"

	"github.com/cloudflare/circl/dh/x448"
)

const (
	x25519ShareLen      = 32
	p256ShareLen        = 65
	mlkemEncapKeyLen    = mlkem.EncapsulationKeySize768
	mlkemCiphertextLen  = mlkem.CiphertextSize768
	hybridClientShareLn = mlkemEncapKeyLen + x25519ShareLen
	hybridServerShareLn = mlkemCiphertextLen + x25519ShareLen
)

var errBadKeyShare = errors.New("tls13: invalid key share")

// supportedGroups lists every group this package implements; their index
// is groupIndex's.
var supportedGroups = [...]tls.CurveID{
	X25519MLKEM768, X25519, CurveP256, CurveP384, CurveP521, X448, FFDHE2048, FFDHE3072,
}

const maxGroups = len(supportedGroups)

// groupIndex returns g's index in supportedGroups, or -1.
func groupIndex(g tls.CurveID) int {
	for i, s := range supportedGroups {
		if s == g {
			return i
		}
	}
	return -1
}

func isSupportedGroup(g tls.CurveID) bool { return groupIndex(g) >= 0 }

// ecdhCurve returns the crypto/ecdh curve of an elliptic-curve group.
// Its NewPublicKey rejects every invalid share: wrong length (truncated,
// padded, another curve's point), the point at infinity, compressed or
// off-curve points, and (X25519) nothing else: the all-zero result is
// caught by ECDH.
func ecdhCurve(g tls.CurveID) ecdh.Curve {
	switch g {
	case X25519:
		return ecdh.X25519()
	case CurveP256:
		return ecdh.P256()
	case CurveP384:
		return ecdh.P384()
	case CurveP521:
		return ecdh.P521()
	}
	return nil
}

// clientKeyShare is the client's private half of one offered key share.
type clientKeyShare struct {
	group tls.CurveID
	ecdh  *ecdh.PrivateKey
	kem   *mlkem.DecapsulationKey768
	x448  x448.Key
	dh    *big.Int // FFDHE private exponent
}

// newClientKeyShare generates a key pair for group and returns the share
// to send.
func newClientKeyShare(group tls.CurveID) (*clientKeyShare, []byte, error) {
	ks := &clientKeyShare{group: group}
	var err error
	switch group {
	case X25519, CurveP256, CurveP384, CurveP521:
		if ks.ecdh, err = ecdhCurve(group).GenerateKey(rand.Reader); err != nil {
			return nil, nil, err
		}
		return ks, ks.ecdh.PublicKey().Bytes(), nil
	case X448:
		pub, err := newX448Key(&ks.x448)
		if err != nil {
			return nil, nil, err
		}
		return ks, pub, nil
	case FFDHE2048, FFDHE3072:
		g := ffdheGroupOf(group)
		var pub []byte
		if ks.dh, pub, err = g.generate(); err != nil {
			return nil, nil, err
		}
		return ks, pub, nil
	case X25519MLKEM768:
		if ks.kem, err = mlkem.GenerateKey768(); err != nil {
			return nil, nil, err
		}
		if ks.ecdh, err = ecdh.X25519().GenerateKey(rand.Reader); err != nil {
			return nil, nil, err
		}
		share := make([]byte, 0, hybridClientShareLn)
		share = append(share, ks.kem.EncapsulationKey().Bytes()...)
		share = append(share, ks.ecdh.PublicKey().Bytes()...)
		return ks, share, nil
	}
	return nil, nil, errors.New("tls13: unsupported group")
}

// sharedSecret completes the exchange with the server's share.
func (ks *clientKeyShare) sharedSecret(serverShare []byte) ([]byte, error) {
	switch ks.group {
	case X25519, CurveP256, CurveP384, CurveP521:
		pub, err := ks.ecdh.Curve().NewPublicKey(serverShare)
		if err != nil {
			return nil, errBadKeyShare
		}
		s, err := ks.ecdh.ECDH(pub)
		if err != nil {
			return nil, errBadKeyShare
		}
		return s, nil
	case X448:
		return x448Shared(&ks.x448, serverShare)
	case FFDHE2048, FFDHE3072:
		return ffdheGroupOf(ks.group).shared(ks.dh, serverShare)
	case X25519MLKEM768:
		if len(serverShare) != hybridServerShareLn {
			return nil, errBadKeyShare
		}
		kemShared, err := ks.kem.Decapsulate(serverShare[:mlkemCiphertextLen])
		if err != nil {
			return nil, errBadKeyShare
		}
		pub, err := ecdh.X25519().NewPublicKey(serverShare[mlkemCiphertextLen:])
		if err != nil {
			return nil, errBadKeyShare
		}
		xShared, err := ks.ecdh.ECDH(pub)
		if err != nil {
			return nil, errBadKeyShare
		}
		return append(kemShared, xShared...), nil
	}
	return nil, errBadKeyShare
}

// serverKeyExchange answers a client share: it returns the server's share
// and the shared secret, or errBadKeyShare for a malformed or invalid share.
func serverKeyExchange(group tls.CurveID, clientShare []byte) (serverShare, shared []byte, err error) {
	switch group {
	case X25519, CurveP256, CurveP384, CurveP521:
		curve := ecdhCurve(group)
		pub, err := curve.NewPublicKey(clientShare)
		if err != nil {
			return nil, nil, errBadKeyShare
		}
		priv, err := curve.GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		s, err := priv.ECDH(pub)
		if err != nil {
			return nil, nil, errBadKeyShare // e.g. an all-zero X25519 result
		}
		return priv.PublicKey().Bytes(), s, nil
	case X448:
		if len(clientShare) != x448.Size {
			return nil, nil, errBadKeyShare // before spending a key generation
		}
		var priv x448.Key
		pub, err := newX448Key(&priv)
		if err != nil {
			return nil, nil, err
		}
		s, err := x448Shared(&priv, clientShare)
		if err != nil {
			return nil, nil, err
		}
		return pub, s, nil
	case FFDHE2048, FFDHE3072:
		g := ffdheGroupOf(group)
		if !g.validShare(clientShare) {
			return nil, nil, errBadKeyShare
		}
		x, pub, err := g.generate()
		if err != nil {
			return nil, nil, err
		}
		s, err := g.shared(x, clientShare)
		if err != nil {
			return nil, nil, err
		}
		return pub, s, nil
	case X25519MLKEM768:
		if len(clientShare) != hybridClientShareLn {
			return nil, nil, errBadKeyShare
		}
		ek, err := mlkem.NewEncapsulationKey768(clientShare[:mlkemEncapKeyLen])
		if err != nil {
			return nil, nil, errBadKeyShare
		}
		pub, err := ecdh.X25519().NewPublicKey(clientShare[mlkemEncapKeyLen:])
		if err != nil {
			return nil, nil, errBadKeyShare
		}
		priv, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		xShared, err := priv.ECDH(pub)
		if err != nil {
			return nil, nil, errBadKeyShare
		}
		kemShared, ct := ek.Encapsulate()
		serverShare = make([]byte, 0, hybridServerShareLn)
		serverShare = append(serverShare, ct...)
		serverShare = append(serverShare, priv.PublicKey().Bytes()...)
		return serverShare, append(kemShared, xShared...), nil
	}
	return nil, nil, errBadKeyShare
}

// ---- X448 (RFC 7748), from github.com/cloudflare/circl ----

// newX448Key fills priv with a fresh secret and returns its public key.
func newX448Key(priv *x448.Key) ([]byte, error) {
	if _, err := io.ReadFull(rand.Reader, priv[:]); err != nil {
		return nil, err
	}
	var pub x448.Key
	x448.KeyGen(&pub, priv)
	return pub[:], nil
}

// x448Shared checks the peer's share (exactly 56 bytes) and returns the
// shared secret; a low-order share, whose result is all zeros, is invalid
// (RFC 7748 §6.2, RFC 8446 §7.4.2).
func x448Shared(priv *x448.Key, peer []byte) ([]byte, error) {
	if len(peer) != x448.Size {
		return nil, errBadKeyShare
	}
	var pub, shared x448.Key
	copy(pub[:], peer)
	if !x448.Shared(&shared, priv, &pub) {
		return nil, errBadKeyShare
	}
	return shared[:], nil
}

// ---- FFDHE (RFC 7919) ----
//
// Constant-time concern: math/big is not constant time. The private
// exponent's length and bits can leak through the timing of Exp, and so
// can the shared secret through its encoding. The exponents are
// ephemeral (one per handshake) and never reused, which limits what a
// timing attacker could learn to one connection's secret; still, prefer
// the elliptic-curve groups, which is why FFDHE comes last in the default
// preferences. A server that must not take that risk leaves FFDHE out of
// Config.CurvePreferences.

// ffdheGroup is one of RFC 7919's safe-prime groups with generator 2.
type ffdheGroup struct {
	p, pMinus1 *big.Int
	size       int // bytes of p: the length of every share and secret
	expBits    int // private exponent length
}

// The primes of RFC 7919 Appendix A.1 and A.2: p = 2^b - 2^(b-64) +
// {[2^(b-130) e] + X} * 2^64 - 1, each a safe prime. TestFFDHEPrimes
// checks their structure and compares them with OpenSSL's.
const (
	ffdhe2048Hex = "FFFFFFFFFFFFFFFFADF85458A2BB4A9AAFDC5620273D3CF1D8B9C583CE2D3695" +
		"A9E13641146433FBCC939DCE249B3EF97D2FE363630C75D8F681B202AEC4617A" +
		"D3DF1ED5D5FD65612433F51F5F066ED0856365553DED1AF3B557135E7F57C935" +
		"984F0C70E0E68B77E2A689DAF3EFE8721DF158A136ADE73530ACCA4F483A797A" +
		"BC0AB182B324FB61D108A94BB2C8E3FBB96ADAB760D7F4681D4F42A3DE394DF4" +
		"AE56EDE76372BB190B07A7C8EE0A6D709E02FCE1CDF7E2ECC03404CD28342F61" +
		"9172FE9CE98583FF8E4F1232EEF28183C3FE3B1B4C6FAD733BB5FCBC2EC22005" +
		"C58EF1837D1683B2C6F34A26C1B2EFFA886B423861285C97FFFFFFFFFFFFFFFF"
	ffdhe3072Hex = "FFFFFFFFFFFFFFFFADF85458A2BB4A9AAFDC5620273D3CF1D8B9C583CE2D3695" +
		"A9E13641146433FBCC939DCE249B3EF97D2FE363630C75D8F681B202AEC4617A" +
		"D3DF1ED5D5FD65612433F51F5F066ED0856365553DED1AF3B557135E7F57C935" +
		"984F0C70E0E68B77E2A689DAF3EFE8721DF158A136ADE73530ACCA4F483A797A" +
		"BC0AB182B324FB61D108A94BB2C8E3FBB96ADAB760D7F4681D4F42A3DE394DF4" +
		"AE56EDE76372BB190B07A7C8EE0A6D709E02FCE1CDF7E2ECC03404CD28342F61" +
		"9172FE9CE98583FF8E4F1232EEF28183C3FE3B1B4C6FAD733BB5FCBC2EC22005" +
		"C58EF1837D1683B2C6F34A26C1B2EFFA886B4238611FCFDCDE355B3B6519035B" +
		"BC34F4DEF99C023861B46FC9D6E6C9077AD91D2691F7F7EE598CB0FAC186D91C" +
		"AEFE130985139270B4130C93BC437944F4FD4452E2D74DD364F2E21E71F54BFF" +
		"5CAE82AB9C9DF69EE86D2BC522363A0DABC521979B0DEADA1DBF9A42D5C4484E" +
		"0ABCD06BFA53DDEF3C1B20EE3FD59D7C25E41D2B66C62E37FFFFFFFFFFFFFFFF"
)

var (
	ffdhe2048 = newFFDHEGroup(ffdhe2048Hex, 256) // ~103-bit strength
	ffdhe3072 = newFFDHEGroup(ffdhe3072Hex, 320) // ~125-bit strength
)

// newFFDHEGroup parses a prime; expBits is at least twice the group's
// estimated strength, as RFC 7919 §5.2 asks of short exponents.
func newFFDHEGroup(pHex string, expBits int) *ffdheGroup {
	p, ok := new(big.Int).SetString(pHex, 16)
	if !ok {
		panic("tls13: bad FFDHE prime constant")
	}
	return &ffdheGroup{p: p, pMinus1: new(big.Int).Sub(p, big.NewInt(1)), size: (p.BitLen() + 7) / 8, expBits: expBits}
}

func ffdheGroupOf(g tls.CurveID) *ffdheGroup {
	if g == FFDHE3072 {
		return ffdhe3072
	}
	return ffdhe2048
}

// generate returns a private exponent x and the share 2^x mod p, padded
// on the left to the size of p (RFC 8446 §4.2.8.1).
func (g *ffdheGroup) generate() (*big.Int, []byte, error) {
	b := make([]byte, g.expBits/8)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		return nil, nil, err
	}
	b[0] |= 0x80 // full length: the exponent is never short
	x := new(big.Int).SetBytes(b)
	y := new(big.Int).Exp(big.NewInt(2), x, g.p)
	return x, y.FillBytes(make([]byte, g.size)), nil
}

// validShare applies RFC 8446 §4.2.8.1 (exactly the size of p) and
// RFC 7919 §5.1 (1 < Y < p-1, which keeps the peer from forcing the
// secret into the subgroups of order 1 and 2). A share in the order-2q
// subgroup can reveal the low bit of an exponent; ours are ephemeral, so
// the far costlier Y^q = 1 check is not made.
func (g *ffdheGroup) validShare(share []byte) bool {
	if len(share) != g.size {
		return false
	}
	y := new(big.Int).SetBytes(share)
	return y.Cmp(big.NewInt(1)) > 0 && y.Cmp(g.pMinus1) < 0
}

// shared returns Z = Y^x mod p, left-padded to the size of p (§7.4.1).
func (g *ffdheGroup) shared(x *big.Int, peer []byte) ([]byte, error) {
	if !g.validShare(peer) {
		return nil, errBadKeyShare
	}
	z := new(big.Int).Exp(new(big.Int).SetBytes(peer), x, g.p)
	out := z.FillBytes(make([]byte, g.size))
	// Z in {1, p-1} only for a share of order 1 or 2, which validShare
	// refused; checked again because a wrong secret must never be used.
	if z.Cmp(big.NewInt(1)) <= 0 || subtle.ConstantTimeCompare(out, g.pMinus1.FillBytes(make([]byte, g.size))) == 1 {
		return nil, errBadKeyShare
	}
	return out, nil
}
