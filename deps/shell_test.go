package deps

import (
	"regexp"
	"strings"
)

// toolUse is one external command a file runs.
type toolUse struct {
	name string
	file string
	line int
}

// shellBuiltins are bash's builtins and reserved words that take a command
// position without running a program. exec, command, time, ! and coproc
// are handled apart: what follows them is a command.
var shellBuiltins = set(`alias bg break builtin caller cd compgen complete continue declare dirs
disown echo enable eval exit export false fc fg getopts hash help history jobs kill let local
logout mapfile popd printf pushd pwd read readarray readonly return set shift shopt source
suspend test times trap true type typeset ulimit umask unalias unset wait . : [`)

func set(words string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(words) {
		m[w] = true
	}
	return m
}

var (
	assignment = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\+?=`)
	funcDef    = regexp.MustCompile(`(?m)^\s*(?:function\s+)?([A-Za-z_][A-Za-z0-9_-]*)\s*\(\)`)
	// A plain command name: anything else (variables, paths into the
	// repo, placeholders for substitutions) is not a tool to install.
	plainName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.+-]*$`)
)

// Token kinds of the shell lexer.
const (
	tokWord = iota
	tokOp   // | || && ; ;; & ( ) newline
)

type token struct {
	kind int
	text string
	line int
}

// shellLexer splits shell source into words and operators. It follows
// quotes, escapes, comments, here-documents and arithmetic, and scans the
// commands inside $(...), `...` and <(...) on its own (their tools are
// recorded through the same scanner), leaving a "$" placeholder in the word.
type shellLexer struct {
	src      string
	i, line  int
	heredocs []heredoc // delimiters waiting for the end of the line
	subs     [][]token // tokens of command substitutions, scanned separately
	inQuote  int       // open backquote substitutions: a backquote closes one
}

type heredoc struct {
	delim     string
	stripTabs bool
	expands   bool // unquoted delimiter: $(...) in the body runs
}

func lexShell(src string) (main []token, subs [][]token) {
	l := &shellLexer{src: src, line: 1}
	main = l.tokens(0)
	return main, l.subs
}

// tokens reads until end (0: end of input; ')' or '`': the end of a
// substitution, consumed).
func (l *shellLexer) tokens(end byte) []token {
	if end == '`' {
		l.inQuote++
		defer func() { l.inQuote-- }()
	}
	var out []token
	for l.i < len(l.src) {
		c := l.src[l.i]
		switch {
		case end != 0 && c == end:
			l.i++
			return out
		case c == ' ' || c == '\t':
			l.i++
		case c == '\\' && l.i+1 < len(l.src) && l.src[l.i+1] == '\n':
			l.i += 2
			l.line++
		case c == '\n':
			out = append(out, token{tokOp, "\n", l.line})
			l.i++
			l.line++
			l.skipHeredocs()
		case c == '#':
			for l.i < len(l.src) && l.src[l.i] != '\n' {
				l.i++
			}
		case c == '(' && strings.HasPrefix(l.src[l.i:], "(("):
			l.skipArithmetic(2)
		case strings.ContainsRune("|&;()", rune(c)):
			op := string(c)
			if l.i+1 < len(l.src) && (l.src[l.i+1] == c && c != '(' && c != ')' || c == '|' && l.src[l.i+1] == '&') {
				op += string(l.src[l.i+1])
			}
			l.i += len(op)
			out = append(out, token{tokOp, op, l.line})
		case c == '<' || c == '>':
			l.redirect()
		default:
			line := l.line
			w := l.word()
			if w != "" {
				out = append(out, token{tokWord, w, line})
			}
		}
	}
	return out
}

// redirect skips a redirection operator and its target word, noting a
// here-document's delimiter; <( and >( are command substitutions.
func (l *shellLexer) redirect() {
	if l.i+1 < len(l.src) && l.src[l.i+1] == '(' {
		l.i += 2
		l.subs = append(l.subs, l.tokens(')'))
		return
	}
	heredocOp := strings.HasPrefix(l.src[l.i:], "<<") && !strings.HasPrefix(l.src[l.i:], "<<<")
	for l.i < len(l.src) && strings.ContainsRune("<>&|-", rune(l.src[l.i])) {
		if l.src[l.i] == '-' && !heredocOp {
			break
		}
		l.i++
	}
	strip := heredocOp && l.src[l.i-1] == '-'
	for l.i < len(l.src) && (l.src[l.i] == ' ' || l.src[l.i] == '\t') {
		l.i++
	}
	start := l.i
	target := l.word()
	if heredocOp {
		raw := l.src[start:l.i]
		delim := strings.NewReplacer(`'`, "", `"`, "", `\`, "").Replace(raw)
		l.heredocs = append(l.heredocs, heredoc{delim, strip, delim == raw})
	}
	_ = target
}

func (l *shellLexer) skipHeredocs() {
	for _, h := range l.heredocs {
		for l.i < len(l.src) {
			end := strings.IndexByte(l.src[l.i:], '\n')
			if end < 0 {
				end = len(l.src) - l.i
			}
			line := l.src[l.i : l.i+end]
			l.i += end + 1
			l.line++
			if h.stripTabs {
				line = strings.TrimLeft(line, "\t")
			}
			if line == h.delim {
				break
			}
			if h.expands {
				l.substitutionsIn(line)
			}
		}
	}
	l.heredocs = l.heredocs[:0]
}

// substitutionsIn scans the command substitutions of a here-document line.
func (l *shellLexer) substitutionsIn(text string) {
	sub := &shellLexer{src: text, line: l.line - 1}
	var ignored strings.Builder
	for sub.i < len(sub.src) {
		if c := sub.src[sub.i]; c == '$' || c == '`' {
			sub.dollar(&ignored)
		} else {
			sub.i++
		}
	}
	l.subs = append(l.subs, sub.subs...)
}

// skipArithmetic skips (( ... )) or $(( ... )), counting parentheses.
func (l *shellLexer) skipArithmetic(open int) {
	depth := 0
	for l.i < len(l.src) {
		switch l.src[l.i] {
		case '(':
			depth++
		case ')':
			depth--
		case '\n':
			l.line++
		}
		l.i++
		if depth == 0 && open > 0 {
			return
		}
	}
}

// word reads one word; substitutions in it are scanned and replaced by "$".
func (l *shellLexer) word() string {
	var b strings.Builder
	for l.i < len(l.src) {
		c := l.src[l.i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || strings.ContainsRune("|&;()<>", rune(c)), c == '`' && l.inQuote > 0:
			return b.String()
		case c == '\\':
			if l.i+1 < len(l.src) && l.src[l.i+1] != '\n' {
				b.WriteByte(l.src[l.i+1])
			}
			l.i += 2
		case c == '\'':
			end := strings.IndexByte(l.src[l.i+1:], '\'')
			if end < 0 {
				end = len(l.src) - l.i - 1
			}
			text := l.src[l.i+1 : l.i+1+end]
			l.line += strings.Count(text, "\n")
			b.WriteString(text)
			l.i += end + 2
		case c == '"':
			l.i++
			l.doubleQuoted(&b)
		case c == '$' || c == '`':
			l.dollar(&b)
		default:
			b.WriteByte(c)
			l.i++
		}
	}
	return b.String()
}

func (l *shellLexer) doubleQuoted(b *strings.Builder) {
	for l.i < len(l.src) {
		c := l.src[l.i]
		switch {
		case c == '"':
			l.i++
			return
		case c == '\\':
			if l.i+1 < len(l.src) {
				b.WriteByte(l.src[l.i+1])
			}
			l.i += 2
		case c == '$' || c == '`':
			l.dollar(b)
		default:
			if c == '\n' {
				l.line++
			}
			b.WriteByte(c)
			l.i++
		}
	}
}

// dollar handles $(...), $((...)), ${...}, `...` and $name at l.i.
func (l *shellLexer) dollar(b *strings.Builder) {
	b.WriteByte('$')
	rest := l.src[l.i:]
	switch {
	case rest[0] == '`':
		l.i++
		l.subs = append(l.subs, l.tokens('`'))
	case strings.HasPrefix(rest, "$(("):
		l.i++
		l.skipArithmetic(2)
	case strings.HasPrefix(rest, "$("):
		l.i += 2
		l.subs = append(l.subs, l.tokens(')'))
	case strings.HasPrefix(rest, "${"):
		l.i++
		depth := 0
		var ignored strings.Builder
		for l.i < len(l.src) {
			switch l.src[l.i] {
			case '{':
				depth++
			case '}':
				depth--
			case '$', '`': // ${x:-$(cmd)} runs cmd
				if l.i+1 < len(l.src) && l.src[l.i+1] != '{' {
					l.dollar(&ignored)
					continue
				}
			}
			l.i++
			if depth == 0 {
				return
			}
		}
	default:
		l.i++
	}
}

// shellTools returns the external commands the shell source runs:
// command words that are plain names, not builtins, reserved words or the
// script's own functions. `ip netns exec NS CMD` counts CMD too.
func shellTools(file, src string) []toolUse {
	funcs := map[string]bool{}
	for _, m := range funcDef.FindAllStringSubmatch(src, -1) {
		funcs[m[1]] = true
	}
	main, subs := lexShell(src)
	var found []toolUse
	for _, toks := range append([][]token{main}, subs...) {
		found = append(found, commandsOf(file, toks, funcs)...)
	}
	return found
}

func commandsOf(file string, toks []token, funcs map[string]bool) []toolUse {
	var found []toolUse
	cmdPos := true
	var cases []bool // per open case: at a pattern
	skipUntil := ""  // for/select: words until "do"; [[: until "]]"
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if skipUntil != "" {
			if t.kind == tokWord && t.text == skipUntil {
				skipUntil, cmdPos = "", true
				if t.text == "]]" {
					cmdPos = false
				}
			}
			continue
		}
		inPattern := len(cases) > 0 && cases[len(cases)-1]
		if t.kind == tokOp {
			switch {
			case t.text == ";;" || t.text == ";&" || t.text == ";;&":
				if len(cases) > 0 {
					cases[len(cases)-1] = true
				}
			case inPattern && t.text == ")":
				cases[len(cases)-1] = false
				cmdPos = true
				continue
			}
			if !inPattern {
				cmdPos = t.text != ")"
			}
			continue
		}
		if inPattern {
			if t.text == "esac" {
				cases = cases[:len(cases)-1]
				cmdPos = false
			}
			continue // a pattern word
		}
		if !cmdPos {
			continue
		}
		w := t.text
		switch {
		case assignment.MatchString(w):
			continue
		case w == "then" || w == "do" || w == "else" || w == "elif" || w == "if" || w == "while" ||
			w == "until" || w == "{" || w == "!" || w == "time" || w == "exec":
			continue
		case w == "fi" || w == "done" || w == "}" || w == "esac":
			cmdPos = false
			if w == "esac" && len(cases) > 0 {
				cases = cases[:len(cases)-1]
			}
			continue
		case w == "for" || w == "select":
			skipUntil = "do"
			continue
		case w == "[[":
			skipUntil = "]]"
			continue
		case w == "case":
			// case WORD in: the patterns start after "in".
			for i+1 < len(toks) && !(toks[i+1].kind == tokWord && toks[i+1].text == "in") {
				i++
			}
			i++
			cases = append(cases, true)
			continue
		case w == "function":
			i++ // the name
			cmdPos = false
			continue
		case w == "coproc":
			if i+2 < len(toks) && toks[i+2].text == "{" {
				i++ // the coprocess's name
			}
			continue
		case w == "command":
			cmdPos = false // command -v NAME checks, it does not run
			continue
		case i+2 < len(toks) && toks[i+1].text == "(" && toks[i+2].text == ")":
			i += 2 // a function definition
			continue
		}
		cmdPos = false
		if shellBuiltins[w] || funcs[w] || !plainName.MatchString(w) || strings.HasPrefix(w, "{") {
			continue
		}
		found = append(found, toolUse{w, file, t.line})
		if w == "ip" && i+4 < len(toks) && toks[i+1].text == "netns" && toks[i+2].text == "exec" {
			if n := toks[i+4]; n.kind == tokWord && plainName.MatchString(n.text) && !shellBuiltins[n.text] && !funcs[n.text] {
				found = append(found, toolUse{n.text, file, n.line})
			}
		}
	}
	return found
}

// makefileShell turns a Makefile's recipes into shell source: recipe lines
// (tab first) with continuations joined, make's $$ as $, $(GO) and
// $(MAKE) as the commands they name and other make variables as shell ones.
func makefileShell(src string) string {
	var b strings.Builder
	for _, line := range strings.Split(src, "\n") {
		if !strings.HasPrefix(line, "\t") {
			b.WriteString("\n")
			continue
		}
		line = strings.TrimLeft(strings.TrimPrefix(line, "\t"), "@-+")
		line = strings.ReplaceAll(line, "$$", "\x00")
		line = strings.NewReplacer("$(GO)", "go", "$(MAKE)", "make").Replace(line)
		line = makeVar.ReplaceAllString(line, "$${$1}") // a make variable reads as a shell one
		b.WriteString(strings.ReplaceAll(line, "\x00", "$"))
		b.WriteString("\n")
	}
	return b.String()
}

var makeVar = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
