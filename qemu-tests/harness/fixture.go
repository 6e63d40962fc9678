package harness

import (
	"bufio"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Fixture images, built by BuildFixtures. Paths are in the cache: serve them
// with Nginx.AddFile, never modify them.
type Fixtures struct {
	Plain     string // plain.squashfs: the busybox root, fixture-id "plain"
	LiveOS    string // liveos.squashfs: LiveOS/rootfs.img (ext4) of the root, fixture-id "liveos"
	Big       string // big.squashfs: the root (fixture-id "big") + /data/random.bin, uncompressed
	NotSquash string // notsquash.img: pseudo-random bytes

	// BigDataSHA256 is the SHA-256 (hex) of /data/random.bin in big.squashfs.
	BigDataSHA256 string
}

// HostBusybox is Debian busybox-static's binary: the one program of the
// busybox roots (BusyboxRoot).
const HostBusybox = "/bin/busybox"

// Fixture parameters. Changing any of them (or ReportInit, the host's
// busybox or the host tools' versions) changes the recipe hash: the fixture
// is rebuilt under a new cache key.
const (
	recipeVersion = "streamroot-fixtures-1"
	bigDataSize   = 48 << 20
	bigDataSeed   = "streamroot big.squashfs /data/random.bin"
	notSquashSize = 8 << 20
	notSquashSeed = "streamroot notsquash.img"
	liveOSImgSize = "64M"
	buildTimeout  = 10 * time.Minute
)

// rootDirs are the busybox root's directories.
var rootDirs = []string{"bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "run", "tmp", "var", "root"}

// Fixtures builds (or finds in the cache) the fixture images, once per Env.
func (e *Env) Fixtures(t testing.TB) *Fixtures {
	t.Helper()
	e.fixOnce.Do(func() {
		start := time.Now()
		e.fix, e.fixErr = BuildFixtures(e.Cache, t.Logf)
		if e.fixErr == nil {
			t.Logf("fixtures ready in %s (cache %s)", time.Since(start).Round(time.Millisecond), e.Cache)
		}
	})
	if e.fixErr != nil {
		t.Fatalf("fixtures: %v", e.fixErr)
	}
	return e.fix
}

// fixture is one cached build: <cache>/fixtures/<name>-<hash>/<file>, with
// meta.json describing it.
type fixture struct {
	name   string // cache entry prefix and file name
	recipe string // everything the output depends on
	build  func(work, out string) (meta map[string]string, err error)
	// lock is the lock file's name in the fixtures directory (default
	// ".lock"); lockWait bounds the wait for it (default buildTimeout).
	// Slow builds (debootstrap) take their own lock, so they do not hold up
	// the quick ones.
	lock     string
	lockWait time.Duration
}

// BuildFixtures returns the fixture set under cache, building what is
// missing. Builds go to a temporary directory renamed into place, under a
// lock file, so concurrent test processes share the work.
func BuildFixtures(cache string, logf func(string, ...any)) (*Fixtures, error) {
	dir, base, err := fixtureBase(cache)
	if err != nil {
		return nil, err
	}
	root := func(id string, extra func(root string) error) func(string) (string, error) {
		return func(work string) (string, error) {
			r := filepath.Join(work, "root-"+id)
			if err := makeBusyboxRoot(r, id); err != nil {
				return "", err
			}
			if extra != nil {
				if err := extra(r); err != nil {
					return "", err
				}
			}
			return r, nil
		}
	}
	var bigSHA string
	set := []fixture{
		{
			name:   "plain.squashfs",
			recipe: base + "\nsquashfs -comp xz of root plain",
			build: func(work, out string) (map[string]string, error) {
				r, err := root("plain", nil)(work)
				if err != nil {
					return nil, err
				}
				return nil, mksquashfs(r, out, "-comp", "xz")
			},
		},
		{
			name:   "liveos.squashfs",
			recipe: base + "\nsquashfs -comp xz of LiveOS/rootfs.img = mkfs.ext4 -q -F -d <root liveos> -L rootfs " + liveOSImgSize,
			build: func(work, out string) (map[string]string, error) {
				r, err := root("liveos", nil)(work)
				if err != nil {
					return nil, err
				}
				layout := filepath.Join(work, "layout")
				if err := liveOSRootfs(layout, r, liveOSImgSize); err != nil {
					return nil, err
				}
				return nil, mksquashfs(layout, out, "-comp", "xz")
			},
		},
		{
			name: "big.squashfs",
			recipe: base + fmt.Sprintf("\nsquashfs uncompressed of root big + /data/random.bin %d bytes ChaCha8(sha256(%q))",
				bigDataSize, bigDataSeed),
			build: func(work, out string) (map[string]string, error) {
				var sum string
				r, err := root("big", func(r string) error {
					if err := os.MkdirAll(filepath.Join(r, "data"), 0o755); err != nil {
						return err
					}
					var err error
					sum, err = writeRandom(filepath.Join(r, "data", "random.bin"), bigDataSeed, bigDataSize)
					return err
				})(work)
				if err != nil {
					return nil, err
				}
				if err := mksquashfs(r, out, "-noI", "-noD", "-noF", "-noX"); err != nil {
					return nil, err
				}
				return map[string]string{"data_sha256": sum}, nil
			},
		},
		{
			name:   "notsquash.img",
			recipe: recipeVersion + fmt.Sprintf("\n%d bytes ChaCha8(sha256(%q))", notSquashSize, notSquashSeed),
			build: func(work, out string) (map[string]string, error) {
				_, err := writeRandom(out, notSquashSeed, notSquashSize)
				return nil, err
			},
		},
	}
	paths := map[string]string{}
	for _, f := range set {
		p, meta, err := f.ensure(dir, logf)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
		paths[f.name] = p
		if f.name == "big.squashfs" {
			bigSHA = meta["data_sha256"]
		}
	}
	if len(bigSHA) != 64 {
		return nil, fmt.Errorf("big.squashfs: meta.json lacks data_sha256")
	}
	return &Fixtures{
		Plain: paths["plain.squashfs"], LiveOS: paths["liveos.squashfs"],
		Big: paths["big.squashfs"], NotSquash: paths["notsquash.img"],
		BigDataSHA256: bigSHA,
	}, nil
}

// ensure returns the cached file of f, building it if needed.
func (f fixture) ensure(dir string, logf func(string, ...any)) (string, map[string]string, error) {
	sum := sha256.Sum256([]byte(f.recipe))
	key := f.name + "-" + hex.EncodeToString(sum[:8])
	final := filepath.Join(dir, key)
	out := filepath.Join(final, f.name)
	if meta, err := readMeta(final); err == nil {
		return out, meta, nil
	}
	lock, wait := f.lock, f.lockWait
	if lock == "" {
		lock = ".lock"
	}
	if wait == 0 {
		wait = buildTimeout
	}
	unlock, err := lockFile(filepath.Join(dir, lock), wait)
	if err != nil {
		return "", nil, err
	}
	defer unlock()
	if meta, err := readMeta(final); err == nil { // built while we waited
		return out, meta, nil
	}
	start := time.Now()
	work, err := os.MkdirTemp(dir, ".build-"+f.name+"-")
	if err != nil {
		return "", nil, err
	}
	defer os.RemoveAll(work)
	tmpFinal := filepath.Join(work, "entry")
	if err := os.Mkdir(tmpFinal, 0o755); err != nil {
		return "", nil, err
	}
	meta, err := f.build(work, filepath.Join(tmpFinal, f.name))
	if err != nil {
		return "", nil, err
	}
	if meta == nil {
		meta = map[string]string{}
	}
	st, err := os.Stat(filepath.Join(tmpFinal, f.name))
	if err != nil {
		return "", nil, err
	}
	fileSum, err := SHA256File(filepath.Join(tmpFinal, f.name))
	if err != nil {
		return "", nil, err
	}
	meta["name"], meta["size"], meta["sha256"] = f.name, fmt.Sprint(st.Size()), fileSum
	meta["recipe"] = f.recipe
	os.Chmod(filepath.Join(tmpFinal, f.name), 0o444)
	js, _ := json.MarshalIndent(meta, "", "  ")
	if err := os.WriteFile(filepath.Join(tmpFinal, "meta.json"), append(js, '\n'), 0o644); err != nil {
		return "", nil, err
	}
	os.RemoveAll(final) // a partial entry without meta.json
	if err := os.Rename(tmpFinal, final); err != nil {
		return "", nil, err
	}
	// Drop entries of older recipes, once they have been unused for a day:
	// another test run (another checkout) may still be booting from one.
	if old, _ := filepath.Glob(filepath.Join(dir, f.name+"-*")); len(old) > 0 {
		for _, o := range old {
			if st, err := os.Stat(o); err == nil && o != final && time.Since(st.ModTime()) > 24*time.Hour {
				os.RemoveAll(o)
			}
		}
	}
	logf("fixture %s built in %s: %s (%d bytes)", f.name, time.Since(start).Round(time.Millisecond), out, st.Size())
	return out, meta, nil
}

func readMeta(entry string) (map[string]string, error) {
	b, err := os.ReadFile(filepath.Join(entry, "meta.json"))
	if err != nil {
		return nil, err
	}
	var meta map[string]string
	if err := json.Unmarshal(b, &meta); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(entry, meta["name"])); err != nil {
		return nil, err
	}
	return meta, nil
}

// fixtureBase makes the fixtures' directory under cache and returns it
// with the recipe every fixture starts from.
func fixtureBase(cache string) (dir, recipe string, err error) {
	dir = filepath.Join(cache, "fixtures")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	recipe, err = baseRecipe()
	return dir, recipe, err
}

// baseRecipe is what every root fixture depends on: the REPORT INIT, the
// host busybox and the tools' versions.
func baseRecipe() (string, error) {
	bb, err := SHA256File(HostBusybox)
	if err != nil {
		return "", err
	}
	sq, err := runCmd(time.Minute, "mksquashfs", "-version")
	if err != nil {
		return "", err
	}
	e2, _ := runCmd(time.Minute, "mkfs.ext4", "-V")
	first := func(s string) string { l, _, _ := strings.Cut(strings.TrimSpace(s), "\n"); return l }
	return strings.Join([]string{
		recipeVersion,
		"dirs " + strings.Join(rootDirs, " "),
		"busybox " + bb,
		"mksquashfs " + first(sq),
		"mke2fs " + first(e2),
		"init " + ReportInit,
	}, "\n"), nil
}

// makeBusyboxRoot lays out the fixture root at dir: BusyboxRoot with the
// REPORT INIT as /sbin/init and /etc/fixture-id.
func makeBusyboxRoot(dir, id string) error {
	return BusyboxRoot(dir, []RootFile{
		{"sbin/init", ReportInit, 0o755},
		{"etc/fixture-id", id + "\n", 0o644},
		{"etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644},
		{"etc/group", "root:x:0:\n", 0o644},
	})
}

// RootFile is a file BusyboxRoot writes into the tree.
type RootFile struct {
	Path, Data string // Path relative to the root
	Mode       os.FileMode
}

// BusyboxRoot lays out a busybox root at dir (the demo's and the fixtures'
// roots): the usual top directories, the host's static busybox as
// /bin/busybox with a link for each applet but init, and files, which
// should include the root's /sbin/init.
func BusyboxRoot(dir string, files []RootFile) error {
	if err := CheckStatic(HostBusybox); err != nil {
		return err
	}
	for _, d := range rootDirs {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		return err
	}
	bb := filepath.Join(dir, "bin", "busybox")
	if err := CopyFile(HostBusybox, bb); err != nil {
		return err
	}
	if err := os.Chmod(bb, 0o755); err != nil {
		return err
	}
	list, err := runCmd(time.Minute, HostBusybox, "--list-full")
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(strings.NewReader(list))
	for sc.Scan() {
		applet := strings.TrimSpace(sc.Text())
		switch applet {
		case "", "bin/busybox", "sbin/init", "linuxrc":
			continue
		}
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(applet)), 0o755); err != nil {
			return err
		}
		if err := os.Symlink("/bin/busybox", filepath.Join(dir, applet)); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.Path), []byte(f.Data), f.Mode); err != nil {
			return err
		}
	}
	return nil
}

// CheckStatic fails unless path is an ELF without an interpreter (a static
// or static-pie binary, which runs in a root without libc).
func CheckStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w (install Debian's busybox-static; builder/deps.sh does, as root)", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked; a busybox root needs busybox-static (apt-get install busybox-static)", path)
		}
	}
	return nil
}

// liveOSRootfs lays out dracut's live layout in dir: LiveOS/rootfs.img,
// an ext4 of size (mkfs.ext4's notation) holding the tree root, made with
// mkfs.ext4's extra options opts.
func liveOSRootfs(dir, root, size string, opts ...string) error {
	if err := os.MkdirAll(filepath.Join(dir, "LiveOS"), 0o755); err != nil {
		return err
	}
	img := filepath.Join(dir, "LiveOS", "rootfs.img")
	args := slices.Concat([]string{"-q", "-F"}, opts, []string{"-d", root, "-L", "rootfs", img, size})
	_, err := runCmd(buildTimeout, "mkfs.ext4", args...)
	return err
}

// mksquashfs makes a reproducible squashfs of dir, owned by root.
func mksquashfs(dir, out string, comp ...string) error {
	args := append([]string{dir, out, "-noappend", "-all-root", "-no-progress", "-quiet",
		"-mkfs-time", "0", "-all-time", "0"}, comp...)
	_, err := runCmd(buildTimeout, "mksquashfs", args...)
	return err
}

// writeRandom writes size bytes of ChaCha8 output seeded by sha256(seed)
// (incompressible, reproducible) and returns their SHA-256.
func writeRandom(path, seed string, size int64) (string, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	rng := rand.NewChaCha8(sha256.Sum256([]byte(seed)))
	if _, err := io.CopyN(io.MultiWriter(f, h), rng, size); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// SHA256File returns the SHA-256 (hex) of a file's contents.
func SHA256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
