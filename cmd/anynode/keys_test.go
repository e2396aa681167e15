package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestParseTicketKeys(t *testing.T) {
	k1 := bytes.Repeat([]byte{1}, 32)
	k2 := bytes.Repeat([]byte{2}, 32)
	hex1 := strings.Repeat("01", 32)
	b64two := base64.StdEncoding.EncodeToString(k2)
	keys, err := parseTicketKeys("f", strings.NewReader("# current first\n\n  "+hex1+"  \n"+b64two+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || !bytes.Equal(keys[0][:], k1) || !bytes.Equal(keys[1][:], k2) {
		t.Fatalf("keys = %x", keys)
	}
	bad := []struct {
		in   string
		line int
		msg  string
	}{
		{"", 0, "no key"},
		{"# only a comment\n", 0, "no key"},
		{hex1 + "\nzz" + strings.Repeat("0", 62) + "\n", 2, "not a 32-byte key"},
		{base64.StdEncoding.EncodeToString(k1[:31]) + "\n", 1, "not a 32-byte key"},
		{strings.Repeat("01", 33) + "\n", 1, "not a 32-byte key"},
		{hex1 + "\n" + b64two + "\n" + strings.Repeat("03", 32) + "\n", 3, "a third key"},
		{hex1 + "\n" + hex1 + "\n", 0, "equals the current key"},
		{strings.Repeat("#", maxKeyFileSize+1), 0, "larger than"},
	}
	for _, c := range bad {
		_, err := parseTicketKeys("pool.keys", strings.NewReader(c.in))
		var kfe *keyFileError
		if !errors.As(err, &kfe) {
			t.Errorf("%.40q: err %v, want a keyFileError", c.in, err)
			continue
		}
		if kfe.file != "pool.keys" || kfe.line != c.line || !strings.Contains(kfe.msg, c.msg) {
			t.Errorf("%.40q: got %v (line %d), want line %d and %q", c.in, err, kfe.line, c.line, c.msg)
		}
	}
}

func FuzzParseTicketKeys(f *testing.F) {
	f.Add([]byte(strings.Repeat("ab", 32) + "\n"))
	f.Add([]byte("# c\n" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32)) + "\n" + strings.Repeat("cd", 32)))
	f.Add([]byte("\n\n\x00\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := parseTicketKeys("f", bytes.NewReader(data))
		if err != nil {
			var kfe *keyFileError
			if !errors.As(err, &kfe) || keys != nil {
				t.Fatalf("error %v is not a keyFileError or keys returned with it", err)
			}
			return
		}
		if len(keys) < 1 || len(keys) > 2 {
			t.Fatalf("%d keys accepted", len(keys))
		}
		if len(keys) == 2 && keys[0] == keys[1] {
			t.Fatal("two equal keys accepted")
		}
	})
}
