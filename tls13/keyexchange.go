package tls13

import (
	"crypto/ecdh"
	"crypto/mlkem"
	"crypto/rand"
	"crypto/tls"
	"errors"
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

func isSupportedGroup(g tls.CurveID) bool {
	return g == X25519MLKEM768 || g == X25519 || g == CurveP256
}

// clientKeyShare is the client's private half of one offered key share.
type clientKeyShare struct {
	group tls.CurveID
	ecdh  *ecdh.PrivateKey
	kem   *mlkem.DecapsulationKey768
}

// newClientKeyShare generates a key pair for group and returns the share
// to send.
func newClientKeyShare(group tls.CurveID) (*clientKeyShare, []byte, error) {
	ks := &clientKeyShare{group: group}
	var err error
	switch group {
	case X25519:
		if ks.ecdh, err = ecdh.X25519().GenerateKey(rand.Reader); err != nil {
			return nil, nil, err
		}
		return ks, ks.ecdh.PublicKey().Bytes(), nil
	case CurveP256:
		if ks.ecdh, err = ecdh.P256().GenerateKey(rand.Reader); err != nil {
			return nil, nil, err
		}
		return ks, ks.ecdh.PublicKey().Bytes(), nil
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
	case X25519, CurveP256:
		pub, err := ks.ecdh.Curve().NewPublicKey(serverShare)
		if err != nil {
			return nil, errBadKeyShare
		}
		s, err := ks.ecdh.ECDH(pub)
		if err != nil {
			return nil, errBadKeyShare
		}
		return s, nil
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
	case X25519, CurveP256:
		curve := ecdh.X25519()
		if group == CurveP256 {
			curve = ecdh.P256()
		}
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
