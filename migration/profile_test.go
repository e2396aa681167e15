package migration

import "testing"

func TestParseProfilePolicyAndNames(t *testing.T) {
	for _, p := range []Profile{ProfileSeed, ProfileDraft03} {
		if got, err := ParseProfile(p.String()); err != nil || got != p {
			t.Errorf("ParseProfile(%q) = %v, %v", p, got, err)
		}
	}
	for _, p := range []Policy{PolicyRendezvous, PolicyBackground, PolicyNever} {
		if got, err := ParsePolicy(p.String()); err != nil || got != p {
			t.Errorf("ParsePolicy(%q) = %v, %v", p, got, err)
		}
	}
	for _, bad := range []string{"", "Seed", "draft-03", "03"} {
		if _, err := ParseProfile(bad); err == nil {
			t.Errorf("ParseProfile(%q) accepted", bad)
		}
	}
	for _, bad := range []string{"", "Never", "eager"} {
		if _, err := ParsePolicy(bad); err == nil {
			t.Errorf("ParsePolicy(%q) accepted", bad)
		}
	}
	if KindAnycast.String() != "anycast" || KindUnicast.String() != "unicast" || Kind(9).String() != "Kind(9)" {
		t.Error("Kind names")
	}
	if Profile(9).String() != "Profile(9)" || Policy(9).String() != "Policy(9)" {
		t.Error("unknown names")
	}
}
