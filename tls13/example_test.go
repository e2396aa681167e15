package tls13_test

import (
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
	"time"

	"github.com/anysched/anysched/tls13"
)

// exampleCert makes, in memory, a CA and a leaf certificate for node.test.
func exampleCert() (tls.Certificate, *x509.CertPool) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "example CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		log.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "node.test"},
		DNSNames:  []string{"node.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		log.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key}, pool
}

// An HTTPS server and client that both run on tls13: the server is a plain
// http.Server on a tls13 listener, the client a plain http.Transport whose
// DialTLSContext dials with tls13.
func Example_httpsServerAndClient() {
	cert, roots := exampleCert()

	// Server: net/http on top of tls13.NewListener.
	ticketKeys, err := tls13.NewRandomTicketKeys()
	if err != nil {
		log.Fatal(err)
	}
	serverConfig := &tls13.Config{
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"http/1.1"},
		TicketKeys:   ticketKeys,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from tls13, %s %s", r.Method, r.URL.Path)
	})}
	go srv.Serve(tls13.NewListener(ln, serverConfig))
	defer srv.Close()

	// Client: net/http with tls13 dialing every connection.
	clientConfig := &tls13.Config{
		RootCAs:    roots,
		ServerName: "node.test",
		NextProtos: []string{"http/1.1"},
	}
	transport := &http.Transport{
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := tls13.Dial(ctx, network, addr, clientConfig)
			if err != nil {
				return nil, err
			}
			st := c.ConnectionState()
			fmt.Printf("client: TLS %#04x, ALPN %s, resumed %v\n", st.Version, st.NegotiatedProtocol, st.DidResume)
			return c, nil
		},
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}

	resp, err := client.Get("https://" + ln.Addr().String() + "/greeting")
	if err != nil {
		log.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.Status, string(body))
	// Output:
	// client: TLS 0x0304, ALPN http/1.1, resumed false
	// 200 OK hello from tls13, GET /greeting
}

// A non-fatal notification alert (here the migration draft's
// migrate_notify, 240): both ends register it, the server sends it, the
// client's callback sees it and the connection stays usable. An
// unregistered alert would be fatal, as RFC 8446 §6 requires.
func ExampleConn_SendNotification() {
	cert, roots := exampleCert()
	const migrateNotify = 240
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	serverConfig := &tls13.Config{
		Certificates:       []tls.Certificate{cert},
		NotificationAlerts: []uint8{migrateNotify},
	}
	go func() {
		c, err := tls13.NewListener(ln, serverConfig).Accept()
		if err != nil {
			return
		}
		defer c.Close()
		conn := c.(*tls13.Conn)
		if err := conn.SendNotification(migrateNotify); err != nil {
			log.Print(err)
			return
		}
		io.WriteString(conn, "still here\n")
	}()

	notified := make(chan uint8, 1)
	clientConfig := &tls13.Config{
		RootCAs:            roots,
		ServerName:         "node.test",
		NotificationAlerts: []uint8{migrateNotify},
		OnNotification:     func(_ *tls13.Conn, desc uint8) { notified <- desc },
	}
	conn, err := tls13.Dial(context.Background(), "tcp", ln.Addr().String(), clientConfig)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	line := make([]byte, 11)
	if _, err := io.ReadFull(conn, line); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("notification %d, then %q\n", <-notified, line)
	// Output:
	// notification 240, then "still here\n"
}
