package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func runTableCmd(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = dispatch(append([]string{"table"}, args...), &o, &e)
	return code, o.String(), e.String()
}

func TestTableExample(t *testing.T) {
	code, out, errOut := runTableCmd("--config", "../../examples/router.yaml")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"digest:", "pool-a", "a1", "10.201.0.11", "pool-b", "b3", "65537"} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`digest:\s+[0-9a-f]{64}\n`).MatchString(out) {
		t.Fatalf("no hex digest:\n%s", out)
	}

	code, js, errOut := runTableCmd("--config", "../../examples/router.yaml", "--json")
	if code != 0 {
		t.Fatalf("--json exit %d: %s", code, errOut)
	}
	var got struct {
		Digest string
		Nodes  []struct {
			Name, Pool    string
			Weight, Slots uint32
		}
	}
	if err := json.Unmarshal([]byte(js), &got); err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	if len(got.Digest) != 64 || len(got.Nodes) != 6 {
		t.Fatalf("json: %+v", got)
	}
	var slots uint32
	for _, n := range got.Nodes {
		slots += n.Slots
		if n.Name == "" || n.Pool == "" {
			t.Fatalf("node %+v", n)
		}
	}
	if slots != 65537 {
		t.Fatalf("slots add up to %d", slots)
	}
	if !strings.Contains(out, got.Digest) {
		t.Fatal("text and JSON digests differ")
	}
}

// The same config in another file (nodes reordered) gives the same digest.
func TestTableDigestStable(t *testing.T) {
	data, err := os.ReadFile("../../examples/router.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Swap the order of nodes a1 and a2: IDs change, the table does not.
	s := string(data)
	a1 := s[strings.Index(s, "      - name: a1"):strings.Index(s, "      - name: a2")]
	a2 := s[strings.Index(s, "      - name: a2"):strings.Index(s, "      - name: a3")]
	s = strings.Replace(s, a1+a2, a2+a1, 1)
	path := filepath.Join(t.TempDir(), "r.yaml")
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	digest := func(p string) string {
		code, out, e := runTableCmd("--config", p, "--json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, e)
		}
		var v struct{ Digest string }
		json.Unmarshal([]byte(out), &v)
		return v.Digest
	}
	if a, b := digest("../../examples/router.yaml"), digest(path); a != b || a == "" {
		t.Fatalf("digests %s and %s", a, b)
	}
}

func TestTableErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("vips: []\npools: []\ntable: {size: 100}\n"), 0o644)
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{nil, 2, "--config is required"},
		{[]string{"--nope"}, 2, "unknown flag"},
		{[]string{"--config", "/nonexistent/x.yaml"}, 2, "no such file"},
		{[]string{"--config", bad}, 2, "table.size: 100 is not prime"},
		{[]string{"--config", bad, "extra"}, 2, "unexpected argument"},
	} {
		code, _, errOut := runTableCmd(c.args...)
		if code != c.code || !strings.Contains(errOut, c.msg) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, errOut, c.code, c.msg)
		}
	}
	code, out, _ := runTableCmd("--help")
	if code != 0 || !strings.Contains(out, "--config") || !strings.Contains(out, "--json") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
}
