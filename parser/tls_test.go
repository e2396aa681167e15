package parser

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func scan(t *testing.T, b []byte, want HelloStatus) *ClientHello {
	t.Helper()
	var h ClientHello
	if st := ScanClientHello(b, nil, &h); st != want {
		t.Fatalf("ScanClientHello = %v (malformed %v, missing %d), want %v", st, h.Malformed, h.Missing, want)
	}
	return &h
}

func TestScanGoClientHellos(t *testing.T) {
	pq, small := goHellos(t)
	if len(pq) < 1500 || len(small) > 600 {
		t.Fatalf("unexpected sizes: pq %d small %d", len(pq), len(small))
	}
	for _, b := range [][]byte{pq, small} {
		h := scan(t, b, HelloComplete)
		if !h.IsClientHello || !h.Complete || h.Missing != 0 || string(h.SNI) != "example.com" || !h.OffersTLS13 ||
			h.MigrationSupport || h.MigrationToken || h.PreSharedKey || h.ECH || h.Records != 1 || h.End != len(b) ||
			h.Length != len(b)-5 || h.LegacyVersion != 0x0303 || h.Extensions < 8 {
			t.Fatalf("%+v", h)
		}
	}
}

func TestScanMigrationHello(t *testing.T) {
	rec := records(buildHello(migrationExts()))
	h := scan(t, rec, HelloComplete)
	if !h.MigrationSupport || !h.MigrationToken || string(h.MigrationTokenData) != "token-bytes-from-the-node" ||
		string(h.SNI) != "svc.example.net" || !h.OffersTLS13 || !h.PreSharedKey || !h.ECH || !h.GREASE || h.Extensions != 12 {
		t.Fatalf("%+v", h)
	}
	// Code points are parameters: with others, the extensions are unknown.
	cfg := HelloConfig{MigrationSupport: 0xAAAB, MigrationToken: 0xAAAC}
	var h2 ClientHello
	if st := ScanClientHello(rec, &cfg, &h2); st != HelloComplete || h2.MigrationSupport || h2.MigrationToken {
		t.Fatalf("%v %+v", st, h2)
	}
	// Trailing records (ChangeCipherSpec, early data) are not part of it.
	more := append(append([]byte(nil), rec...), 20, 3, 3, 0, 1, 1)
	if h := scan(t, more, HelloComplete); h.End != len(rec) {
		t.Fatalf("End %d, want %d", h.End, len(rec))
	}
}

func TestScanNoExtensions(t *testing.T) {
	h := scan(t, records(buildHello(nil)), HelloComplete)
	if h.Extensions != 0 || h.OffersTLS13 || h.SNI != nil {
		t.Fatalf("%+v", h)
	}
	h = scan(t, records(buildHello([]ext{})), HelloComplete)
	if h.Extensions != 0 {
		t.Fatalf("%+v", h)
	}
}

// TestScanSplitRecords frames the same message into records of many sizes;
// the result must not depend on where the record boundaries fall.
func TestScanSplitRecords(t *testing.T) {
	pq, _ := goHellos(t)
	for _, hs := range [][]byte{buildHello(migrationExts()), handshakeOf(pq)} {
		whole := scan(t, records(hs), HelloComplete)
		for _, sizes := range [][]int{{1}, {2}, {3}, {4}, {5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5}, {60}, {100}, {130}, {200, 1}, {len(hs) - 1}} {
			rec := records(hs, sizes...)
			h := scan(t, rec, HelloComplete)
			if h.Records < 2 || h.End != len(rec) || string(h.SNI) != string(whole.SNI) || h.MigrationSupport != whole.MigrationSupport ||
				h.MigrationToken != whole.MigrationToken || h.OffersTLS13 != whole.OffersTLS13 || h.PreSharedKey != whole.PreSharedKey ||
				h.ECH != whole.ECH || h.Extensions != whole.Extensions || h.Length != whole.Length {
				t.Fatalf("sizes %v: %+v\nwhole %+v", sizes, h, whole)
			}
		}
		// Every byte its own record.
		ones := make([]int, len(hs))
		for i := range ones {
			ones[i] = 1
		}
		h := scan(t, records(hs, ones...), HelloComplete)
		if h.Records != len(hs) || string(h.SNI) != string(whole.SNI) || h.OffersTLS13 != whole.OffersTLS13 {
			t.Fatalf("1-byte records: %+v", h)
		}
	}
}

// TestScanPrefixes feeds every prefix of complete ClientHellos (one record
// and several): each must be incomplete, with a Missing that is positive and
// never more than what is really missing.
func TestScanPrefixes(t *testing.T) {
	pq, small := goHellos(t)
	mig := buildHello(migrationExts())
	for _, full := range [][]byte{pq, small, records(mig), records(mig, 100, 3, 50)} {
		for n := 1; n < len(full); n++ {
			var h ClientHello
			st := ScanClientHello(full[:n], nil, &h)
			if st != HelloIncomplete || !h.IsClientHello || h.Complete || h.Missing <= 0 || h.Missing > len(full)-n {
				t.Fatalf("prefix %d/%d: %v missing %d %+v", n, len(full), st, h.Missing, h)
			}
			if h.Missing == len(full)-n && n > 9 && h.Records == 1 && recordOverhead(full) == 5 && n < len(full) {
				continue // exact for one record once the header is known
			}
		}
	}
	// One record: once the record header is in, Missing is exact.
	for n := 5; n < len(pq); n++ {
		var h ClientHello
		ScanClientHello(pq[:n], nil, &h)
		if h.Missing != len(pq)-n {
			t.Fatalf("prefix %d: missing %d, want %d", n, h.Missing, len(pq)-n)
		}
	}
	// migration_support in the first bytes is reported before the end.
	rec := records(mig)
	i := bytes.Index(rec, []byte{0xfe, 0x4d, 0, 0})
	h := scan(t, rec[:i+4], HelloIncomplete)
	if !h.MigrationSupport || string(h.SNI) != "svc.example.net" {
		t.Fatalf("partial: %+v", h)
	}
}

// A ClientHello is recognised whatever its records' legacy_record_version
// (RFC 8446 §5.1: ignored for all purposes), in one record or several with
// different versions; tls13's TestRecordVersionsRouterAndNode ties this
// to what the TLS server accepts.
func TestScanAnyRecordVersion(t *testing.T) {
	pq, _ := goHellos(t)
	want := scan(t, pq, HelloComplete)
	hs := handshakeOf(pq)
	for _, v := range []uint16{0x0000, 0x0200, 0x0300, 0x0301, 0x0304, 0x03ff, 0x0a0a, 0xfefd, 0xffff} {
		one := records(hs)
		split := records(hs, 3, 200)
		for at := 0; at+5 <= len(split); at += 5 + int(be16(split[at+3:])) {
			split[at+1], split[at+2] = byte(v>>8), byte(v+uint16(at)) // a different minor per record
		}
		one[1], one[2] = byte(v>>8), byte(v)
		for name, b := range map[string][]byte{"one record": one, "three records": split} {
			var h ClientHello
			if st := ScanClientHello(b, nil, &h); st != HelloComplete || !sameHello(&h, want) {
				t.Errorf("version %#04x, %s: %v", v, name, st)
			}
		}
	}
}

func TestScanNotClientHello(t *testing.T) {
	pq, _ := goHellos(t)
	serverHello := append([]byte(nil), pq...)
	serverHello[5] = 2
	for _, b := range [][]byte{
		nil,
		[]byte("GET / HTTP/1.1\r\n"),
		{23, 3, 3, 0, 10},
		{21, 3, 3, 0, 2, 2, 40},
		serverHello,
		{22, 3, 1, 0, 4, 2},
	} {
		var h ClientHello
		if st := ScanClientHello(b, nil, &h); st != HelloNotClientHello || h.IsClientHello {
			t.Errorf("%x: %v", b, st)
		}
	}
	for _, b := range [][]byte{{22}, {22, 3}, {22, 3, 1}, {22, 3, 3, 0}, {22, 3, 1, 0, 40}, {22, 2}, {22, 3, 0}, {22, 0, 0, 0, 40}} {
		var h ClientHello
		if st := ScanClientHello(b, nil, &h); st != HelloIncomplete || !h.IsClientHello || h.Missing < 9-len(b) {
			t.Errorf("%x: %v missing %d", b, st, h.Missing)
		}
	}
}

func TestScanMalformed(t *testing.T) {
	base := migrationExts()
	without := func(typ uint16) []ext {
		var out []ext
		for _, e := range base {
			if e.typ != typ {
				out = append(out, e)
			}
		}
		return out
	}
	with := func(exts []ext, e ext) []ext { return append(append([]ext(nil), exts...), e) }
	// hello with the last byte of its handshake header replaced: lengths lie.
	lie := func(hs []byte, delta int) []byte {
		hs = append([]byte(nil), hs...)
		n := int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3]) + delta
		hs[1], hs[2], hs[3] = byte(n>>16), byte(n>>8), byte(n)
		return hs
	}
	hs := buildHello(base)
	noPSK := without(extPreSharedKey)
	// Offsets inside the body: 4 hdr, 2 version, 32 random, 1 sid len.
	setByte := func(hs []byte, off int, v byte) []byte {
		hs = append([]byte(nil), hs...)
		hs[off] = v
		return hs
	}
	manyExts := make([]ext, MaxExtensions+1)
	for i := range manyExts {
		manyExts[i] = ext{typ: uint16(0x1000 + i)}
	}
	sidOff := 4 + 2 + 32
	csOff := sidOff + 1 + 32
	cmOff := csOff + 2 + 8
	cases := []struct {
		name string
		rec  []byte
		want MalformedReason
	}{
		{"record length 0", []byte{22, 3, 1, 0, 0}, MalformedRecordHeader},
		{"record length 2^14+1", []byte{22, 3, 1, 0x40, 1, 1}, MalformedRecordHeader},
		{"second record type 23", append(records(hs, 10)[:15], 23, 3, 3, 0, 1, 0), MalformedRecordType},
		{"second record partial type 21", append(records(hs, 10)[:15], 21), MalformedRecordType},
		{"second record length 0", append(records(hs, 10)[:15], 22, 3, 3, 0, 0), MalformedRecordHeader},
		{"record longer than message", records(append(append([]byte(nil), hs...), 0)), MalformedTrailingRecordBytes},
		{"second record longer than message", records(append(append([]byte(nil), hs...), 0), 50), MalformedTrailingRecordBytes},
		{"message too short", records([]byte{1, 0, 0, 34, 3, 3}), MalformedHandshakeLength},
		{"session id 33", records(setByte(hs, sidOff, 33)), MalformedSessionID},
		{"session id past end", records(lie(setByte(hs, sidOff, 32), -len(hs)+4+2+32+1+20)[:4+2+32+1+20]), MalformedHandshakeLength},
		{"cipher suites odd", records(setByte(hs, csOff+1, 7)), MalformedCipherSuites},
		{"cipher suites empty", records(setByte(hs, csOff+1, 0)), MalformedCipherSuites},
		{"cipher suites past end", records(setByte(setByte(hs, csOff, 0x7f), csOff+1, 0xfe)), MalformedHandshakeLength},
		{"compression empty", records(setByte(hs, cmOff, 0)), MalformedCompression},
		{"compression past end", records(setByte(hs, cmOff, 0xff)), MalformedHandshakeLength},
		{"one trailing byte after compression", records(append(lie(buildHello(nil), 1), 0)), MalformedExtensionsLength},
		{"extensions length lies long", records(setByte(hs, cmOff+2, hs[cmOff+2]+1)), MalformedExtensionsLength},
		{"trailing bytes after extensions", records(append(lie(hs, 2), 0, 0)), MalformedExtensionsLength},
		{"duplicate extension", records(buildHello(with(noPSK, ext{typ: 10}))), MalformedDuplicateExtension},
		{"duplicate grease", records(buildHello(with(noPSK, ext{typ: 0x3a3a}))), MalformedDuplicateExtension},
		{"duplicate migration_support", records(buildHello(with(noPSK, ext{typ: DefaultMigrationSupport}))), MalformedDuplicateExtension},
		{"too many extensions", records(buildHello(manyExts)), MalformedTooManyExtensions},
		{"psk not last", records(buildHello(with(base, ext{typ: 0x1234}))), MalformedPSKNotLast},
		{"sni empty body", records(buildHello([]ext{{typ: extServerName}})), MalformedServerName},
		{"sni list length lies", records(buildHello([]ext{{typ: extServerName, body: []byte{0, 9, 0, 0, 1, 'a'}}})), MalformedServerName},
		{"sni empty list", records(buildHello([]ext{{typ: extServerName, body: []byte{0, 0}}})), MalformedServerName},
		{"sni name past list", records(buildHello([]ext{{typ: extServerName, body: []byte{0, 4, 0, 0, 2, 'a'}}})), MalformedServerName},
		{"sni empty name", records(buildHello([]ext{{typ: extServerName, body: []byte{0, 3, 0, 0, 0}}})), MalformedServerName},
		{"sni short entry", records(buildHello([]ext{{typ: extServerName, body: []byte{0, 2, 0, 0}}})), MalformedServerName},
		{"versions empty", records(buildHello([]ext{{typ: extSupportedVersions}})), MalformedSupportedVersions},
		{"versions odd", records(buildHello([]ext{{typ: extSupportedVersions, body: []byte{3, 3, 4, 3}}})), MalformedSupportedVersions},
		{"versions length lies", records(buildHello([]ext{{typ: extSupportedVersions, body: []byte{4, 3, 4}}})), MalformedSupportedVersions},
		{"versions split and huge", records(buildHello([]ext{{typ: extSupportedVersions, body: make([]byte, 600)}}), 100), MalformedSupportedVersions},
	}
	for _, c := range cases {
		var h ClientHello
		st := ScanClientHello(c.rec, nil, &h)
		if st != HelloMalformed || h.Malformed != c.want || h.Complete || h.Missing != 0 {
			t.Errorf("%s: %v %v, want malformed %v", c.name, st, h.Malformed, c.want)
		}
		// The same message split over records takes the record-hopping
		// reader; it must find the same fault.
		if c.want >= MalformedHandshakeLength && recordOverhead(c.rec) == 5 {
			for _, size := range []int{1, 7, 40, 90} {
				re := records(handshakeOf(c.rec), size)
				if st := ScanClientHello(re, nil, &h); st != HelloMalformed || h.Malformed != c.want {
					t.Errorf("%s in records of %d: %v %v", c.name, size, st, h.Malformed)
				}
			}
		}
	}
	// An extension header that claims more bytes than the block has.
	hs2 := buildHello([]ext{{typ: 10, body: []byte{1, 2, 3, 4}}})
	hs2[len(hs2)-5] = 5 // extension length 4 → 5
	if h := scan(t, records(hs2), HelloMalformed); h.Malformed != MalformedExtensionLength {
		t.Fatalf("%v", h.Malformed)
	}
	if h := scan(t, records(hs2, 20), HelloMalformed); h.Malformed != MalformedExtensionLength {
		t.Fatalf("split: %v", h.Malformed)
	}
	// Fewer than 4 bytes left for an extension header.
	hs3 := lie(buildHello([]ext{{typ: 10}}), 2)
	hs3[len(hs3)-5]++ // extensions block length +1... keep consistent: block = 4+2
	hs3 = append(hs3, 0, 0)
	binary.BigEndian.PutUint16(hs3[len(hs3)-8:], 6)
	if h := scan(t, records(hs3), HelloMalformed); h.Malformed != MalformedExtensionLength {
		t.Fatalf("short extension header: %v", h.Malformed)
	}
	if h := scan(t, records(hs3, 30), HelloMalformed); h.Malformed != MalformedExtensionLength {
		t.Fatalf("short extension header, split: %v", h.Malformed)
	}
}

func TestScanSNISplitAcrossRecords(t *testing.T) {
	hs := buildHello([]ext{{typ: extServerName, body: sniBody("split.example.org")}, {typ: DefaultMigrationToken, body: []byte("tok")}})
	i := bytes.Index(hs, []byte("split"))
	rec := records(hs, i+3, len(hs)-i-3-2) // split inside the name and inside the token
	h := scan(t, rec, HelloComplete)
	if string(h.SNI) != "split.example.org" || !h.MigrationToken || h.MigrationTokenData != nil {
		t.Fatalf("%+v", h)
	}
	// The host name lives in the struct, not in a dead temporary.
	other := *h
	other.sniBuf = [255]byte{}
	if string(h.SNI) != "split.example.org" {
		t.Fatal("SNI changed")
	}
	// A split SNI too long to copy is skipped, not reported malformed.
	long := bytes.Repeat([]byte("a"), 600)
	hs = buildHello([]ext{{typ: extServerName, body: sniBody(string(long))}})
	h = scan(t, records(hs, 100), HelloComplete)
	if h.SNI != nil {
		t.Fatal("long split SNI reported")
	}
	// A split SNI longer than 255 bytes that fits the temporary: no SNI.
	hs = buildHello([]ext{{typ: extServerName, body: sniBody(string(long[:300]))}})
	h = scan(t, records(hs, 100), HelloComplete)
	if h.SNI != nil {
		t.Fatal("300-byte split SNI reported")
	}
	h = scan(t, records(hs), HelloComplete)
	if len(h.SNI) != 300 {
		t.Fatal("300-byte SNI in one record not reported")
	}
}

func TestIsGREASE(t *testing.T) {
	n := 0
	for v := 0; v < 1<<16; v++ {
		if IsGREASE(uint16(v)) {
			n++
			if v&0x0f0f != 0x0a0a || v>>8 != v&0xff {
				t.Fatalf("%#x", v)
			}
		}
	}
	if n != 16 {
		t.Fatalf("%d GREASE values", n)
	}
}

func TestHelloNames(t *testing.T) {
	for s := HelloStatus(0); s <= NumHelloStatus; s++ {
		if s.String() == "" {
			t.Fatal(s)
		}
	}
	for m := MalformedReason(0); m <= NumMalformedReason; m++ {
		if m.String() == "" {
			t.Fatal(m)
		}
	}
	if len(malformedNames) != int(NumMalformedReason) || malformedNames[NumMalformedReason-1] == "" {
		t.Fatal("malformed names incomplete")
	}
}

func TestScanNoAllocs(t *testing.T) {
	pq, small := goHellos(t)
	split := records(buildHello(migrationExts()), 7, 100, 3)
	var h ClientHello
	for _, b := range [][]byte{pq, small, split, pq[:700]} {
		if n := testing.AllocsPerRun(100, func() { ScanClientHello(b, nil, &h) }); n != 0 {
			t.Fatalf("%v allocations", n)
		}
	}
}
