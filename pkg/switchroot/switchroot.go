// Package switchroot hands PID 1 over to the real root: it moves the API
// filesystems into it, frees the initramfs, makes it "/" and execs its init.
//
// Deleting files is the dangerous part, so it only happens when this process
// is PID 1 and "/" is the initramfs (ramfs or tmpfs), and never crosses into
// another filesystem (booster's checks). The init gets an explicit argv and
// environment (Talos), not whatever the initramfs happened to have.
package switchroot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// movedMounts are the mounts carried into the new root.
func movedMounts() []string { return []string{"/dev", "/proc", "/sys", "/run"} }

// Switch makes newRoot "/" and executes init there with argv and env. It
// does not return on success.
func Switch(newRoot, init string, argv, env []string) error {
	if os.Getpid() != 1 {
		return errors.New("switch_root: not PID 1; refusing to delete the initramfs")
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil {
		return fmt.Errorf("switch_root: statfs /: %w", err)
	}
	if st.Type != unix.RAMFS_MAGIC && st.Type != unix.TMPFS_MAGIC {
		return fmt.Errorf("switch_root: / is not an initramfs (fs type %#x); refusing to delete it", st.Type)
	}
	var rootSt, newSt unix.Stat_t
	if err := unix.Stat("/", &rootSt); err != nil {
		return err
	}
	if err := unix.Stat(newRoot, &newSt); err != nil {
		return fmt.Errorf("switch_root: %s: %w", newRoot, err)
	}
	if rootSt.Dev == newSt.Dev {
		return fmt.Errorf("switch_root: %s is not a mount point", newRoot)
	}
	// Check before changing anything: after the deletion there is no way back.
	// Lstat: init is often an absolute symlink (/usr/sbin/init →
	// /lib/systemd/systemd) that only resolves once newRoot is "/".
	if _, err := os.Lstat(filepath.Join(newRoot, init)); err != nil {
		return fmt.Errorf("switch_root: init %s in %s: %w", init, newRoot, err)
	}

	for _, m := range movedMounts() {
		dst := filepath.Join(newRoot, m)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return fmt.Errorf("switch_root: %w", err)
		}
		if err := unix.Mount(m, dst, "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("switch_root: move %s to %s: %w", m, dst, err)
		}
	}
	if err := unix.Chdir(newRoot); err != nil {
		return fmt.Errorf("switch_root: chdir %s: %w", newRoot, err)
	}
	// Free the initramfs's memory. Failures only cost RAM, so they do not
	// stop the boot.
	removeTree("/", rootSt.Dev)
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("switch_root: move %s to /: %w", newRoot, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("switch_root: chroot: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("switch_root: chdir /: %w", err)
	}
	if err := unix.Exec(init, argv, env); err != nil {
		return fmt.Errorf("switch_root: exec %s: %w", init, err)
	}
	return nil
}

// removeTree deletes everything under dir that is on device dev.
func removeTree(dir string, dev uint64) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil || st.Dev != dev {
			continue // a mount point (the new root itself): leave it alone
		}
		if e.IsDir() {
			removeTree(p, dev)
			_ = unix.Rmdir(p)
			continue
		}
		_ = unix.Unlink(p)
	}
}
