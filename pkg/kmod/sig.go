package kmod

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// SignatureMarker ends a module file that carries an appended signature
// (what the kernel's sign-file writes after the ELF object).
const SignatureMarker = "~Module signature appended~\n"

// HasSignature reports whether the (decompressed) module file ko carries
// an appended signature: whether a kernel that loads only signed modules
// can check it at all.
func HasSignature(ko []byte) bool { return strings.HasSuffix(string(ko), SignatureMarker) }

// SignatureError is a module the kernel refused to load for its signature:
// under Secure Boot the kernel is locked down and loads only modules
// signed by a key it trusts (so does module.sig_enforce=1).
type SignatureError struct {
	Module string
	// Deps are the modules Module depends on: the refused file is Module
	// or one of them (the loader reports the module it was asked for).
	Deps []string
	Err  error // the syscall's errno
}

// Error names the module and why: the console line of the modules stage is
// all an operator sees of a NIC driver that did not load.
func (e *SignatureError) Error() string {
	which := e.Module
	if len(e.Deps) > 0 {
		which += " (or one of its dependencies " + strings.Join(e.Deps, ", ") + ")"
	}
	return fmt.Sprintf("module %s refused by the kernel: its signature is missing or not trusted, "+
		"and the kernel loads only signed modules (Secure Boot lockdown or module.sig_enforce=1): %v", which, e.Err)
}

// Unwrap returns the errno.
func (e *SignatureError) Unwrap() error { return e.Err }

// Hint says what to do about it.
func (e *SignatureError) Hint() string {
	return "build the initramfs from this kernel's own signed modules, copied byte for byte " +
		"(a stripped or re-compressed .ko loses its appended signature), or boot with Secure Boot off"
}

// signatureRefusal returns a *SignatureError when err is how the kernel
// refuses a module for its signature, else err. EPERM is lockdown's answer
// to an unsigned module (unsigned, unknown key or unsupported crypto);
// EKEYREJECTED a signature that does not verify, or any refusal under
// module.sig_enforce=1; EBADMSG a malformed one. EPERM has other causes
// (no CAP_SYS_MODULE, modules disabled), which PID 1 in an initramfs does
// not meet.
func signatureRefusal(mod string, deps []string, err error) error {
	for _, errno := range []unix.Errno{unix.EPERM, unix.EKEYREJECTED, unix.EBADMSG} {
		if errors.Is(err, errno) {
			return &SignatureError{Module: mod, Deps: deps, Err: err}
		}
	}
	return err
}
