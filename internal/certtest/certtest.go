// Package certtest mints X.509 certificates for tests: an in-memory CA of
// any key type and the server leaves it issues (DNS names, IP addresses,
// validity, with or without the CA in the chain), returned as a
// tls.Certificate, a CertPool and PEM bytes or files for OpenSSL and the
// command-line tools. It owns test fixtures only; nothing in the router
// imports it. The package examples stay self-contained on purpose.
package certtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// KeyType names the key algorithm of a CA or a leaf.
type KeyType string

const (
	ECDSAP256 KeyType = "ecdsa-p256"
	ECDSAP384 KeyType = "ecdsa-p384"
	Ed25519   KeyType = "ed25519"
	RSA2048   KeyType = "rsa-2048"
)

// defaultValidity is how long a certificate stays valid when the options
// leave it zero; every certificate also starts an hour in the past so a
// skewed clock cannot make it not yet valid.
const defaultValidity = 24 * time.Hour

// NewKey generates a private key of type k; the zero KeyType is ECDSA P-256.
func NewKey(k KeyType) (crypto.Signer, error) {
	switch k {
	case ECDSAP256, "":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case Ed25519:
		_, key, err := ed25519.GenerateKey(rand.Reader)
		return key, err
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return nil, fmt.Errorf("certtest: unknown key type %q", k)
}

// CAOptions describe a CA. Zero fields take defaults: name "certtest CA",
// an ECDSA P-256 key, Go's default signature algorithm for the key, and
// a 24-hour validity.
type CAOptions struct {
	Name string
	Key  KeyType
	// SignatureAlgorithm is used for the CA's own certificate and for
	// every leaf it issues (x509.SHA256WithRSAPSS makes an RSA chain PSS).
	SignatureAlgorithm x509.SignatureAlgorithm
	Validity           time.Duration
}

// CA is a self-signed certificate authority held in memory.
type CA struct {
	Cert *x509.Certificate
	DER  []byte
	PEM  []byte

	key    crypto.Signer
	sigAlg x509.SignatureAlgorithm
	serial atomic.Int64
}

// NewCA makes a self-signed CA.
func NewCA(opts CAOptions) (*CA, error) {
	if opts.Name == "" {
		opts.Name = "certtest CA"
	}
	key, err := NewKey(opts.Key)
	if err != nil {
		return nil, err
	}
	notBefore, notAfter := validity(opts.Validity)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: opts.Name},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SignatureAlgorithm:    opts.SignatureAlgorithm,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("certtest: self-sign %s: %w", opts.Name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ca := &CA{Cert: cert, DER: der, PEM: encodeCertificates(der), key: key, sigAlg: opts.SignatureAlgorithm}
	ca.serial.Store(1)
	return ca, nil
}

// MustCA is NewCA that fails t on error.
func MustCA(t testing.TB, opts CAOptions) *CA {
	t.Helper()
	ca, err := NewCA(opts)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// Pool returns a fresh CertPool that trusts only this CA.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return pool
}

// WriteFile writes the CA certificate as ca.pem in a fresh temporary
// directory and returns its path.
func (ca *CA) WriteFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// LeafOptions describe a server certificate. CommonName defaults to the
// first DNS name; the key to ECDSA P-256; validity to 24 hours.
type LeafOptions struct {
	Key        KeyType
	CommonName string
	DNSNames   []string
	IPs        []net.IP
	Validity   time.Duration
	// WithCA appends the CA certificate to the chain the leaf presents.
	WithCA bool
}

// Leaf is an issued server certificate.
type Leaf struct {
	// TLS is the chain and key, with Leaf already parsed.
	TLS tls.Certificate
	// CertPEM is the chain as TLS presents it; KeyPEM is PKCS#8.
	CertPEM []byte
	KeyPEM  []byte
}

// Issue signs a server-authentication leaf over a fresh key.
func (ca *CA) Issue(opts LeafOptions) (*Leaf, error) {
	key, err := NewKey(opts.Key)
	if err != nil {
		return nil, err
	}
	name := opts.CommonName
	if name == "" && len(opts.DNSNames) > 0 {
		name = opts.DNSNames[0]
	}
	notBefore, notAfter := validity(opts.Validity)
	tmpl := &x509.Certificate{
		SerialNumber:       big.NewInt(ca.serial.Add(1)),
		Subject:            pkix.Name{CommonName: name},
		DNSNames:           opts.DNSNames,
		IPAddresses:        opts.IPs,
		NotBefore:          notBefore,
		NotAfter:           notAfter,
		KeyUsage:           x509.KeyUsageDigitalSignature,
		ExtKeyUsage:        []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		SignatureAlgorithm: ca.sigAlg,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("certtest: issue %q: %w", name, err)
	}
	parsed, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	chain := [][]byte{der}
	if opts.WithCA {
		chain = append(chain, ca.DER)
	}
	return &Leaf{
		TLS:     tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: parsed},
		CertPEM: encodeCertificates(chain...),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// MustIssue is Issue that fails t on error.
func (ca *CA) MustIssue(t testing.TB, opts LeafOptions) *Leaf {
	t.Helper()
	leaf, err := ca.Issue(opts)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// WriteFiles writes cert.pem (the chain) and key.pem in a fresh temporary
// directory and returns their paths.
func (l *Leaf) WriteFiles(t testing.TB) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	certFile = filepath.Join(dir, "cert.pem")
	keyFile = filepath.Join(dir, "key.pem")
	for path, data := range map[string][]byte{certFile: l.CertPEM, keyFile: l.KeyPEM} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}

func validity(d time.Duration) (notBefore, notAfter time.Time) {
	if d <= 0 {
		d = defaultValidity
	}
	now := time.Now()
	return now.Add(-time.Hour), now.Add(d)
}

func encodeCertificates(ders ...[]byte) []byte {
	var out []byte
	for _, der := range ders {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	return out
}
