package bootcfg

import (
	"errors"
	"fmt"
)

// ArgError is a problem with one kernel argument. Every error Parse returns
// is (a join of) ArgErrors, so the failure message can always point at the
// exact token the user has to fix in their boot loader config.
type ArgError struct {
	// Arg is the whole token as written on the command line, quotes
	// included, e.g. `root=live:ftp://x`.
	Arg string
	// Reason says what is wrong with it.
	Reason string
	// hint, if not empty, says how to fix it (Hint).
	hint string
}

// Hint says how to fix the argument, or "". It is not part of Error()
// because the failure block prints it on its own line (pkg/hint).
func (e *ArgError) Hint() string { return e.hint }

// Error implements error.
func (e *ArgError) Error() string {
	return fmt.Sprintf("kernel argument %q: %s", e.Arg, e.Reason)
}

// ArgErrors returns every ArgError in err, in command-line order.
// errors.As only finds the first one; /init wants to print them all.
func ArgErrors(err error) []*ArgError {
	var out []*ArgError
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if ae, ok := err.(*ArgError); ok {
			out = append(out, ae)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}

// joinErrs is errors.Join for ArgErrors; kept separate so Parse's return
// statement reads plainly.
func joinErrs(errs []*ArgError) error {
	if len(errs) == 0 {
		return nil
	}
	es := make([]error, len(errs))
	for i, e := range errs {
		es[i] = e
	}
	return errors.Join(es...)
}
