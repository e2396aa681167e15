// Package tls13 is anysched's own TLS 1.3 engine (RFC 8446 only), written
// on Go's standard crypto packages and golang.org/x/crypto. It owns the
// record layer, the key schedule, the handshake messages, client and
// server handshakes, session tickets and the hooks the migration layer
// needs, which crypto/tls does not offer: extensions added to the
// ClientHello and to NewSessionTickets, the server's view of every
// ClientHello extension, non-fatal notification alerts, and extra
// post-handshake handshake messages.
//
// Supported: TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384,
// TLS_CHACHA20_POLY1305_SHA256; groups X25519MLKEM768, X25519, P-256,
// P-384, P-521 (crypto/ecdh), X448 (github.com/cloudflare/circl),
// FFDHE2048 and FFDHE3072 (RFC 7919, on math/big, which is not constant
// time: see keyexchange.go); signatures ECDSA P-256 (and P-384 to
// verify), Ed25519, RSA-PSS; HelloRetryRequest with cookie; PSK
// resumption (psk_dhe_ke only); KeyUpdate; middlebox compatibility mode
// (one ChangeCipherSpec). Not supported: 0-RTT (a server never accepts
// early data; it skips up to 64 KiB of the client's 0-RTT records, RFC
// 8446 §4.2.10), TLS 1.2 and older (answered with protocol_version),
// client certificates (a CertificateRequest is answered with an empty
// Certificate), renegotiation.
//
// Bounds against a peer that only costs work: a ClientHello up to the
// largest that can decode (131396 bytes), any number of key shares (the
// walk over them is linear; shares of unknown groups are not kept), 16
// records in a row that deliver nothing (empty application data,
// user_canceled), post-handshake messages as a rate
// (Config.MaxPostHandshakeMessages per minute).
//
// The API follows crypto/tls: Client, Server, NewListener, Dial, Config,
// Conn (a net.Conn) and ConnectionState. Hooks on Config:
//
//   - ClientHelloExtensions (client): extensions placed before
//     pre_shared_key, covered by the binders, also on resumption;
//   - OnNewSessionTicket (client): every ticket with its extensions as a
//     *ClientSession; set it as Config.Session to resume;
//     AllowedTicketExtensions lists the extension types a client accepts;
//   - OnClientHello (server): every received extension and the offered
//     ticket (PSK, sealed AppData) before the server answers; it may refuse
//     the handshake or the resumption;
//   - TicketExtensions (server): extensions (and sealed AppData) for each
//     NewSessionTicket, given the ticket's PSK; Conn.SendSessionTicket sends
//     another ticket at any time after the handshake;
//   - NotificationAlerts + OnNotification, Conn.SendNotification: warning
//     alerts that do not close the connection; all other alerts are fatal;
//   - HandshakeMessageTypes + OnHandshakeMessage, Conn.SendHandshakeMessage:
//     extra post-handshake message types (draft-03 migrate_request 0xFD).
//
// Conn also offers SendKeyUpdate (rekey, optionally asking the peer to
// rekey too; the writer also rekeys on its own every 2^24 records) and
// CloseWrite (close_notify; the peer answers with its own, RFC 8446 §6.1).
//
// Wire decoders (each message type is a handshakeMessage: unmarshal([]byte)
// bool takes a whole handshake message including its 4-byte header, checks
// every length and rejects trailing bytes; marshal() []byte is its
// inverse; one generic round-trip check, fuzzRoundTrip, fuzzes them all):
//
//	clientHelloMsg          ClientHello (1)
//	serverHelloMsg          ServerHello / HelloRetryRequest (2)
//	newSessionTicketMsg     NewSessionTicket (4)
//	encryptedExtensionsMsg  EncryptedExtensions (8)
//	certificateMsg          Certificate (11)
//	certificateRequestMsg   CertificateRequest (13)
//	certificateVerifyMsg    CertificateVerify (15)
//	finishedMsg             Finished (20)
//	keyUpdateMsg            KeyUpdate (24)
//	ticketState             the sealed ticket plaintext
//
// The record layer is exercised through Conn (readRecord handles one
// record: header checks, AEAD open, padding strip, CCS rules).
//
// Errors: a locally detected violation sends the matching fatal alert and
// returns an *AlertError (Received false, with a reason); a received fatal
// alert returns an *AlertError with Received true. errors.Is(err,
// AlertIllegalParameter) works on both.
package tls13
