package certtest

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
)

// TestChainsVerify checks that every key type yields a leaf that verifies
// against its CA for its name and IP, and whose PEM files load back.
func TestChainsVerify(t *testing.T) {
	for _, k := range []KeyType{ECDSAP256, ECDSAP384, Ed25519, RSA2048} {
		t.Run(string(k), func(t *testing.T) {
			ca := MustCA(t, CAOptions{Key: k, SignatureAlgorithm: sigAlgFor(k)})
			leaf := ca.MustIssue(t, LeafOptions{Key: k, DNSNames: []string{"node.test"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, WithCA: true})
			for _, host := range []string{"node.test", "127.0.0.1"} {
				if _, err := leaf.TLS.Leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: ca.Pool()}); err != nil {
					t.Errorf("verify for %s: %v", host, err)
				}
			}
			if len(leaf.TLS.Certificate) != 2 {
				t.Errorf("chain has %d certificates, want leaf and CA", len(leaf.TLS.Certificate))
			}
			certFile, keyFile := leaf.WriteFiles(t)
			if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
				t.Errorf("PEM files do not load: %v", err)
			}
		})
	}
}

func sigAlgFor(k KeyType) x509.SignatureAlgorithm {
	if k == RSA2048 {
		return x509.SHA256WithRSAPSS
	}
	return 0
}

func TestUnknownKeyType(t *testing.T) {
	if _, err := NewCA(CAOptions{Key: "dsa"}); err == nil {
		t.Fatal("NewCA accepted an unknown key type")
	}
}
