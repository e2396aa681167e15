package migration_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/anysched/anysched/migration"
	"github.com/anysched/anysched/tls13"
)

// exampleCert makes a throw-away CA and a certificate for "www.example"
// (a real deployment loads its own).
func exampleCert() (tls.Certificate, *x509.CertPool) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "www.example"},
		DNSNames: []string{"www.example"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		log.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// startExampleNode runs one node: a Server on an "anycast" and a
// "unicast" loopback listener, answering HTTP/1.1.
func startExampleNode(profile migration.Profile) (srv *migration.Server, vip string, pool *x509.CertPool, stop func()) {
	cert, pool := exampleCert()
	keys, err := tls13.NewRandomTicketKeys() // a pool of nodes shares these
	if err != nil {
		log.Fatal(err)
	}
	vipL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	uniL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv, err = migration.NewServer(migration.ServerConfig{
		TLS:     &tls13.Config{Certificates: []tls.Certificate{cert}, TicketKeys: keys},
		Profile: profile,
		Unicast: uniL.Addr().(*net.TCPAddr).AddrPort(),
	})
	if err != nil {
		log.Fatal(err)
	}
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Anysched-Node", "node-1")
			io.WriteString(w, "hello from node-1\n")
		}),
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go hs.Serve(srv.Listen(vipL, migration.KindAnycast))
	go hs.Serve(srv.Listen(uniL, migration.KindUnicast))
	return srv, vipL.Addr().String(), pool, func() { hs.Close() }
}

// A Dialer with the default rendezvous policy hands the application the
// connection at the node's unicast address, resumed with the token.
func ExampleDialer() {
	_, vip, pool, stop := startExampleNode(migration.ProfileSeed)
	defer stop()

	d := &migration.Dialer{TLS: &tls13.Config{RootCAs: pool, ServerName: "www.example"}}
	conn, err := d.DialContext(context.Background(), "tcp", vip)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	info := conn.Info()
	fmt.Println("migrated:", info.Migrated, "resumed:", info.Resumed, "moves:", info.Moves)

	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: www.example\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(resp.Status, " ", string(body))
	// Output:
	// migrated: true resumed: true moves: 1
	// 200 OK hello from node-1
}

// A net/http client migrates with no other change than its Transport.
func ExampleTransport() {
	_, vip, pool, stop := startExampleNode(migration.ProfileSeed)
	defer stop()

	tr := &migration.Transport{Dialer: &migration.Dialer{
		TLS: &tls13.Config{RootCAs: pool, ServerName: "www.example"},
	}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	for i := 0; i < 2; i++ {
		resp, err := client.Get("https://" + vip + "/")
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		info, _ := migration.ResponseConnInfo(resp)
		fmt.Printf("%s from %s: migrated=%v resumed=%v\n", body[:len(body)-1], resp.Header.Get("Anysched-Node"), info.Migrated, info.Resumed)
	}
	// Output:
	// hello from node-1 from node-1: migrated=true resumed=true
	// hello from node-1 from node-1: migrated=true resumed=true
}

// A node issues tokens on its anycast listener and accepts them on its
// unicast one; Stats feeds its metrics, MigrateAll/Drain move clients.
func ExampleServer() {
	srv, vip, pool, stop := startExampleNode(migration.ProfileSeed)
	defer stop()

	d := &migration.Dialer{TLS: &tls13.Config{RootCAs: pool, ServerName: "www.example"}}
	conn, err := d.DialContext(context.Background(), "tcp", vip)
	if err != nil {
		log.Fatal(err)
	}
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: www.example\r\n\r\n")
	if _, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil {
		log.Fatal(err)
	}
	// Shutting down: move every capable client (here back through the
	// anycast address, or to a sibling given as target) and wait.
	conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println("still open after drain:", srv.Drain(ctx, netip.AddrPort{}))

	// Once the drain is over every connection's handshake has been
	// counted (the client can hold its token before the VIP side has
	// finished counting its own handshake).
	st := srv.Stats()
	fmt.Println("full:", st.HandshakesFull, "resumed:", st.HandshakesResumed, "accepted:", st.TokensAccepted,
		"rejected forged:", st.TokensRejected[migration.ReasonForged])
	// Output:
	// still open after drain: 0
	// full: 1 resumed: 1 accepted: 1 rejected forged: 0
}
