package builder

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
)

// readStaticELF reads an executable for the initramfs and checks that it
// is a statically linked ELF file. The initramfs carries no dynamic loader
// or libc, so a dynamic binary would fail at boot with a bare ENOENT from
// execve — or, for /init, a kernel panic. A PT_INTERP program header is
// what makes the kernel look for a loader; static-pie binaries have none
// and are accepted.
func readStaticELF(path, what string) ([]byte, elf.Machine, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", what, err)
	}
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return nil, 0, fmt.Errorf("%s %s: not an ELF executable: %w", what, path, err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return nil, 0, fmt.Errorf("%s %s: ELF type %v is not an executable", what, path, f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			interp := "?"
			if b, err := readInterp(p); err == nil {
				interp = b
			}
			return nil, 0, fmt.Errorf("%s %s is dynamically linked (interpreter %s); the initramfs has no libc: "+
				"use a static build (Go: CGO_ENABLED=0; Debian: busybox-static)", what, path, interp)
		}
	}
	return b, f.Machine, nil
}

func readInterp(p *elf.Prog) (string, error) {
	if p.Filesz > 4096 {
		return "", fmt.Errorf("PT_INTERP of %d bytes", p.Filesz)
	}
	b := make([]byte, p.Filesz)
	if _, err := p.ReadAt(b, 0); err != nil {
		return "", err
	}
	return string(bytes.TrimRight(b, "\x00")), nil
}

// busyboxApplets are linked to /bin/busybox: enough to look around, fix
// the network and finish a boot by hand from the emergency shell.
var busyboxApplets = []string{
	"sh", "ash",
	"ls", "cat", "ip", "dmesg", "mount", "umount", "ps", "mkdir", "rm", "cp", "mv", "ln",
	"echo", "grep", "sed", "vi", "less", "free", "df", "ping", "wget", "sha256sum",
	"switch_root", "reboot", "poweroff", "halt", "sync", "sleep",
	// Beyond the basics: modules, block devices and text tools a
	// debugging session reaches for.
	"modprobe", "insmod", "lsmod", "rmmod", "modinfo", "losetup", "blockdev",
	"find", "head", "tail", "wc", "awk", "tr", "cut", "sort", "uniq", "xargs",
	"hexdump", "stat", "du", "dd", "tee", "touch", "chmod", "chroot", "kill",
	"uname", "env", "test", "[", "true", "false", "mknod", "readlink", "nslookup",
	"nc", "udhcpc", "ifconfig", "route", "top", "uptime", "which", "more",
}

// addShell installs busybox as /bin/busybox with its applet links, and
// /sbin/modprobe for the kernel's module requests. The links are relative
// so they stay valid under any mount point.
func addShell(im *image, path string, initMachine elf.Machine) error {
	b, m, err := readStaticELF(path, "-shell")
	if err != nil {
		return err
	}
	if m != initMachine {
		return fmt.Errorf("-shell %s is built for %v but -init for %v", path, m, initMachine)
	}
	if err := im.file("/bin/busybox", 0o755, b); err != nil {
		return err
	}
	for _, a := range busyboxApplets {
		if err := im.symlink("/bin/"+a, "busybox"); err != nil {
			return err
		}
	}
	// The kernel runs /sbin/modprobe (CONFIG_MODPROBE_PATH) when it wants
	// a module itself: a crypto algorithm (libcrc32c needs "crc32c" and
	// fails with ENOENT without it), a filesystem type on mount, a
	// protocol family on socket(). With this link those requests are
	// served from the image's own module tree instead of failing.
	return im.symlink("/sbin/modprobe", "../bin/busybox")
}
