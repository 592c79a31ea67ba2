package npllm_test

// Every program the tests, the Makefile and the CI scripts run must be in
// deps.txt, which "make deps" installs from: otherwise a fresh machine
// fails with "executable file not found" half-way through "make test".
// No root needed; it reads the sources.

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// Shell words that are not programs to install, and our own binaries.
var notTools = map[string]bool{
	":": true, "[": true, "{": true, "}": true, "!": true, "cd": true, "do": true, "done": true, "echo": true,
	"else": true, "exec": true, "exit": true, "false": true, "fi": true, "for": true, "if": true, "kill": true,
	"printf": true, "read": true, "set": true, "shift": true, "test": true, "then": true, "true": true,
	"wait": true, "while": true, "case": true, "esac": true, "trap": true, "export": true, "command": true,
	"continue": true, "break": true, "return": true, "local": true, "in": true,
	"npllmd": true, "npllmctl": true, "npllm-agent": true, "npllm-devbus": true,
}

// The repo's own helpers that run a program, and which argument names it.
var runners = map[string]int{"run": 0, "must": 1, "start": 1, "Command": 1}

type depsEntry struct{ pkg, group string }

func readDeps(t *testing.T) map[string]depsEntry {
	t.Helper()
	f, err := os.Open("deps.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]depsEntry{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 3 || !slices.Contains([]string{"test", "screenshot", "vmlinux"}, fields[2]) {
			t.Fatalf("deps.txt:%d: want \"tool package test|screenshot|vmlinux\", got %q", n, line)
		}
		if _, dup := out[fields[0]]; dup {
			t.Fatalf("deps.txt:%d: %s listed twice", n, fields[0])
		}
		out[fields[0]] = depsEntry{fields[1], fields[2]}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// shellCommands returns the programs in command position of a shell script
// or make recipe: first word of a line and after ; && || | ( $( do then,
// leaving out assignments, shell functions, quoted text and arithmetic.
var (
	shellCmd   = regexp.MustCompile(`(?:^|[;&|(]|\$\$?\(|\$\(shell|\bdo\b|\bthen\b|\belse\b)\s*([A-Za-z_./][A-Za-z0-9_./+-]*)(=?)`)
	shellFunc  = regexp.MustCompile(`(?m)^\s*([A-Za-z_][A-Za-z0-9_]*)\(\)`)
	arithmetic = regexp.MustCompile(`\$\$?\(\([^)]*\)\)`)
)

func shellCommands(script string) []string {
	funcs := map[string]bool{}
	for _, m := range shellFunc.FindAllStringSubmatch(script, -1) {
		funcs[m[1]] = true
	}
	var out []string
	script = strings.ReplaceAll(script, "\\\n", " ") // a continued line is one command
	for _, line := range strings.Split(script, "\n") {
		line = strings.TrimLeft(line, "\t @-")
		if strings.HasPrefix(line, "#") {
			continue
		}
		line = unquote(arithmetic.ReplaceAllString(line, ""))
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		for _, m := range shellCmd.FindAllStringSubmatch(line, -1) {
			w := m[1]
			if b := path.Base(w); b == "/" || b == "." || m[2] == "=" || strings.HasPrefix(w, "./") || funcs[w] || notTools[path.Base(w)] {
				continue // an assignment, a script of the repo, a function, a builtin
			}
			out = append(out, path.Base(w))
		}
	}
	return out
}

// unquote blanks single-quoted text and, in double quotes, everything that
// would look like a command separator except a $( substitution.
func unquote(line string) string {
	b := []byte(line)
	var quote byte
	for i, c := range b {
		switch {
		case quote == 0 && (c == '\'' || c == '"'):
			quote = c
		case quote != 0 && c == quote:
			quote = 0
		case quote == '\'':
			b[i] = ' '
		case quote == '"' && (c == ';' || c == '|' || c == '&' || c == '#' || (c == '(' && (i == 0 || b[i-1] != '$'))):
			b[i] = ' '
		}
	}
	return string(b)
}

// makeRecipes returns the recipe lines of a Makefile as shell: $(GO) and
// $(MAKE) as programs, other make variables dropped, $$ as $.
var makeVar = regexp.MustCompile(`\$\(([A-Z_]+)\)`)

func makeRecipes(data string) string {
	var b strings.Builder
	for _, line := range strings.Split(data, "\n") {
		if !strings.HasPrefix(line, "\t") {
			continue
		}
		line = makeVar.ReplaceAllStringFunc(line, func(v string) string {
			return map[string]string{"$(GO)": "go", "$(MAKE)": "make"}[v]
		})
		b.WriteString(strings.ReplaceAll(line, "$$", "$") + "\n")
	}
	return b.String()
}

// goCommands returns the programs a Go file runs: literal names given to
// exec.Command, CommandContext, LookPath and the repo's runners, programs
// after a "--" (unshare … -- sh, setpriv … -- x), names in a range over a
// literal list that is looked up, and the commands of "sh -c" scripts
// (literal, or a variable assigned a literal in the same file).
func goCommands(file *ast.File) []string {
	strs := map[string]string{} // variable → literal script
	ast.Inspect(file, func(n ast.Node) bool {
		if a, ok := n.(*ast.AssignStmt); ok && len(a.Lhs) == 1 && len(a.Rhs) == 1 {
			if id, ok := a.Lhs[0].(*ast.Ident); ok {
				if s, ok := literal(a.Rhs[0]); ok {
					strs[id.Name] = s
				}
			}
		}
		return true
	})
	var out []string
	args := func(list []ast.Expr) {
		for i, e := range list {
			s, ok := literal(e)
			if !ok {
				continue
			}
			if s == "--" && i+1 < len(list) {
				if c, ok := literal(list[i+1]); ok {
					out = append(out, path.Base(c))
				}
			}
			if s == "-c" && i+1 < len(list) && i > 0 {
				if sh, _ := literal(list[i-1]); sh == "sh" || sh == "bash" {
					script, ok := literal(list[i+1])
					if id, isID := list[i+1].(*ast.Ident); isID {
						script, ok = strs[id.Name]
					}
					if ok {
						out = append(out, shellCommands(script)...)
					}
				}
			}
		}
	}
	ast.Inspect(file, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			idx, name := -1, ""
			switch fn := n.Fun.(type) {
			case *ast.SelectorExpr:
				name = fn.Sel.Name
				if x, ok := fn.X.(*ast.Ident); ok && x.Name == "exec" {
					idx = map[string]int{"Command": 0, "CommandContext": 1, "LookPath": 0}[name]
					if name != "Command" && name != "CommandContext" && name != "LookPath" {
						idx = -1
					}
					break
				}
				if i, ok := runners[name]; ok {
					idx = i
				}
			case *ast.Ident:
				if i, ok := runners[fn.Name]; ok {
					idx = i
				}
			}
			if idx < 0 || idx >= len(n.Args) {
				return true
			}
			if s, ok := literal(n.Args[idx]); ok && s != "" {
				out = append(out, path.Base(s))
			}
			args(n.Args)
		case *ast.CompositeLit:
			// An argv list: []string{"setpriv", "--reuid=…", "--", prog}.
			if first, ok := literal(firstOf(n.Elts)); ok && slices.ContainsFunc(n.Elts, func(e ast.Expr) bool { s, _ := literal(e); return s == "--" }) {
				out = append(out, path.Base(first))
			}
			args(n.Elts)
		case *ast.RangeStmt:
			list, ok := n.X.(*ast.CompositeLit)
			if !ok || !looksUp(n.Body) {
				return true
			}
			for _, e := range list.Elts {
				if s, ok := literal(e); ok {
					out = append(out, path.Base(s))
				}
			}
		}
		return true
	})
	return out
}

func firstOf(list []ast.Expr) ast.Expr {
	if len(list) == 0 {
		return nil
	}
	return list[0]
}

func literal(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

// looksUp: the block calls a LookPath.
func looksUp(body ast.Node) bool {
	found := false
	ast.Inspect(body, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok && sel.Sel.Name == "LookPath" {
			found = true
		}
		return !found
	})
	return found
}

// usedTools maps each program the repo runs to where it is run.
func usedTools(t *testing.T) map[string][]string {
	t.Helper()
	used := map[string][]string{}
	add := func(where string, names []string) {
		for _, n := range names {
			if !notTools[n] && !slices.Contains(used[n], where) {
				used[n] = append(used[n], where)
			}
		}
	}
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "dist" || d.Name() == "bin" || d.Name() == ".git") {
			return filepath.SkipDir
		}
		switch {
		case strings.HasSuffix(p, ".go"):
			file, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			add(p, goCommands(file))
		case strings.HasSuffix(p, ".sh") || p == filepath.Join(".ci", "run") || p == filepath.Join(".ci", "deps"):
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			add(p, shellCommands(string(data)))
		case p == "Makefile":
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			add(p, shellCommands(makeRecipes(string(data))))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return used
}

func TestEveryToolIsInDeps(t *testing.T) {
	deps := readDeps(t)
	used := usedTools(t)
	// The scan itself must see what is known to be run, or it proves nothing.
	for _, want := range []string{"xmllint", "desktop-file-validate", "dbus-daemon", "Xvfb", "setpriv", "busctl", "useradd", "mount", "node", "npm", "go", "gzip", "lintian", "systemd-nspawn", "mkswap"} {
		if _, ok := used[want]; !ok {
			t.Errorf("the scan did not find %s, which the repo runs: the scanner is broken", want)
		}
	}
	var missing []string
	for tool, where := range used {
		if _, ok := deps[tool]; !ok {
			missing = append(missing, tool+" (run in "+strings.Join(where, ", ")+")")
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("not in deps.txt: %s — add \"tool debian-package group\"", m)
	}
}

// The scanner finds a new program however a test runs it.
func TestToolScannerSeesNewCommands(t *testing.T) {
	src := `package x
func f() {
	exec.Command("frob1", "a")
	exec.CommandContext(ctx, "frob2")
	exec.Command(bin, "not-a-tool")
	run("frob3", "x")
	c.must(t, "frob4")
	script := "set -e\nfrob5 --x && frob6 | frob7"
	exec.Command("unshare", "--", "sh", "-c", script)
	_ = []string{"frob8", "--", "frob9"}
	for _, tool := range []string{"frob10"} { exec.LookPath(tool) }
	exec.Command("/usr/sbin/frob11")
}`
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "x.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, c := range goCommands(file) {
		got[c] = true
	}
	for _, want := range []string{"frob1", "frob2", "frob3", "frob4", "frob5", "frob6", "frob7", "frob8", "frob9", "frob10", "frob11", "unshare", "sh"} {
		if !got[want] {
			t.Errorf("scanner missed %s; found %v", want, got)
		}
	}
	if got["not-a-tool"] || got["set"] {
		t.Errorf("scanner took an argument for a program: %v", got)
	}
	recipes := shellCommands(makeRecipes("x:\n\t@frob12 a; $(GO) vet && x=$$(frob13 -l) || frob14 $(BIN)/y; echo \"a; frob15\"\n# frob16\n"))
	for _, want := range []string{"frob12", "go", "frob13", "frob14"} {
		if !slices.Contains(recipes, want) {
			t.Errorf("recipe scan missed %s: %v", want, recipes)
		}
	}
	if slices.Contains(recipes, "frob15") || slices.Contains(recipes, "frob16") || slices.Contains(recipes, "BIN") || slices.Contains(recipes, "x") {
		t.Errorf("recipe scan took quoted text, a comment, a variable or an assignment for a program: %v", recipes)
	}
}
