// Command tlsserver is the TLS server the capture script runs in its server
// namespace: an HTTPS server (HTTP/1.1 and HTTP/2, TLS 1.2 and 1.3) with a
// throwaway self-signed ECDSA certificate made at start-up, so that every
// client the script captures completes a real handshake. It exists only to
// make parser/testdata reproducible; nothing in anysched imports it.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/pflag"
)

func main() {
	fs := pflag.NewFlagSet("tlsserver", pflag.ContinueOnError)
	listen := fs.StringArray("listen", nil, "address to listen on, host:port (repeatable; required)")
	name := fs.String("name", "vip.anysched.test", "DNS name in the self-signed certificate")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: tlsserver --listen ADDR [--listen ADDR]... [--name DNS]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == pflag.ErrHelp {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if len(*listen) == 0 {
		fmt.Fprintln(os.Stderr, "tlsserver: --listen is required")
		os.Exit(2)
	}
	cert, err := selfSigned(*name)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tlsserver:", err)
		os.Exit(1)
	}
	srv := &http.Server{
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<html><body>anysched capture server</body></html>\n")
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	errc := make(chan error, len(*listen))
	for _, addr := range *listen {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "tlsserver:", err)
			os.Exit(1)
		}
		go func() { errc <- srv.ServeTLS(l, "", "") }()
	}
	fmt.Fprintln(os.Stderr, "tlsserver:", <-errc)
	os.Exit(1)
}

func selfSigned(name string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
