package migration

import "fmt"

// Profile selects which revision of the draft a Server speaks.
type Profile uint8

const (
	// ProfileSeed puts a MigrationToken into each NewSessionTicket of a
	// capable client and asks it to move with the migrate_notify alert.
	ProfileSeed Profile = iota
	// ProfileDraft03 marks tickets migration_allowed (the authorization is
	// sealed inside the ticket) and names the target in migrate_request.
	ProfileDraft03
)

// ParseProfile parses "seed" or "draft03".
func ParseProfile(s string) (Profile, error) {
	switch s {
	case "seed":
		return ProfileSeed, nil
	case "draft03":
		return ProfileDraft03, nil
	}
	return 0, fmt.Errorf("migration: unknown profile %q (want seed or draft03)", s)
}

// String returns the name ParseProfile accepts.
func (p Profile) String() string {
	switch p {
	case ProfileSeed:
		return "seed"
	case ProfileDraft03:
		return "draft03"
	}
	return fmt.Sprintf("Profile(%d)", uint8(p))
}

// Policy is how a client Dialer uses the migration the server offers.
type Policy uint8

const (
	// PolicyRendezvous waits on the anycast connection for the token,
	// resumes at the target and hands the application only the unicast
	// connection.
	PolicyRendezvous Policy = iota
	// PolicyBackground hands the application the anycast connection at
	// once and moves to the target in the background (make-before-break);
	// Conn.SwitchIfReady moves at an application boundary.
	PolicyBackground
	// PolicyNever is a legacy client: no migration_support, no hooks.
	PolicyNever
)

// ParsePolicy parses "rendezvous", "background" or "never".
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "rendezvous":
		return PolicyRendezvous, nil
	case "background":
		return PolicyBackground, nil
	case "never":
		return PolicyNever, nil
	}
	return 0, fmt.Errorf("migration: unknown policy %q (want rendezvous, background or never)", s)
}

// String returns the name ParsePolicy accepts.
func (p Policy) String() string {
	switch p {
	case PolicyRendezvous:
		return "rendezvous"
	case PolicyBackground:
		return "background"
	case PolicyNever:
		return "never"
	}
	return fmt.Sprintf("Policy(%d)", uint8(p))
}

// Kind says which of a node's listeners a connection came in on.
type Kind uint8

const (
	// KindAnycast is the shared VIP, reached through the router.
	KindAnycast Kind = iota
	// KindUnicast is the node's own address, the migration target.
	KindUnicast
)

// String returns "anycast" or "unicast" (metric label values).
func (k Kind) String() string {
	switch k {
	case KindAnycast:
		return "anycast"
	case KindUnicast:
		return "unicast"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}
