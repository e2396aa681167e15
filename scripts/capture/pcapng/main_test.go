package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/gopacket/pcapgo"
)

// Every packet, with its timestamp and lengths, survives the conversion.
func TestConvertRoundTrip(t *testing.T) {
	in := filepath.Join("..", "..", "..", "parser", "testdata", "go-crypto-tls.pcap")
	out := filepath.Join(t.TempDir(), "out.pcapng")
	if err := convert(in, out); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	g, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ng, err := pcapgo.NewNgReader(g, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	if ng.LinkType() != r.LinkType() {
		t.Errorf("link type %v, want %v", ng.LinkType(), r.LinkType())
	}
	n := 0
	for ; ; n++ {
		want, wci, err := r.ReadPacketData()
		got, gci, gerr := ng.ReadPacketData()
		if errors.Is(err, io.EOF) {
			if !errors.Is(gerr, io.EOF) {
				t.Fatalf("pcapng has more packets than the %d of the pcap", n)
			}
			break
		}
		if err != nil || gerr != nil {
			t.Fatalf("packet %d: %v / %v", n, err, gerr)
		}
		if !bytes.Equal(got, want) || !gci.Timestamp.Equal(wci.Timestamp) || gci.Length != wci.Length {
			t.Fatalf("packet %d differs", n)
		}
	}
	if n == 0 {
		t.Fatal("no packets")
	}
}

func TestConvertErrors(t *testing.T) {
	dir := t.TempDir()
	if err := convert(filepath.Join(dir, "missing.pcap"), filepath.Join(dir, "o.pcapng")); err == nil {
		t.Error("missing input: no error")
	}
	bad := filepath.Join(dir, "bad.pcap")
	os.WriteFile(bad, []byte("not a pcap file at all"), 0o644)
	if err := convert(bad, filepath.Join(dir, "o.pcapng")); err == nil {
		t.Error("garbage input: no error")
	}
}
