package switchroot

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// apiMounts are the kernel's API filesystems PID 1 mounts first; Switch
// later moves them (movedMounts) into the real root.
var apiMounts = []struct {
	src, dst, fstype string
	flags            uintptr
	data             string
}{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
	{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "gid=5,mode=0620,ptmxmode=000"},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
}

// MountAPI mounts /proc, /sys, /dev (with /dev/pts) and /run. One already
// mounted (the kernel's own devtmpfs) is left as it is.
func MountAPI() error {
	for _, m := range apiMounts {
		if err := os.MkdirAll(m.dst, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.src, m.dst, m.fstype, m.flags, m.data); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.dst, err)
		}
	}
	return nil
}
