package deps

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// goToolchain is what the project takes from Go itself, not from Debian.
var goToolchain = set("go gofmt")

// goExec finds a literal command name in the Go code's ways of running a
// program: exec.Command/CommandContext/LookPath, the test bed's
// Exec/Command helpers (Host.Exec("ip", ...), testbed.Exec(ns, "ip", ...))
// and its run("ip", ...).
var goExec = regexp.MustCompile(`(?:exec\.LookPath|\bExec|\.Command|\.CommandContext|\brun)\((?:[A-Za-z_][\w.\[\]]*,\s*)?"([^"]+)"`)

// goCommandRow is a row of a [][]string table of commands, run in a loop
// (for _, c := range [][]string{{"nft", "add", ...}, ...} { h.Exec(c...) }).
var goCommandRow = regexp.MustCompile(`(?:^\s*|\{)\{"([^"]+)",`)

// tableSpan is how many lines a [][]string table of commands and the loop
// that runs its rows may take.
const tableSpan = 12

// goRunsRow is a call that runs a row of such a table as a command line.
var goRunsRow = regexp.MustCompile(`(?:Exec|Command|CommandContext)\((?:[A-Za-z_][\w.]*,\s*)?\w+\.\.\.\)|Command\(\w+\[0\]`)

// runsRows reports whether the lines after a table's start run its rows.
func runsRows(lines []string) bool {
	for _, l := range lines {
		if goRunsRow.MatchString(l) {
			return true
		}
	}
	return false
}

// listedTools reads debian.txt: package → the commands named for it.
func listedTools(t *testing.T) (packages []string, tools map[string]string) {
	t.Helper()
	f, err := os.Open("debian.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tools = map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if len(fields) < 2 {
			t.Fatalf("debian.txt:%d: want 'package command...' (- for none)", n)
		}
		packages = append(packages, fields[0])
		for _, c := range fields[1:] {
			if c != "-" {
				tools[c] = fields[0]
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return packages, tools
}

func essentialTools(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("essential.txt")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			m[line] = true
		}
	}
	if !m["sh"] || !m["sed"] || !m["dpkg-query"] {
		t.Fatal("essential.txt lacks sh, sed or dpkg-query: not the Essential set")
	}
	return m
}

// repoTools scans the repository for the commands it runs.
func repoTools(t *testing.T) []toolUse {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	var uses []toolUse
	shell := func(path, src string) {
		rel, _ := filepath.Rel(root, path)
		uses = append(uses, shellTools(rel, src)...)
	}
	for _, name := range []string{"Makefile", ".ci/run"} {
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		if name == "Makefile" {
			shell(filepath.Join(root, name), makefileShell(string(b)))
		} else {
			shell(filepath.Join(root, name), string(b))
		}
	}
	scripts, _ := filepath.Glob(filepath.Join(root, "scripts", "*.sh"))
	if len(scripts) == 0 {
		t.Fatal("no scripts/*.sh: the scan looks in the wrong place")
	}
	for _, s := range scripts {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		shell(s, string(b))
	}
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			// This package's tests hold example snippets, not commands.
			if name := d.Name(); name == ".git" || name == "testdata" || path == filepath.Join(root, "deps") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		table := 0 // lines left of a [][]string table of commands
		lines := strings.Split(string(b), "\n")
		for n, line := range lines {
			found := goExec.FindAllStringSubmatch(line, -1)
			if strings.Contains(line, "[][]string{") && runsRows(lines[n:min(n+tableSpan, len(lines))]) {
				table = tableSpan
			}
			if table > 0 {
				table--
				found = append(found, goCommandRow.FindAllStringSubmatch(line, -1)...)
			}
			for _, m := range found {
				if plainName.MatchString(m[1]) { // not a flag, nor os.Args[0]'s
					uses = append(uses, toolUse{m[1], rel, n + 1})
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return uses
}

// TestEveryCommandIsProvided: each external command the Makefile, .ci/run,
// scripts/*.sh and the Go code run comes from the Go toolchain, an
// Essential package or a package in debian.txt.
func TestEveryCommandIsProvided(t *testing.T) {
	_, listed := listedTools(t)
	essential := essentialTools(t)
	uses := repoTools(t)
	seen := map[string]bool{}
	for _, u := range uses {
		seen[u.name] = true
		if goToolchain[u.name] || essential[u.name] || listed[u.name] != "" {
			continue
		}
		t.Errorf("%s:%d runs %q: add its Debian package to deps/debian.txt (or stop needing it)", u.file, u.line, u.name)
	}
	// The scan finds what is known to be there, or it scans nothing.
	for _, want := range []string{"go", "ip", "git", "openssl", "awk", "nft"} {
		if !seen[want] {
			t.Errorf("the scan did not find %q; it is broken", want)
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	t.Logf("commands run: %s", strings.Join(names, " "))
}

// TestListedCommandsAreInstalled: what debian.txt promises is on PATH (run
// `make deps` first; `make test` does).
func TestListedCommandsAreInstalled(t *testing.T) {
	_, listed := listedTools(t)
	for tool, pkg := range listed {
		if _, err := exec.LookPath(tool); err != nil {
			t.Errorf("%s (Debian package %s) not found: run make deps", tool, pkg)
		}
	}
}

// TestDebianListIsWellFormed: one line per package, names as Debian
// spells them, no package twice.
func TestDebianListIsWellFormed(t *testing.T) {
	packages, _ := listedTools(t)
	name := regexp.MustCompile(`^[a-z0-9][a-z0-9.+-]+$`)
	dup := map[string]bool{}
	for _, p := range packages {
		if !name.MatchString(p) || dup[p] {
			t.Errorf("debian.txt: package %q malformed or repeated", p)
		}
		dup[p] = true
	}
}
