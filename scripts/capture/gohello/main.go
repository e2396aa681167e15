// Command gohello is a Go crypto/tls client with the default configuration
// (so, from Go 1.24 on, an X25519MLKEM768 key share and a ClientHello larger
// than one TCP segment). The capture script runs it to record what a stock
// Go client sends; it fetches "/" once and exits.
package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/spf13/pflag"
)

func main() {
	fs := pflag.NewFlagSet("gohello", pflag.ContinueOnError)
	addr := fs.String("addr", "", "server address, host:port (required)")
	sni := fs.String("sni", "vip.anysched.test", "server name sent in the ClientHello")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: gohello --addr HOST:PORT [--sni NAME]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == pflag.ErrHelp {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if *addr == "" {
		fmt.Fprintln(os.Stderr, "gohello: --addr is required")
		os.Exit(2)
	}
	// The capture server's certificate is a throwaway self-signed one;
	// verifying it would prove nothing here.
	cfg := &tls.Config{ServerName: *sni, InsecureSkipVerify: true}
	d := &net.Dialer{Timeout: 10 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", *addr, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gohello:", err)
		os.Exit(1)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", *sni)
	n, err := io.Copy(io.Discard, conn)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gohello:", err)
		os.Exit(1)
	}
	st := conn.ConnectionState()
	fmt.Printf("gohello: %s %s group=%s, %d response bytes\n",
		tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite), st.CurveID, n)
}
