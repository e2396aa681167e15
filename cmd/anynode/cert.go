package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"time"
)

// selfSignedCert makes the certificate a node serves when no --cert is
// given: ECDSA P-256, valid for a year, with the node's name, the extra
// server names and every IP it serves on as SANs, so a client can verify
// it with --ca on the file written by --write-cert.
func selfSignedCert(name string, serverNames []string, ips []netip.Addr, now time.Time) (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"anynode self-signed"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // so the same file serves as the client's --ca
	}
	seen := map[string]bool{}
	for _, n := range append([]string{name}, serverNames...) {
		if n != "" && !seen[n] {
			seen[n] = true
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	seenIP := map[netip.Addr]bool{}
	for _, ip := range ips {
		ip = ip.Unmap()
		if ip.IsValid() && !ip.IsUnspecified() && !seenIP[ip] {
			seenIP[ip] = true
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(ip.AsSlice()))
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pemBytes, nil
}

// loadCert reads a PEM certificate chain and key (--cert, --key); the
// error names the file at fault.
func loadCert(certFile, keyFile string) (tls.Certificate, error) {
	if _, err := os.Stat(certFile); err != nil {
		return tls.Certificate{}, fmt.Errorf("--cert %s: %v", certFile, err)
	}
	if _, err := os.Stat(keyFile); err != nil {
		return tls.Certificate{}, fmt.Errorf("--key %s: %v", keyFile, err)
	}
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("--cert %s / --key %s: %v", certFile, keyFile, err)
	}
	return c, nil
}
