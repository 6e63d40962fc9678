// Package wanterr is a test helper: a table test's error checked against
// the one its case wants, so each table says only what it expects.
package wanterr

import (
	"strings"
	"testing"
)

// Check reports whether the case ends at its error. want is a substring
// the error must contain, or "" when the case wants no error. A wanted
// error that is missing or says something else, and an error no one
// wanted, fail t with Errorf: the caller returns (a subtest) or continues
// (a loop) when Check is true, and goes on checking the result when it is
// false.
func Check(t testing.TB, err error, want string) bool {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Errorf("error %v, want none", err)
			return true
		}
		return false
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want one saying %q", err, want)
	}
	return true
}
