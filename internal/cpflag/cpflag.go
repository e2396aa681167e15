// Package cpflag owns the --code-points flag syntax that anynode and
// anyclient share: the draft's code points are configuration (the draft
// leaves them unassigned), so a deployment can follow another revision or a peer's proof of
// concept without a rebuild.
package cpflag

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/anysched/anysched/migration"
)

// Syntax is how the flag's help describes its value.
const Syntax = "comma-separated KEY=VALUE overrides of the defaults (support=0xFE4D,token=0xFE4F,allowed=0xFE4E,request=0xFD,notify=240; decimal or 0x hex): support/token/allowed are extension types, request the draft-03 handshake type, notify the alert; both ends must agree"

// Parse applies the overrides in s to the defaults. "" is the defaults.
// Errors name the key at fault.
func Parse(s string) (migration.CodePoints, error) {
	cp := migration.DefaultCodePoints()
	if strings.TrimSpace(s) == "" {
		return cp, nil
	}
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		key, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return cp, fmt.Errorf("%q: want KEY=VALUE", part)
		}
		if seen[key] {
			return cp, fmt.Errorf("%s given twice", key)
		}
		seen[key] = true
		var bits int
		switch key {
		case "support", "token", "allowed":
			bits = 16
		case "request", "notify":
			bits = 8
		default:
			return cp, fmt.Errorf("unknown key %q (want support, token, allowed, request or notify)", key)
		}
		v, err := strconv.ParseUint(val, 0, bits)
		if err != nil || v == 0 {
			return cp, fmt.Errorf("%s=%q: want a number 1..%d", key, val, uint64(1)<<bits-1)
		}
		switch key {
		case "support":
			cp.Support = uint16(v)
		case "token":
			cp.Token = uint16(v)
		case "allowed":
			cp.Allowed = uint16(v)
		case "request":
			cp.Request = uint8(v)
		case "notify":
			cp.Notify = uint8(v)
		}
	}
	if cp.Support == cp.Token || cp.Support == cp.Allowed || cp.Token == cp.Allowed {
		return cp, fmt.Errorf("support, token and allowed must be three different extension types (got %#x, %#x, %#x)", cp.Support, cp.Token, cp.Allowed)
	}
	return cp, nil
}
