package tls13

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
	"math/big"
	"net"
	"sync"
	"testing"
	"time"
)

// testPKI is a CA and leaf certificates for "example.test" of each key type.
type testPKI struct {
	caCert *x509.Certificate
	caKey  crypto.Signer
	pool   *x509.CertPool
	ecdsa  tls.Certificate
	ed     tls.Certificate
	rsa    tls.Certificate
}

var (
	pkiOnce sync.Once
	pki     *testPKI
)

func getPKI(t testing.TB) *testPKI {
	t.Helper()
	pkiOnce.Do(func() {
		caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		caTmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "tls13 test CA"},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(24 * time.Hour),
			IsCA:                  true,
			BasicConstraintsValid: true,
			KeyUsage:              x509.KeyUsageCertSign,
		}
		caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
		if err != nil {
			panic(err)
		}
		ca, _ := x509.ParseCertificate(caDER)
		p := &testPKI{pool: x509.NewCertPool(), caCert: ca, caKey: caKey}
		p.pool.AddCert(ca)
		leaf := func(key crypto.Signer, serial int64) tls.Certificate {
			tmpl := &x509.Certificate{
				SerialNumber: big.NewInt(serial),
				Subject:      pkix.Name{CommonName: "example.test"},
				DNSNames:     []string{"example.test"},
				IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
				NotBefore:    time.Now().Add(-time.Hour),
				NotAfter:     time.Now().Add(24 * time.Hour),
				KeyUsage:     x509.KeyUsageDigitalSignature,
				ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
			if err != nil {
				panic(err)
			}
			return tls.Certificate{Certificate: [][]byte{der, caDER}, PrivateKey: key}
		}
		ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		_, edk, _ := ed25519.GenerateKey(rand.Reader)
		rk, _ := rsa.GenerateKey(rand.Reader, 2048)
		p.ecdsa = leaf(ek, 2)
		p.ed = leaf(edk, 3)
		p.rsa = leaf(rk, 4)
		pki = p
	})
	return pki
}

func testServerConfig(t testing.TB) *Config {
	p := getPKI(t)
	keys, err := NewRandomTicketKeys()
	if err != nil {
		t.Fatal(err)
	}
	return &Config{Certificates: []tls.Certificate{p.ecdsa}, TicketKeys: keys}
}

func testClientConfig(t testing.TB) *Config {
	return &Config{RootCAs: getPKI(t).pool, ServerName: "example.test"}
}

// pipePair runs both handshakes over net.Pipe and returns the results.
func handshakePair(t testing.TB, client, server interface{ Handshake() error }) (cerr, serr error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- server.Handshake() }()
	cerr = client.Handshake()
	serr = <-done
	return
}

// leafFor issues an ECDSA leaf for name from the test CA.
func (p *testPKI) leafFor(t testing.TB, name string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, key.Public(), p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
