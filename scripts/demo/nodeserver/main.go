// Command nodeserver is the service node of the veth demo
// (scripts/demo_testbed.sh): a TLS server, run in a node namespace, that
// listens on the anycast VIP (held on lo: direct server return) and answers
// every line a client sends with the node's name, so the client can see
// which node the router chose. It logs each connection and says
// "listening" once every listener is bound, which is what the demo script
// waits for. The certificate is a throwaway self-signed ECDSA one made at
// start-up; clients of the demo do not verify it.
package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log"
	"math/big"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := pflag.NewFlagSet("nodeserver", pflag.ContinueOnError)
	name := fs.String("name", "", "node name sent back on every line (required)")
	listen := fs.StringArray("listen", nil, "TLS address to listen on, host:port, usually the VIP (repeatable; required)")
	dnsName := fs.String("cert-name", "vip.anysched.test", "DNS name in the self-signed certificate")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: nodeserver --name NODE --listen VIP:PORT [--listen ADDR]...")
		fmt.Fprintln(os.Stderr)
		fmt.Fprintln(os.Stderr, "Answers every line on every TLS connection with NODE. Exit codes: 0 on SIGINT/SIGTERM,")
		fmt.Fprintln(os.Stderr, "1 when a listener fails, 2 on bad flags.")
		fmt.Fprintln(os.Stderr)
		fmt.Fprintln(os.Stderr, "flags:")
		fmt.Fprint(os.Stderr, fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		if err == pflag.ErrHelp {
			return 0
		}
		fmt.Fprintf(os.Stderr, "nodeserver: %v\n", err)
		return 2
	}
	if *name == "" {
		fmt.Fprintln(os.Stderr, "nodeserver: --name is required")
		return 2
	}
	if len(*listen) == 0 {
		fmt.Fprintln(os.Stderr, "nodeserver: --listen is required")
		return 2
	}
	for _, addr := range *listen {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			fmt.Fprintf(os.Stderr, "nodeserver: --listen %q: want HOST:PORT\n", addr)
			return 2
		}
	}
	logger := log.New(os.Stdout, *name+": ", log.Ltime|log.Lmicroseconds)
	cert, err := selfSigned(*dnsName)
	if err != nil {
		logger.Print(err)
		return 1
	}
	tlsConfig := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	errc := make(chan error, len(*listen))
	for _, addr := range *listen {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "nodeserver: --listen %s: %v\n", addr, err)
			return 1
		}
		defer l.Close()
		go func() { errc <- serve(tls.NewListener(l, tlsConfig), *name, logger) }()
	}
	logger.Printf("listening on %v", *listen)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	select {
	case <-stop:
		return 0
	case err := <-errc:
		logger.Print(err)
		return 1
	}
}

func serve(l net.Listener, name string, logger *log.Logger) error {
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go answer(c, name, logger)
	}
}

// answer replies to each line with the node name until the client closes.
func answer(c net.Conn, name string, logger *log.Logger) {
	defer c.Close()
	peer := c.RemoteAddr().String()
	lines := bufio.NewScanner(c)
	requests := 0
	for lines.Scan() {
		requests++
		if _, err := fmt.Fprintf(c, "%s\n", name); err != nil {
			break
		}
	}
	if err := lines.Err(); err != nil && requests == 0 {
		logger.Printf("%s: %v", peer, err)
		return
	}
	logger.Printf("%s: served %d requests", peer, requests)
}

func selfSigned(dnsName string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, err
	}
	tpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: dnsName}, DNSNames: []string{dnsName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
