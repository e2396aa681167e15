package tls13

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/tls"
	"errors"
	"io"
)

const (
	serverSignatureContext = "TLS 1.3, server CertificateVerify\x00"
	clientSignatureContext = "TLS 1.3, client CertificateVerify\x00"
)

// signedContent is 64 spaces ‖ context ‖ transcript hash (§4.4.3).
func signedContent(context string, transcriptHash []byte) []byte {
	out := make([]byte, 0, 64+len(context)+len(transcriptHash))
	for i := 0; i < 64; i++ {
		out = append(out, 0x20)
	}
	out = append(out, context...)
	return append(out, transcriptHash...)
}

func schemeHash(scheme uint16) crypto.Hash {
	switch scheme {
	case sigECDSAP256SHA256, sigRSAPSSSHA256:
		return crypto.SHA256
	case sigECDSAP384SHA384, sigRSAPSSSHA384:
		return crypto.SHA384
	case sigECDSAP521SHA512, sigRSAPSSSHA512:
		return crypto.SHA512
	}
	return 0 // Ed25519 signs the message itself
}

// schemesForKey lists the schemes a public key can sign with, preferred
// first.
func schemesForKey(pub crypto.PublicKey) []uint16 {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return []uint16{sigECDSAP256SHA256}
		case elliptic.P384():
			return []uint16{sigECDSAP384SHA384}
		case elliptic.P521():
			return []uint16{sigECDSAP521SHA512}
		}
	case ed25519.PublicKey:
		return []uint16{sigEd25519}
	case *rsa.PublicKey:
		return []uint16{sigRSAPSSSHA256, sigRSAPSSSHA384, sigRSAPSSSHA512}
	}
	return nil
}

// pickScheme returns the first scheme of the key's list that the peer
// offered, or 0.
func pickScheme(cert *tls.Certificate, peer []uint16) uint16 {
	signer, ok := cert.PrivateKey.(crypto.Signer)
	if !ok {
		return 0
	}
	for _, s := range schemesForKey(signer.Public()) {
		for _, p := range peer {
			if s == p {
				return s
			}
		}
	}
	return 0
}

// sign produces a CertificateVerify signature.
func sign(cert *tls.Certificate, scheme uint16, rand io.Reader, content []byte) ([]byte, error) {
	signer, ok := cert.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, errors.New("tls13: certificate key is not a crypto.Signer")
	}
	h := schemeHash(scheme)
	var opts crypto.SignerOpts = h
	digest := content
	if h != 0 {
		hh := h.New()
		hh.Write(content)
		digest = hh.Sum(nil)
	}
	if scheme == sigRSAPSSSHA256 || scheme == sigRSAPSSSHA384 || scheme == sigRSAPSSSHA512 {
		opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: h}
	}
	return signer.Sign(rand, digest, opts)
}

// verifySignature checks a peer's CertificateVerify. It returns
// AlertIllegalParameter for a scheme that does not fit (PKCS#1 v1.5,
// unknown, wrong key type) and AlertDecryptError for a bad signature.
func verifySignature(pub crypto.PublicKey, scheme uint16, content, sig []byte) Alert {
	h := schemeHash(scheme)
	var digest []byte
	if h != 0 {
		hh := h.New()
		hh.Write(content)
		digest = hh.Sum(nil)
	}
	switch scheme {
	case sigECDSAP256SHA256, sigECDSAP384SHA384:
		k, ok := pub.(*ecdsa.PublicKey)
		want := elliptic.P256()
		if scheme == sigECDSAP384SHA384 {
			want = elliptic.P384()
		}
		if !ok || k.Curve != want {
			return AlertIllegalParameter
		}
		if !ecdsa.VerifyASN1(k, digest, sig) {
			return AlertDecryptError
		}
	case sigEd25519:
		k, ok := pub.(ed25519.PublicKey)
		if !ok {
			return AlertIllegalParameter
		}
		if !ed25519.Verify(k, content, sig) {
			return AlertDecryptError
		}
	case sigRSAPSSSHA256, sigRSAPSSSHA384, sigRSAPSSSHA512:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return AlertIllegalParameter
		}
		if rsa.VerifyPSS(k, h, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) != nil {
			return AlertDecryptError
		}
	default:
		return AlertIllegalParameter
	}
	return alertNone
}
