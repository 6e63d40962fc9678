package bootcfg

import (
	"go/ast"
	goparser "go/parser"
	gotoken "go/token"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

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

// Every kernel argument the parser accepts is in the README's reference.
func TestEveryArgumentIsDocumented(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	// The reference is the README's tables: a key counts as documented
	// when a table row shows it as an argument (`key`, `key=…`, `key[…`).
	var rows []string
	for _, line := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(line, "|") {
			rows = append(rows, line)
		}
	}
	table := strings.Join(rows, "\n")
	documented := func(key string) bool {
		return regexp.MustCompile("[` ]" + regexp.QuoteMeta(key) + "[=`\\[: <\\\\]").MatchString(table)
	}
	for _, k := range parserKeys(t) {
		if !documented(k) {
			t.Errorf("kernel argument %q is parsed but not documented in README.md's reference", k)
		}
	}
}
