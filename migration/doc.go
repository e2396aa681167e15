// Package migration is the TLS side of anysched's service affinity: the
// draft's wire elements and their policy on top of package tls13. It owns
// the codecs (migration_support, MigrationToken, migrate_notify,
// migration_allowed, migrate_request), token signing and checking, the
// nonce replay store (memory, Redis), the node's issue/validate/notify
// logic (Server) and the client's migrate logic (Dialer, Conn, Transport).
// It never imports the data plane.
//
// # Profiles
//
// ProfileSeed follows the seed revision: a client announces the empty
// migration_support extension in its ClientHello; each NewSessionTicket it
// then gets carries a migration_token naming the node's unicast address
// (HMAC-SHA256 keyed by HKDF-Expand-Label(ticket PSK, "mig token", "", 32),
// bound to a random session_id that is also sealed in the ticket, with an
// expiry and a single-use nonce). The client resumes that ticket at the
// target with the token in the resuming ClientHello; the node accepts it
// only if the HMAC, the session binding, the expiry, the target (the
// address the ClientHello arrived on) and the nonce all check out. The
// node asks a client to move now with the warning alert migrate_notify.
//
// ProfileDraft03 follows revision -03: tickets of capable clients carry
// the empty migration_allowed extension and the authorization is sealed
// in the ticket itself (no token on the wire, nothing migration-specific
// in the resuming ClientHello); the node names the target in a
// migrate_request post-handshake message, in its own record after the
// tickets, outside the transcript. An anycast node sends it right after
// the handshake. Resumption is psk_dhe_ke only.
//
// In both profiles nothing migration-specific is ever sent to a client
// whose ClientHello lacked migration_support: stock TLS stacks treat an
// unknown alert or handshake message as fatal.
//
// # Rejections
//
// A token that fails a check is answered with a full handshake (never a
// broken connection, never a silent resumption) and counted by Reason:
// malformed, no_ticket (a token without a resumable ticket), forged,
// other_session, expired, wrong_target, replayed, and store_unavailable
// (the replay store cannot answer: the node fails closed).
//
// # Client policies
//
// PolicyRendezvous (default) waits on the anycast connection for the
// token, resumes at the target and hands the application only the
// unicast connection; if no token comes within Dialer.TokenWait or the
// target cannot be reached it hands over the anycast connection and
// ConnInfo.Fallback says why. PolicyBackground hands over the anycast
// connection at once and prepares the move in the background when the
// token, migrate_notify or migrate_request arrives (make-before-break);
// the move takes effect at Conn.SwitchIfReady, between requests.
// PolicyNever is a legacy TLS 1.3 client. A migrated connection that is
// told to move again (a drain, a re-target to a sibling node) moves the
// same way as a background one; a target equal to where it already is
// sends it back through the anycast address. A move prepared but not
// yet switched to that is itself told to move is followed at once (the
// prepared connection is replaced, make-before-break), so a drain that
// re-targets it while the application is between requests loses
// nothing. A draining Server tells connections whose handshake
// completes during the drain as well (see Server.Drain).
//
// # Use
//
// Like net/http's Transport, the package hides connection management.
// A client either dials:
//
//	d := &migration.Dialer{TLS: &tls13.Config{RootCAs: pool}}
//	conn, err := d.DialContext(ctx, "tcp", "vip.example:443")
//
// or lets net/http use it unchanged:
//
//	client := &http.Client{Transport: &migration.Transport{Dialer: d}}
//	resp, err := client.Get("https://vip.example/")
//	info, _ := migration.ResponseConnInfo(resp) // where it landed
//
// A node serves its two addresses from one Server:
//
//	srv, err := migration.NewServer(migration.ServerConfig{TLS: cfg, Unicast: unicast})
//	go http.Serve(srv.Listen(vipListener, migration.KindAnycast), handler)
//	go http.Serve(srv.Listen(unicastListener, migration.KindUnicast), handler)
//	srv.MigrateAll(netip.AddrPort{}) // or Drain(ctx, sibling) on shutdown
//
// Nodes of one pool share tls13.TicketKeys and a Redis replay store, so
// that a token re-targeted to a sibling verifies there.
package migration
