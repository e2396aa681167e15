// Package codepoint is the one home of the wire code points of the TLS
// service-affinity draft. The draft leaves every number TBD, so each one is
// configurable where it is used; this package only holds the defaults.
//
// It imports nothing, so the data plane (parser, fastpath) and the TLS side
// (migration, tls13 users, the capture tools) can share these numbers
// without importing each other.
//
// 0xFE4D, 0xFE4E and 0xFD are the experimental values of revision -03 and of
// the draft authors' public proof of concept. The seed revision (the one
// with MigrationToken and migrate_notify) leaves them open, so 0xFE4F and
// alert 240 are this project's own choices.
package codepoint

const (
	// MigrationSupport is the empty ClientHello extension by which a client
	// announces that it can migrate.
	MigrationSupport uint16 = 0xFE4D
	// MigrationToken carries a MigrationToken in a NewSessionTicket and in
	// the resuming ClientHello (seed profile).
	MigrationToken uint16 = 0xFE4F
	// MigrationAllowed is the empty NewSessionTicket extension that marks a
	// ticket as usable at another address (draft-03 profile).
	MigrationAllowed uint16 = 0xFE4E
	// MigrateRequest is the post-handshake handshake message type that names
	// a target (draft-03 profile).
	MigrateRequest uint8 = 0xFD
	// MigrateNotify is the warning-level alert that asks a client to migrate
	// now (seed profile). Stock TLS stacks treat unknown alerts as fatal, so
	// it is only ever sent to clients that sent MigrationSupport.
	MigrateNotify uint8 = 240
)
