// Package liveroot turns a boot image into the root at /sysroot: it follows
// the layers pkg/imgfmt names by magic (ISO 9660 → <rd.live.dir>/
// <rd.live.squashimg> → squashfs or erofs → <rd.live.dir>/rootfs.img ext4),
// loop-mounts each layer read-only and puts a writable overlayfs with a
// tmpfs upper on top, as dracut's dmsquash-live does with
// rd.live.overlay.overlayfs.
package liveroot

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/streamroot/streamroot/pkg/imgfmt"
	"github.com/u-root/u-root/pkg/mount/loop"
	"golang.org/x/sys/unix"
)

// Options place the layers.
type Options struct {
	Base        string // where layer mounts go, e.g. /run/initramfs (kept by the booted system)
	Target      string // where the root goes, e.g. /sysroot
	LiveDir     string // rd.live.dir: directory of the image inside an ISO (LiveOS)
	SquashImg   string // rd.live.squashimg: image name inside the ISO (squashfs.img)
	OverlaySize int    // rd.live.overlay.size in MiB; 0: tmpfs default (half the RAM)
}

// Layer is one mounted filesystem of the stack.
type Layer struct {
	Kind       imgfmt.Kind `json:"kind"`
	Source     string      `json:"source"` // file or device that was mounted
	Device     string      `json:"device"` // /dev/loopN or /dev/nbdN
	Mountpoint string      `json:"mountpoint"`
}

// Root is the assembled root.
type Root struct {
	Layers []Layer // bottom (the image) first
	Lower  string  // read-only root filesystem under the overlay
	Upper  string  // tmpfs holding the overlay's upper and work dirs
	Target string
}

// Assemble mounts image and its inner layers and the overlay at o.Target.
func Assemble(image string, o Options, log *slog.Logger) (*Root, error) {
	r := &Root{Target: o.Target}
	layout := imgfmt.Layout{LiveDir: o.LiveDir, SquashImg: o.SquashImg}
	cur := image
	for depth := 0; ; depth++ {
		if depth > 3 {
			return nil, fmt.Errorf("%s: layers nested too deep", image)
		}
		kind, err := imgfmt.DetectFile(cur)
		if err != nil {
			return nil, err
		}
		mp := filepath.Join(o.Base, string(kind))
		if kind == imgfmt.Ext4 && depth > 0 {
			mp = filepath.Join(o.Base, "rootfs")
		}
		dev, err := mountLoop(cur, mp, kind)
		if err != nil {
			return nil, err
		}
		r.Layers = append(r.Layers, Layer{Kind: kind, Source: cur, Device: dev, Mountpoint: mp})
		log.Info("mounted", "layer", kind, "image", cur, "device", dev, "at", mp)

		next, err := Next(mp, kind, layout)
		if err != nil {
			return nil, fmt.Errorf("ISO %s has no %s/%s (rd.live.dir=%s rd.live.squashimg=%s): %w",
				image, o.LiveDir, o.SquashImg, o.LiveDir, o.SquashImg, err)
		}
		if next == "" {
			r.Lower = mp
			break
		}
		cur = next
	}
	if err := overlay(r, o); err != nil {
		return nil, err
	}
	if err := DracutNames(r, o.Base); err != nil {
		// The root boots without them: only scripts written for dracut look.
		log.Warn("cannot leave dracut's live names", "err", err)
	}
	return r, nil
}

// DracutNames leaves under base (/run/initramfs) the names dracut's
// dmsquash-live gives a live boot, for scripts in the booted root written
// against it: livedev, a link to the device the image is on (here
// /dev/nbdN or /dev/loopN), and, when the image is an ISO, live, the
// medium's mount (a link to its layer's mountpoint).
func DracutNames(r *Root, base string) error {
	if len(r.Layers) == 0 {
		return errors.New("no layers")
	}
	bottom := r.Layers[0]
	links := [][2]string{{bottom.Device, filepath.Join(base, "livedev")}}
	if bottom.Kind == imgfmt.ISO9660 {
		rel, err := filepath.Rel(base, bottom.Mountpoint)
		if err != nil {
			return err
		}
		links = append(links, [2]string{rel, filepath.Join(base, "live")})
	}
	for _, l := range links {
		if err := os.Symlink(l[0], l[1]); err != nil {
			return err
		}
	}
	return nil
}

// Next is the file a boot mounts next inside the layer of the given kind
// mounted at dir, by the layout rules of imgfmt.Layout.Inner, or "" when
// that layer is the root. An ISO without its live image is an error
// (os.Stat's: it names the path).
func Next(dir string, kind imgfmt.Kind, layout imgfmt.Layout) (string, error) {
	inner := layout.Inner(kind, func(p string) bool {
		st, err := os.Stat(filepath.Join(dir, p))
		return err == nil && st.Mode().IsRegular()
	})
	if inner == "" {
		return "", nil
	}
	p := filepath.Join(dir, inner)
	if kind == imgfmt.ISO9660 {
		if _, err := os.Stat(p); err != nil {
			return "", err
		}
	}
	return p, nil
}

// mountLoop attaches file read-only to a free loop device and mounts it.
func mountLoop(file, mp string, kind imgfmt.Kind) (string, error) {
	if err := os.MkdirAll(mp, 0o755); err != nil {
		return "", err
	}
	data := ""
	if kind == imgfmt.Ext4 {
		// A read-only lower must not replay a journal: that would write.
		data = "noload"
	}
	if st, err := os.Stat(file); err == nil && st.Mode()&os.ModeDevice != 0 {
		// Already a block device (the block daemon's nbd): no loop needed.
		if err := unix.Mount(file, mp, string(kind), unix.MS_RDONLY, data); err != nil {
			return "", fmt.Errorf("mount %s (%s) at %s: %w", file, kind, mp, err)
		}
		return file, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	dev, lf, err := attach(f)
	if err != nil {
		return "", fmt.Errorf("loop-attach %s: %w", file, err)
	}
	defer lf.Close()
	if err := unix.Mount(dev, mp, string(kind), unix.MS_RDONLY, data); err != nil {
		_ = loop.ClearFD(int(lf.Fd()))
		return "", fmt.Errorf("mount %s (%s on %s) at %s: %w", file, kind, dev, mp, err)
	}
	return dev, nil
}

// attach binds f to a free loop device with autoclear, so the device goes
// away with the last unmount. u-root's loop.SetFile opens read-write and
// sets no flags, which is why this is done here.
func attach(f *os.File) (string, *os.File, error) {
	for try := 0; try < 8; try++ {
		dev, err := loop.FindDevice()
		if err != nil {
			return "", nil, fmt.Errorf("find a free loop device (is the loop module loaded?): %w", err)
		}
		lf, err := os.OpenFile(dev, os.O_RDONLY, 0)
		if err != nil {
			return "", nil, err
		}
		if err := loop.SetFD(int(lf.Fd()), int(f.Fd())); err != nil {
			lf.Close()
			if errors.Is(err, unix.EBUSY) {
				continue // taken between GET_FREE and SET_FD
			}
			return "", nil, err
		}
		info := unix.LoopInfo64{Flags: unix.LO_FLAGS_AUTOCLEAR | unix.LO_FLAGS_READ_ONLY}
		copy(info.File_name[:], path.Base(f.Name()))
		if err := unix.IoctlLoopSetStatus64(int(lf.Fd()), &info); err != nil {
			_ = loop.ClearFD(int(lf.Fd()))
			lf.Close()
			return "", nil, fmt.Errorf("set loop status: %w", err)
		}
		return dev, lf, nil
	}
	return "", nil, errors.New("no free loop device")
}

// overlay mounts the writable root: the image read-only below, a tmpfs above.
func overlay(r *Root, o Options) error {
	r.Upper = filepath.Join(o.Base, "overlay")
	if err := os.MkdirAll(r.Upper, 0o755); err != nil {
		return err
	}
	opts := "mode=0755"
	if o.OverlaySize > 0 {
		opts += fmt.Sprintf(",size=%dm", o.OverlaySize)
	}
	if err := unix.Mount("overlay-upper", r.Upper, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount tmpfs for the overlay at %s: %w", r.Upper, err)
	}
	upper, work := filepath.Join(r.Upper, "upper"), filepath.Join(r.Upper, "work")
	for _, d := range []string{upper, work, o.Target} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	data := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", r.Lower, upper, work)
	if err := unix.Mount("overlay", o.Target, "overlay", 0, data); err != nil {
		return fmt.Errorf("mount overlay (%s) at %s: %w", data, o.Target, err)
	}
	return nil
}

// FindInit returns the first of candidates that is an executable file inside
// root, following symlinks as the root would see them (absolute links are
// relative to root, not to the initramfs).
func FindInit(root string, candidates ...string) (string, error) {
	for _, c := range candidates {
		if c == "" {
			continue
		}
		p, err := resolveIn(root, c)
		if err != nil {
			continue
		}
		st, err := os.Stat(filepath.Join(root, p))
		if err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return c, nil
		}
	}
	return "", fmt.Errorf("no init in the image (looked for %s)", strings.Join(nonEmpty(candidates), ", "))
}

func nonEmpty(s []string) []string {
	var out []string
	for _, x := range s {
		if x != "" {
			out = append(out, x)
		}
	}
	return out
}

// resolveIn resolves p inside root as if root were "/".
func resolveIn(root, p string) (string, error) {
	parts := strings.Split(strings.TrimPrefix(path.Clean("/"+p), "/"), "/")
	cur := "/"
	for hops := 0; len(parts) > 0; {
		name := parts[0]
		parts = parts[1:]
		next := path.Join(cur, name)
		st, err := os.Lstat(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if st.Mode()&os.ModeSymlink == 0 {
			cur = next
			continue
		}
		if hops++; hops > 40 {
			return "", fmt.Errorf("%s: too many symlinks", p)
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if !path.IsAbs(target) {
			target = path.Join(cur, target)
		}
		parts = append(strings.Split(strings.TrimPrefix(path.Clean(target), "/"), "/"), parts...)
		cur = "/"
	}
	return cur, nil
}
