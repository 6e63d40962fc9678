package wanterr

import (
	"errors"
	"testing"
)

// recorder notes whether Check failed the test, without failing this one.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(string, ...any) { r.failed = true }

func TestCheck(t *testing.T) {
	boom := errors.New("boom: disk on fire")
	for _, tc := range []struct {
		name       string
		err        error
		want       string
		done, fail bool
	}{
		{"no error, none wanted", nil, "", false, false},
		{"an error no one wanted", boom, "", true, true},
		{"the wanted error", boom, "on fire", true, false},
		{"another error", boom, "flooded", true, true},
		{"no error, one wanted", nil, "on fire", true, true},
	} {
		r := &recorder{TB: t}
		if done := Check(r, tc.err, tc.want); done != tc.done || r.failed != tc.fail {
			t.Errorf("%s: Check = %v, failed %v; want %v, %v", tc.name, done, r.failed, tc.done, tc.fail)
		}
	}
}
