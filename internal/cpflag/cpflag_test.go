package cpflag

import (
	"strings"
	"testing"

	"github.com/anysched/anysched/migration"
)

func TestParse(t *testing.T) {
	cp, err := Parse("")
	if err != nil || cp != migration.DefaultCodePoints() {
		t.Fatalf("empty: %+v, %v", cp, err)
	}
	cp, err = Parse("support=0xFF01, token=65282,notify=0xF1,request=250")
	want := migration.DefaultCodePoints()
	want.Support, want.Token, want.Notify, want.Request = 0xFF01, 0xFF02, 0xF1, 250
	if err != nil || cp != want {
		t.Fatalf("got %+v, %v; want %+v", cp, err, want)
	}
	for in, msg := range map[string]string{
		"support":                 "KEY=VALUE",
		"bogus=1":                 "unknown key",
		"support=0":               "support",
		"support=70000":           "support",
		"notify=256":              "notify",
		"request=x":               "request",
		"token=1,token=2":         "twice",
		"token=0xFE4D":            "different",
		"allowed=0xFE4F":          "different",
		"support=1,token=2,a=3=4": "unknown key",
	} {
		if _, err := Parse(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: err %v, want one with %q", in, err, msg)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("support=0xFE4D,token=0xFE4F")
	f.Add("notify=240,request=0xFD,allowed=1")
	f.Add(",,=")
	f.Fuzz(func(t *testing.T, s string) {
		cp, err := Parse(s)
		if err != nil {
			return
		}
		if cp.Support == 0 || cp.Token == 0 || cp.Allowed == 0 || cp.Request == 0 || cp.Notify == 0 {
			t.Fatalf("%q: a zero code point accepted: %+v", s, cp)
		}
		if cp.Support == cp.Token || cp.Support == cp.Allowed || cp.Token == cp.Allowed {
			t.Fatalf("%q: clashing extension types accepted: %+v", s, cp)
		}
	})
}
