// Package hint is the one way an error carries advice for the operator.
//
// The failure block prints an error's text as the problem and its hint on
// a line of its own, so the hint is not part of Error(). Any error type
// can carry one by having a Hint() string method (bootcfg.ArgError and
// netup.Error do); New wraps an error that has none. Of finds the hint
// anywhere in a wrapped chain.
package hint

// Hinter is an error that says how to fix it.
type Hinter interface {
	error
	Hint() string
}

// Error is an error with advice for the operator.
type Error struct {
	err  error
	hint string
}

// New returns err with hint attached; errors.Is and errors.As see err
// through it.
func New(err error, hint string) *Error { return &Error{err: err, hint: hint} }

// Error implements error: the wrapped error's text, without the hint.
func (e *Error) Error() string { return e.err.Error() }

// Unwrap returns the wrapped error.
func (e *Error) Unwrap() error { return e.err }

// Hint is the advice.
func (e *Error) Hint() string { return e.hint }

// Of returns the first non-empty hint in err's chain (depth first, in the
// order errors.As looks), or "" when nothing in it carries one.
func Of(err error) string {
	for err != nil {
		if h, ok := err.(interface{ Hint() string }); ok && h.Hint() != "" {
			return h.Hint()
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if h := Of(e); h != "" {
					return h
				}
			}
			return ""
		default:
			return ""
		}
	}
	return ""
}
