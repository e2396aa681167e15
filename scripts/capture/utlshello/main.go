// Command utlshello is a TLS 1.3 client built with uTLS whose ClientHello
// carries the draft's migration_support extension (empty, default 0xFE4D)
// and, optionally, a migration_token extension (default 0xFE4F). Where the
// extension sits in the extension list, and whether a ~1.2 KB X25519MLKEM768
// key share comes before it, decides whether it lands in the first or the
// second TCP segment of the ClientHello — the case the router's reassembler
// exists for. The capture script runs it; it fetches "/" once and exits.
package main

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/anysched/anysched/codepoint"
	utls "github.com/refraction-networking/utls"
	"github.com/spf13/pflag"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := pflag.NewFlagSet("utlshello", pflag.ContinueOnError)
	addr := fs.String("addr", "", "server address, host:port (required)")
	sni := fs.String("sni", "vip.anysched.test", "server name sent in the ClientHello")
	position := fs.String("support-at", "first", "where migration_support goes in the extension list: first, last or none")
	mlkem := fs.Bool("mlkem", true, "offer X25519MLKEM768 (about 1.2 KB), X25519 and P-256 key shares, not only X25519")
	token := fs.Bool("token", false, "also send a migration_token extension carrying a well-formed (unsigned) MigrationToken")
	supportID := fs.Uint16("support-id", codepoint.MigrationSupport, "code point of migration_support")
	tokenID := fs.Uint16("token-id", codepoint.MigrationToken, "code point of migration_token")
	pad := fs.Int("pad", 0, "add a padding extension (21) of this many zero bytes before migration_support when it goes last")
	recordSize := fs.Int("record-size", 0, "if > 0, send the ClientHello by hand split into TLS records of at most this many bytes, wait for the server's first record and close (no full handshake)")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: utlshello --addr HOST:PORT [flags]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == pflag.ErrHelp {
			return 0
		}
		return 2
	}
	if *addr == "" {
		fmt.Fprintln(os.Stderr, "utlshello: --addr is required")
		return 2
	}
	if *pad < 0 || *pad > 10000 {
		fmt.Fprintf(os.Stderr, "utlshello: --pad %d out of range 0..10000\n", *pad)
		return 2
	}
	if *recordSize < 0 || *recordSize > 1<<14 {
		fmt.Fprintf(os.Stderr, "utlshello: --record-size %d out of range 0..16384\n", *recordSize)
		return 2
	}
	if *position != "first" && *position != "last" && *position != "none" {
		fmt.Fprintf(os.Stderr, "utlshello: --support-at must be first, last or none, not %q\n", *position)
		return 2
	}
	target, err := netip.ParseAddrPort(*addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "utlshello: --addr: %v\n", err)
		return 2
	}

	var tokenBytes []byte
	if *token {
		tokenBytes = migrationToken(target)
	}
	spec := helloSpec(*position, *mlkem, *pad, *supportID, *tokenID, tokenBytes)

	conn, err := net.DialTimeout("tcp", *addr, 10*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, "utlshello:", err)
		return 1
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	// The capture server's certificate is a throwaway self-signed one.
	uconn := utls.UClient(conn, &utls.Config{ServerName: *sni, InsecureSkipVerify: true}, utls.HelloCustom)
	if err := uconn.ApplyPreset(&spec); err != nil {
		fmt.Fprintln(os.Stderr, "utlshello: apply ClientHello spec:", err)
		return 1
	}
	if *recordSize > 0 {
		return sendSplitHello(conn, uconn, *recordSize)
	}
	if err := uconn.Handshake(); err != nil {
		fmt.Fprintln(os.Stderr, "utlshello: handshake:", err)
		return 1
	}
	fmt.Fprintf(uconn, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", *sni)
	n, err := io.Copy(io.Discard, uconn)
	if err != nil {
		fmt.Fprintln(os.Stderr, "utlshello:", err)
		return 1
	}
	st := uconn.ConnectionState()
	fmt.Printf("utlshello: %s %s, ClientHello %d bytes, %d response bytes\n",
		utls.VersionName(st.Version), utls.CipherSuiteName(st.CipherSuite),
		len(uconn.HandshakeState.Hello.Raw), n)
	return 0
}

// helloSpec builds a plain TLS 1.3 ClientHello (no GREASE, so the captures
// stay easy to read) with the draft's extensions placed as asked.
func helloSpec(position string, mlkem bool, pad int, supportID, tokenID uint16, token []byte) utls.ClientHelloSpec {
	groups := []utls.CurveID{utls.X25519, utls.CurveP256}
	shares := []utls.KeyShare{{Group: utls.X25519}}
	if mlkem {
		// ML-KEM plus X25519 plus P-256 shares make a ClientHello of about
		// 1.5 KB: more than one 1460-byte segment.
		groups = append([]utls.CurveID{utls.X25519MLKEM768}, groups...)
		shares = []utls.KeyShare{{Group: utls.X25519MLKEM768}, {Group: utls.X25519}, {Group: utls.CurveP256}}
	}
	exts := []utls.TLSExtension{
		&utls.SNIExtension{},
		&utls.SupportedCurvesExtension{Curves: groups},
		&utls.SupportedPointsExtension{SupportedPoints: []byte{0}},
		&utls.SignatureAlgorithmsExtension{SupportedSignatureAlgorithms: []utls.SignatureScheme{
			utls.ECDSAWithP256AndSHA256, utls.PSSWithSHA256, utls.PKCS1WithSHA256,
			utls.ECDSAWithP384AndSHA384, utls.PSSWithSHA384, utls.PKCS1WithSHA384,
			utls.PSSWithSHA512, utls.PKCS1WithSHA512, utls.Ed25519,
		}},
		&utls.ALPNExtension{AlpnProtocols: []string{"http/1.1"}},
		&utls.KeyShareExtension{KeyShares: shares},
		&utls.PSKKeyExchangeModesExtension{Modes: []uint8{utls.PskModeDHE}},
		&utls.SupportedVersionsExtension{Versions: []uint16{utls.VersionTLS13}},
	}
	support := &utls.GenericExtension{Id: supportID}
	switch position {
	case "first":
		exts = append([]utls.TLSExtension{support}, exts...)
	case "last":
		if pad > 0 {
			exts = append(exts, &utls.GenericExtension{Id: 21, Data: make([]byte, pad)})
		}
		exts = append(exts, support)
	}
	if token != nil {
		exts = append(exts, &utls.GenericExtension{Id: tokenID, Data: token})
	}
	return utls.ClientHelloSpec{
		TLSVersMin: utls.VersionTLS13,
		TLSVersMax: utls.VersionTLS13,
		CipherSuites: []uint16{
			utls.TLS_AES_128_GCM_SHA256, utls.TLS_AES_256_GCM_SHA384, utls.TLS_CHACHA20_POLY1305_SHA256,
		},
		CompressionMethods: []byte{0},
		Extensions:         exts,
	}
}

// sendSplitHello writes the ClientHello uTLS built as several TLS handshake
// records of at most size bytes each, in one write (the kernel cuts it into
// TCP segments), reads the server's first record header to show the server
// took it, and closes. Completing the handshake is not needed for a capture
// of the ClientHello, and uTLS cannot continue after a hand-written hello.
func sendSplitHello(conn net.Conn, uconn *utls.UConn, size int) int {
	if err := uconn.BuildHandshakeState(); err != nil {
		fmt.Fprintln(os.Stderr, "utlshello: build ClientHello:", err)
		return 1
	}
	hello := uconn.HandshakeState.Hello.Raw
	var out []byte
	records := 0
	for rest := hello; len(rest) > 0; records++ {
		n := min(size, len(rest))
		out = append(out, 22, 3, 1, byte(n>>8), byte(n))
		out = append(out, rest[:n]...)
		rest = rest[n:]
	}
	if _, err := conn.Write(out); err != nil {
		fmt.Fprintln(os.Stderr, "utlshello:", err)
		return 1
	}
	var reply [5]byte
	if _, err := io.ReadFull(conn, reply[:]); err != nil {
		fmt.Fprintln(os.Stderr, "utlshello: no reply to the split ClientHello:", err)
		return 1
	}
	if reply[0] != 22 {
		fmt.Fprintf(os.Stderr, "utlshello: server answered the split ClientHello with record type %d, not a handshake\n", reply[0])
		return 1
	}
	fmt.Printf("utlshello: ClientHello %d bytes sent in %d records; the server answered with a handshake record\n", len(hello), records)
	return 0
}

// migrationToken encodes a MigrationToken as the seed defines it:
// target_address (type ipv4(0)/ipv6(1), address, uint16 port),
// session_id<32..255>, uint64 expiry_timestamp, nonce<16..255>,
// signature<32..255>. The session id, nonce and signature are random: the
// capture shows the wire shape a router sees, and no node will accept it.
func migrationToken(target netip.AddrPort) []byte {
	var b []byte
	if target.Addr().Is4() {
		b = append(b, 0)
		a := target.Addr().As4()
		b = append(b, a[:]...)
	} else {
		b = append(b, 1)
		a := target.Addr().As16()
		b = append(b, a[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, target.Port())
	b = appendRandomVector(b, 32)
	b = binary.BigEndian.AppendUint64(b, uint64(time.Now().Add(time.Hour).Unix()))
	b = appendRandomVector(b, 16)
	b = appendRandomVector(b, 32)
	return b
}

func appendRandomVector(b []byte, n int) []byte {
	b = append(b, byte(n))
	v := make([]byte, n)
	rand.Read(v)
	return append(b, v...)
}
