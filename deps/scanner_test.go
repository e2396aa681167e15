package deps

import (
	"sort"
	"strings"
	"testing"
)

// shellSample puts a command in every position a script can, and words
// that are not commands (builtins, functions, variables, paths, case
// patterns, quoted here-document text, arithmetic) around them.
const shellSample = `#!/bin/sh
# comment: notatool
x=$(alpha -n | beta) y=1 gamma "$x" 'delta'
a=${x[2 * (notatool - 1)]} b=${y:-$(upsilon)}
helper() { echo "$(epsilon)"; }
helper arg
case "$1" in
up | --up) zeta ;;
'' | *[!0-9]*) eta --x ;;
esac
if theta; then iota; elif [[ -n $x ]]; then :; else kappa; fi
for i in lambda mu; do nu "$i"; done
while ((i < 3)); do i=$((i + 1)); done
cat <<-END >/dev/null
	notatool $(xi)
	END
cat <<'END'
notatool $(notatool)
END
ip netns exec ns1 omicron --flag 2>/dev/null || "$repo/scripts/x.sh" up
exec {fd}>&- ; command -v notatool >/dev/null
coproc HOLD { exec pi; }
done=$(rho <(sigma)) ; kill -TERM 1; ` + "`tau`" + `
`

func TestShellScanner(t *testing.T) {
	names := func(uses []toolUse) string {
		var got []string
		for _, u := range uses {
			got = append(got, u.name)
		}
		sort.Strings(got)
		return strings.Join(got, " ")
	}
	want := "alpha beta cat cat epsilon eta gamma iota ip kappa nu omicron pi rho sigma tau theta upsilon xi zeta"
	if got := names(shellTools("t.sh", shellSample)); got != want {
		t.Errorf("found %s\nwant  %s", got, want)
	}
	mk := "all: build\n\nx:\n\t@out=$$(alpha $$(beta)); \\\n\t\tgamma $(GO) $(BIN)/x\n\t$(GO) vet ./...\n\t-$(MAKE) -C y\n"
	if got := names(shellTools("Makefile", makefileShell(mk))); got != "alpha beta gamma go make" {
		t.Errorf("Makefile: found %s, want alpha beta gamma go make", got)
	}
	for _, c := range []struct{ line, want string }{
		{`out, err := exec.Command("one", "x").Output()`, "one"},
		{`cmd := exec.CommandContext(ctx, "two")`, "two"},
		{`exec.LookPath("three")`, "three"},
		{`h.Exec("four", "-br")`, "four"},
		{`testbed.Exec(b.Fabric, "five", "-s")`, "five"},
		{`r.Command("six", "-batch", "-")`, "six"},
		{`run("seven", args...)`, "seven"},
		{`exec.Command(os.Args[0], "-test.run=^X$")`, ""},
		{`t.Run("not a tool", func(t *testing.T) {})`, ""},
	} {
		got := ""
		if m := goExec.FindStringSubmatch(c.line); m != nil && plainName.MatchString(m[1]) {
			got = m[1]
		}
		if got != c.want {
			t.Errorf("%s: found %q, want %q", c.line, got, c.want)
		}
	}
}

// TestCommandTables: the rows of a [][]string table of commands count,
// flags in the first column do not.
func TestCommandTables(t *testing.T) {
	for _, c := range []struct{ line, want string }{
		{`	{"nft", "add", "table", "netdev", "x"},`, "nft"},
		{`for _, c := range [][]string{{"eight", "-x"}} {`, "eight"},
		{`	{"-n", b.Fabric, "link", "set", "br0", "up"},`, ""},
	} {
		got := ""
		if m := goCommandRow.FindStringSubmatch(c.line); m != nil && plainName.MatchString(m[1]) {
			got = m[1]
		}
		if got != c.want {
			t.Errorf("%s: found %q, want %q", c.line, got, c.want)
		}
	}
	if !runsRows([]string{"} {", "\tif out, err := h.Exec(c...); err != nil {"}) || runsRows([]string{"rows = append(rows, r)", "printTable(rows...)"}) {
		t.Error("runsRows: a table run by Exec(c...) is one of commands; a table printed is not")
	}
}
