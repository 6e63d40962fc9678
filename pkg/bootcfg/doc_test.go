package bootcfg

import (
	"flag"
	"go/ast"
	goparser "go/parser"
	gotoken "go/token"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/kernel-args.md's kernel-argument reference from Forms")

// parserKeys lists the argument names the parser's switch on t.key handles,
// read from the source so a new case cannot be added without this test
// seeing it.
func parserKeys(t *testing.T) []string {
	t.Helper()
	f, err := goparser.ParseFile(gotoken.NewFileSet(), "parse.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	ast.Inspect(f, func(n ast.Node) bool {
		sw, ok := n.(*ast.SwitchStmt)
		if !ok {
			return true
		}
		sel, ok := sw.Tag.(*ast.SelectorExpr)
		if !ok || sel.Sel.Name != "key" {
			return true
		}
		for _, c := range sw.Body.List {
			for _, e := range c.(*ast.CaseClause).List {
				if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == gotoken.STRING {
					s, _ := strconv.Unquote(lit.Value)
					keys = append(keys, s)
				}
			}
		}
		return false
	})
	if len(keys) < 30 {
		t.Fatalf("found only %d keys in parse.go: the test lost track of the parser", len(keys))
	}
	sort.Strings(keys)
	return keys
}

// Every argument the parser handles has a row in Forms, and every row
// names an argument the parser handles.
func TestEveryArgumentIsInForms(t *testing.T) {
	parsed := parserKeys(t)
	var inTable []string
	for _, f := range Forms() {
		inTable = append(inTable, f.Key)
		if !slices.Contains(parsed, f.Key) {
			t.Errorf("Forms row %q names %q, which parse.go does not handle", f.Syntax, f.Key)
		}
		if f.Origin == "" || f.Effect == "" || f.Example == "" || f.Section == "" {
			t.Errorf("Forms row %q lacks its origin, effect, example or section", f.Syntax)
		}
		if !strings.HasPrefix(f.Syntax, f.Key) {
			t.Errorf("Forms row %q does not start with its key %q", f.Syntax, f.Key)
		}
	}
	for _, k := range parsed {
		if !slices.Contains(inTable, k) {
			t.Errorf("kernel argument %q is parsed but has no row in Forms (forms.go)", k)
		}
	}
}

const (
	refBegin = "<!-- kernel-arguments: generated from pkg/bootcfg/forms.go (go test ./pkg/bootcfg -run TestReference -update); edit there -->\n"
	refEnd   = "<!-- end of kernel-arguments -->\n"
)

// docs/kernel-args.md's reference is Reference(), byte for byte.
func TestReference(t *testing.T) {
	const path = "../../docs/kernel-args.md"
	readme, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	i, j := strings.Index(s, refBegin), strings.Index(s, refEnd)
	if i < 0 || j < i {
		t.Fatalf("docs/kernel-args.md has no generated kernel-argument reference between %q and %q", refBegin, refEnd)
	}
	want := s[:i] + refBegin + Reference() + refEnd + s[j+len(refEnd):]
	if want == s {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("docs/kernel-args.md's kernel-argument reference is not Reference(): run go test ./pkg/bootcfg -run TestReference -update")
}

// Every form's example parses (or is refused, naming one of its tokens),
// and a network form that parses leaves a trace: a change to the Config
// or a warning. Nothing the network section lists is dropped silently.
func TestFormExamples(t *testing.T) {
	for _, f := range Forms() {
		t.Run(f.Syntax, func(t *testing.T) {
			// With an image URL built in, as Foreman's root=live:/fdi.iso
			// needs; no other form depends on it.
			c, err := ParseWith(f.Example, Defaults{ImageURL: "http://s/fdi.iso"})
			if f.Refused {
				if err == nil {
					t.Fatalf("Parse(%q): no error, but the form is refused", f.Example)
				}
				for _, ae := range ArgErrors(err) {
					if !strings.Contains(f.Example, ae.Arg) || ae.Hint() == "" {
						t.Errorf("error %v does not name a token of %q or has no hint", ae, f.Example)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", f.Example, err)
			}
			if len(c.Ignored) > 0 {
				t.Errorf("Parse(%q) ignores %q", f.Example, c.Ignored)
			}
			if f.Section == "network" && reflect.DeepEqual(c, defaults()) {
				t.Errorf("Parse(%q) leaves no trace: no Config field and no warning", f.Example)
			}
		})
	}
}
