package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/streamroot/streamroot/pkg/atomicfile"
	"github.com/streamroot/streamroot/pkg/uki"
)

const ukiUsage = `Usage: streamroot uki --kernel FILE --initramfs FILE --cmdline "ARGS" -o OUT.efi
                      [--key KEY --cert CERT] [--stub linuxx64.efi.stub]

Packs the kernel, the streamroot initramfs and the kernel command line into
one unified kernel image (UKI): systemd's EFI stub (Debian's
systemd-boot-efi) with .cmdline, .initrd and .linux sections. The firmware,
or shim, loads it as one EFI program; the stub starts the kernel with the
embedded initramfs and command line (under Secure Boot it ignores any
command line the loader passes).

With --key and --cert the UKI is signed with sbsign (Debian's sbsigntool),
so Secure Boot covers the initramfs and the command line too: put the
image's pin (streamroot.manifest=sha256:..., see 'streamroot manifest') on
--cmdline and every block of the root is covered as well. A key with a
passphrase makes sbsign ask for it on the terminal.
`

// ukiStub is where Debian's systemd-boot-efi puts the stub.
const ukiStub = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"

// maxCmdline is the x86 kernel's COMMAND_LINE_SIZE less its NUL: a longer
// line is cut short by the kernel, silently.
const maxCmdline = 2047

func runUKI(ctx context.Context, e *env, args []string) error {
	fs := newFlags("uki", ukiUsage)
	kernel := fs.String("kernel", "", "kernel `FILE` (an EFI-bootable bzImage, e.g. build/kernel/vmlinuz), required")
	initramfs := fs.String("initramfs", "", "initramfs `FILE` (e.g. build/initramfs.img), required")
	cmdline := fs.String("cmdline", "", "the kernel command line (`ARGS`), required")
	out := fs.String("o", "", "write the UKI to `OUT.efi`, required")
	key := fs.String("key", "", "sign with this private `KEY` (PEM; with --cert)")
	cert := fs.String("cert", "", "the signing certificate `CERT` (PEM; with --key)")
	stub := fs.String("stub", ukiStub, "the EFI `stub` (systemd-boot-efi's linuxx64.efi.stub, unsigned)")
	pos, err := fs.parse(e, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("unexpected argument %q (all uki arguments are flags)", pos[0])
	}
	for _, f := range []struct{ name, v string }{{"kernel", *kernel}, {"initramfs", *initramfs}, {"cmdline", *cmdline}, {"o", *out}} {
		if strings.TrimSpace(f.v) == "" {
			return usagef("--%s is required", f.name)
		}
	}
	if (*key == "") != (*cert == "") {
		return usagef("--key and --cert go together (sbsign needs both)")
	}
	if len(*cmdline) > maxCmdline {
		return usagef("--cmdline is %d bytes; the kernel keeps only %d", len(*cmdline), maxCmdline)
	}
	if strings.ContainsAny(*cmdline, "\x00\n") {
		return usagef("--cmdline contains a NUL or a newline")
	}
	read := func(path, what, hint string) ([]byte, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, withHint(fmt.Errorf("%s: %w", what, err), "%s", hint)
		}
		return b, nil
	}
	stubData, err := read(*stub, "stub", "install Debian's systemd-boot-efi, or give --stub")
	if err != nil {
		return err
	}
	k, err := read(*kernel, "kernel", "give the kernel's path (make kernel writes build/kernel/vmlinuz)")
	if err != nil {
		return err
	}
	ird, err := read(*initramfs, "initramfs", "give the initramfs's path (make initramfs writes build/initramfs.img)")
	if err != nil {
		return err
	}
	img, err := uki.Build(stubData, uki.Sections(k, ird, *cmdline))
	if err != nil {
		return withHint(fmt.Errorf("%s: %w", *stub, err), "give systemd-boot-efi's unsigned linuxx64.efi.stub with --stub")
	}
	if *key == "" {
		if err := atomicfile.WriteFile(*out, img, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "uki: %s %d bytes, unsigned\n", *out, len(img))
		return nil
	}
	if err := signUKI(ctx, img, *key, *cert, *out); err != nil {
		return err
	}
	st, err := os.Stat(*out)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "uki: %s %d bytes, signed with %s\n", *out, st.Size(), *cert)
	return nil
}

// signUKI signs img with sbsign into out: the unsigned image and sbsign's
// output are temporary files beside out, renamed over it once sbsign
// succeeded, so out is never a half-written or unsigned image.
func signUKI(ctx context.Context, img []byte, key, cert, out string) error {
	sbsign, err := exec.LookPath("sbsign")
	if err != nil {
		return withHint(fmt.Errorf("sbsign: %w", err), "install Debian's sbsigntool")
	}
	dir, base := filepath.Split(out)
	tmp, err := os.MkdirTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	unsigned, signed := filepath.Join(tmp, "unsigned.efi"), filepath.Join(tmp, "signed.efi")
	if err := os.WriteFile(unsigned, img, 0o644); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, sbsign, "--key", key, "--cert", cert, "--output", signed, unsigned)
	var msg bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, &msg, &msg
	if err := cmd.Run(); err != nil {
		return withHint(fmt.Errorf("sbsign --key %s --cert %s: %w: %s", key, cert, err, strings.TrimSpace(msg.String())),
			"check the key and the certificate are a PEM pair (openssl x509 -noout -modulus and openssl pkey -noout -modulus agree)")
	}
	if err := os.Chmod(signed, 0o644); err != nil {
		return err
	}
	return os.Rename(signed, out)
}
