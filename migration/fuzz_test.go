// This file holds the fuzz targets of every codec of Part A and the
// generator of their seed corpora in testdata/fuzz/<Target>/, which go test
// runs as seeds (the targets call no f.Add: the files are the one list).
//
// TestFuzzCorpusIsCurrent fails when a committed seed file is missing or
// differs from what the generator makes; `go test -run TestFuzzCorpusIsCurrent
// ./migration -args -update-fuzz-corpus` rewrites them.

package migration

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var updateFuzzCorpus = flag.Bool("update-fuzz-corpus", false, "rewrite migration/testdata/fuzz seed files")

// The fixed session FuzzVerifyToken checks against; fuzzVerifyToken is a
// genuine token for it.
var (
	fuzzPSK       = bytes.Repeat([]byte{0x11}, 32)
	fuzzSessionID = bytes.Repeat([]byte{0x22}, 32)
	fuzzLocal     = netip.MustParseAddrPort("192.0.2.10:8443")
	fuzzNow       = time.Unix(1_800_000_000, 0)
)

func fuzzGenuineToken(target netip.AddrPort) []byte {
	tok, err := IssueToken(fuzzPSK, target, fuzzSessionID, fuzzNow.Add(5*time.Minute), bytes.NewReader(bytes.Repeat([]byte{0x4e}, 16)))
	if err != nil {
		panic(err)
	}
	raw, err := tok.Marshal()
	if err != nil {
		panic(err)
	}
	return raw
}

// seedEntry is one seed file: a name and the fuzz target's arguments.
type seedEntry struct {
	name string
	args []any
}

func tokenSeeds() []seedEntry {
	mapped := netip.MustParseAddr("::ffff:192.0.2.7").As16()
	v4, v6 := validRawV4(), validRawV6()
	genuine := fuzzGenuineToken(fuzzLocal)
	seeds := []seedEntry{
		{"valid_ipv4_min_lengths", []any{v4.bytes()}},
		{"valid_ipv6_max_lengths", []any{v6.bytes()}},
		{"genuine_issued", []any{genuine}},
		{"empty", []any{[]byte{}}},
		{"type_only", []any{[]byte{0}}},
		{"unknown_type_2", []any{func() []byte { r := v4; r.typ = 2; return r.bytes() }()}},
		{"ipv6_4in6", []any{func() []byte { r := v4; r.typ = 1; r.addr = mapped[:]; return r.bytes() }()}},
		{"session_id_31", []any{func() []byte { r := v4; r.sessionID = fill(31, 1); return r.bytes() }()}},
		{"nonce_15", []any{func() []byte { r := v4; r.nonce = fill(15, 1); return r.bytes() }()}},
		{"signature_31", []any{func() []byte { r := v4; r.signature = fill(31, 1); return r.bytes() }()}},
		{"trailing_byte", []any{append(v4.bytes(), 0)}},
		{"truncated_signature", []any{v4.bytes()[:len(v4.bytes())-1]}},
	}
	return seeds
}

func FuzzParseToken(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := ParseToken(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) || tok != nil {
				t.Fatalf("ParseToken = %v, %v; want nil and ErrMalformed", tok, err)
			}
			return
		}
		if len(data) > MaxTokenLen {
			t.Fatalf("accepted %d bytes > MaxTokenLen %d", len(data), MaxTokenLen)
		}
		out, err := tok.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed token: %v", err)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("parse→marshal changed the encoding:\n in %x\nout %x", data, out)
		}
		again, err := ParseToken(out)
		if err != nil || again.Target != tok.Target || again.Expiry != tok.Expiry ||
			!bytes.Equal(again.SessionID, tok.SessionID) || !bytes.Equal(again.Nonce, tok.Nonce) ||
			!bytes.Equal(again.Signature, tok.Signature) {
			t.Fatalf("re-parse = %+v, %v; want %+v", again, err, tok)
		}
	})
}

func migrateRequestSeeds() []seedEntry {
	enc := func(target string) []byte {
		b, err := (&MigrateRequest{Target: target}).Marshal()
		if err != nil {
			panic(err)
		}
		return b
	}
	return []seedEntry{
		{"empty_target", []any{enc("")}},
		{"ipv4_target", []any{enc("192.0.2.1:443")}},
		{"ipv6_target", []any{enc("[2001:db8::1]:8443")}},
		{"opaque_target", []any{enc("node-7.pool-a")}},
		{"empty_body", []any{[]byte{}}},
		{"one_byte", []any{[]byte{0}}},
		{"length_beyond_body", []any{[]byte{0xff, 0xff, 'a'}}},
		{"trailing_byte", []any{append(enc("192.0.2.1:443"), 0)}},
	}
}

func FuzzParseMigrateRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := ParseMigrateRequest(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) || m != nil {
				t.Fatalf("ParseMigrateRequest = %v, %v; want nil and ErrMalformed", m, err)
			}
			return
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed migrate_request: %v", err)
		}
		if !bytes.Equal(out, body) {
			t.Fatalf("parse→marshal changed the body:\n in %x\nout %x", body, out)
		}
		// Whatever the target says, interpreting it must not panic, and an
		// accepted one must survive formatting.
		if ap, err := ParseTarget(m.Target); err == nil {
			if again, err := ParseTarget(FormatTarget(ap)); err != nil || again != ap {
				t.Fatalf("target %q: %v re-parsed as %v, %v", m.Target, ap, again, err)
			}
		}
	})
}

func targetSeeds() []seedEntry {
	var seeds []seedEntry
	for i, s := range []string{
		"192.0.2.1:443", "[2001:db8::1]:8443", "[::ffff:192.0.2.1]:443", "[::1]:1", "127.0.0.1:65535",
		"", "192.0.2.1", "192.0.2.1:0", "192.0.2.1:65536", "[fe80::1%eth0]:443", "example.com:443",
		"192.0.2.1:0443", "[2001:0db8:0:0::1]:443",
	} {
		seeds = append(seeds, seedEntry{fmt.Sprintf("target_%02d", i), []any{s}})
	}
	return seeds
}

func FuzzParseTarget(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		ap, err := ParseTarget(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseTarget(%q): %v does not wrap ErrMalformed", s, err)
			}
			return
		}
		if !ap.IsValid() || ap.Port() == 0 || ap.Addr().Zone() != "" || ap.Addr().Is4In6() {
			t.Fatalf("ParseTarget(%q) = %v: not a plain address and port", s, ap)
		}
		formatted := FormatTarget(ap)
		again, err := ParseTarget(formatted)
		if err != nil || again != ap {
			t.Fatalf("ParseTarget(%q) = %v; FormatTarget = %q re-parses as %v, %v", s, ap, formatted, again, err)
		}
		if FormatTarget(again) != formatted {
			t.Fatalf("FormatTarget is not stable for %v", ap)
		}
	})
}

func notifySeeds() []seedEntry {
	return []seedEntry{
		{"notify_240", []any{[]byte{1, 240}, byte(240)}},
		{"fatal_level", []any{[]byte{2, 240}, byte(240)}},
		{"other_desc", []any{[]byte{1, 0}, byte(240)}},
		{"three_bytes", []any{[]byte{1, 240, 0}, byte(240)}},
		{"empty", []any{[]byte{}, byte(240)}},
	}
}

func FuzzParseNotifyAlert(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte, desc byte) {
		err := ParseNotifyAlert(b, desc)
		if want := bytes.Equal(b, MarshalNotifyAlert(desc)); (err == nil) != want {
			t.Fatalf("ParseNotifyAlert(%x, %d) = %v; want accepted=%v", b, desc, err, want)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("err %v does not wrap ErrMalformed", err)
		}
	})
}

func emptyExtensionSeeds() []seedEntry {
	return []seedEntry{
		{"empty", []any{[]byte{}}},
		{"one_byte", []any{[]byte{0}}},
		{"token_as_support", []any{validRawV4().bytes()}},
	}
}

func FuzzParseEmptyExtensions(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		for name, parse := range map[string]func([]byte) error{
			"migration_support": ParseMigrationSupport,
			"migration_allowed": ParseMigrationAllowed,
		} {
			err := parse(data)
			if (err == nil) != (len(data) == 0) {
				t.Fatalf("%s(%x) = %v", name, data, err)
			}
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("%s: %v does not wrap ErrMalformed", name, err)
			}
		}
	})
}

func verifySeeds() []seedEntry {
	genuine := fuzzGenuineToken(fuzzLocal)
	flipped := append([]byte(nil), genuine...)
	flipped[len(flipped)-1] ^= 1
	return []seedEntry{
		{"genuine", []any{genuine, fuzzPSK, fuzzSessionID}},
		{"no_ticket", []any{genuine, []byte{}, fuzzSessionID}},
		{"other_session", []any{genuine, fuzzPSK, fill(32, 0x23)}},
		{"forged", []any{flipped, fuzzPSK, fuzzSessionID}},
		{"wrong_target", []any{fuzzGenuineToken(netip.MustParseAddrPort("192.0.2.11:8443")), fuzzPSK, fuzzSessionID}},
		{"malformed", []any{genuine[:40], fuzzPSK, fuzzSessionID}},
	}
}

// FuzzVerifyToken drives the whole check with fuzzed tokens and ticket
// state: it must never panic, always give a known Reason, accept only a
// canonical encoding signed with the ticket's key, and refuse any second use.
func FuzzVerifyToken(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw, psk, sessionID []byte) {
		store := NewMemoryReplayStore(4)
		store.now = func() time.Time { return fuzzNow }
		in := VerifyInput{Raw: raw, PSK: psk, SessionID: sessionID, Local: fuzzLocal, Now: fuzzNow}
		tok, err := VerifyToken(context.Background(), in, store)
		if err != nil {
			var rej *RejectError
			if !errors.As(err, &rej) || !slices.Contains(Reasons, rej.Reason) || tok != nil {
				t.Fatalf("VerifyToken = %v, %v; want nil and a known *RejectError", tok, err)
			}
			if store.Len() != 0 {
				t.Fatalf("rejected (%s) but the nonce was claimed", rej.Reason)
			}
			return
		}
		out, err := tok.Marshal()
		if err != nil || !bytes.Equal(out, raw) {
			t.Fatalf("accepted token re-marshals as %x, %v; raw %x", out, err, raw)
		}
		signed, _ := tok.signedBytes()
		if !bytes.Equal(tokenMAC(TokenKey(psk), signed), tok.Signature) {
			t.Fatal("accepted a token whose signature is not the ticket's HMAC")
		}
		_, err = VerifyToken(context.Background(), in, store)
		var rej *RejectError
		if !errors.As(err, &rej) || rej.Reason != ReasonReplayed {
			t.Fatalf("second use: %v, want replayed", err)
		}
	})
}

func replaySpecSeeds() []seedEntry {
	var seeds []seedEntry
	for i, s := range []string{
		"memory", "redis://127.0.0.1:6379", "redis://127.0.0.1:6379/3", "redis://[::1]:6380/",
		"redis://user:secret@127.0.0.1:6379/0", "redis://:secret@127.0.0.1:6379", "rediss://127.0.0.1:6379",
		"redis://127.0.0.1", "redis://127.0.0.1:0", "redis://127.0.0.1:6379/x", "redis://127.0.0.1:6379/0?a=b",
		"redis://[::1", "",
	} {
		seeds = append(seeds, seedEntry{fmt.Sprintf("spec_%02d", i), []any{s}})
	}
	return seeds
}

// FuzzOpenReplayStoreSpec fuzzes the --replay value's parser: no panic, an
// accepted spec names a dialable HOST:PORT and a database, and a rejected
// one never repeats the user:password@ of a spec that url.Parse reads.
func FuzzOpenReplayStoreSpec(f *testing.F) {
	f.Fuzz(func(t *testing.T, spec string) {
		opts, err := parseRedisSpec(spec)
		if err != nil {
			if opts != nil {
				t.Fatalf("parseRedisSpec(%q) = %+v and %v", spec, opts, err)
			}
			if u, perr := url.Parse(spec); perr == nil && u.User != nil {
				if pw, ok := u.User.Password(); ok && strings.Contains(err.Error(), ":"+pw+"@") {
					t.Fatalf("error %q repeats the password %q", err, pw)
				}
			}
			return
		}
		host, port, err := net.SplitHostPort(opts.Addr)
		if err != nil || host == "" || port == "0" || port == "" {
			t.Fatalf("parseRedisSpec(%q): Addr %q is not HOST:PORT", spec, opts.Addr)
		}
		if opts.DB < 0 || opts.DB > 65535 {
			t.Fatalf("parseRedisSpec(%q): DB %d", spec, opts.DB)
		}
		if !strings.HasPrefix(spec, "redis://") {
			t.Fatalf("parseRedisSpec accepted %q, which is not redis://", spec)
		}
	})
}

// fuzzCorpora lists every target's seeds, for the corpus files.
func fuzzCorpora() map[string][]seedEntry {
	return map[string][]seedEntry{
		"FuzzParseToken":           tokenSeeds(),
		"FuzzParseMigrateRequest":  migrateRequestSeeds(),
		"FuzzParseTarget":          targetSeeds(),
		"FuzzParseNotifyAlert":     notifySeeds(),
		"FuzzParseEmptyExtensions": emptyExtensionSeeds(),
		"FuzzVerifyToken":          verifySeeds(),
		"FuzzOpenReplayStoreSpec":  replaySpecSeeds(),
	}
}

// encodeCorpusFile writes args in the "go test fuzz v1" format.
func encodeCorpusFile(args []any) []byte {
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		case string:
			fmt.Fprintf(&b, "string(%q)\n", v)
		case byte:
			fmt.Fprintf(&b, "byte(%q)\n", v)
		default:
			panic(fmt.Sprintf("corpus: no encoding for %T", a))
		}
	}
	return []byte(b.String())
}

func TestFuzzCorpusIsCurrent(t *testing.T) {
	for target, seeds := range fuzzCorpora() {
		dir := filepath.Join("testdata", "fuzz", target)
		if *updateFuzzCorpus {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for _, s := range seeds {
			path := filepath.Join(dir, "seed_"+s.name)
			want := encodeCorpusFile(s.args)
			if *updateFuzzCorpus {
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("%v (run with -update-fuzz-corpus)", err)
				continue
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the generator (run with -update-fuzz-corpus)", path)
			}
		}
	}
}

// TestFuzzVerifySeedsReachTheirOutcome keeps FuzzVerifyToken's seeds honest:
// each one is named after the outcome it must reach, so the fuzzer starts
// from the accept path and from every early rejection.
func TestFuzzVerifySeedsReachTheirOutcome(t *testing.T) {
	for _, s := range verifySeeds() {
		store := NewMemoryReplayStore(4)
		store.now = func() time.Time { return fuzzNow }
		in := VerifyInput{Raw: s.args[0].([]byte), PSK: s.args[1].([]byte), SessionID: s.args[2].([]byte), Local: fuzzLocal, Now: fuzzNow}
		_, err := VerifyToken(context.Background(), in, store)
		if s.name == "genuine" {
			if err != nil {
				t.Fatalf("seed %s: %v", s.name, err)
			}
			continue
		}
		if got := reasonOf(t, err); string(got) != s.name {
			t.Fatalf("seed %s: reason %q", s.name, got)
		}
	}
}
