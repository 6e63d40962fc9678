package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// StreamFixtures are the images of the block-daemon tests (stream, lazy,
// ISO, NBD). Their root's init is StreamInit, which can wait for the
// background fill and for the server to go away before it reads.
type StreamFixtures struct {
	Stream     string // stream.squashfs: busybox root + /data/random.bin (48 MiB), fixture-id "stream"
	TreeSHA256 string // digest over every file of stream.squashfs (see treeDigest)
	DataSHA256 string // sha256 of /data/random.bin
	Huge       string // huge.squashfs: busybox root + /data/huge.bin (1 GiB), fixture-id "huge"
	HugeSHA256 string // sha256 of huge.squashfs itself
	ISO        string // live.iso: LiveOS/squashfs.img ⊃ LiveOS/rootfs.img (ext4) = a root with fixture-id "iso" + 1 GiB data
}

const (
	hugeDataSize  = 1 << 30
	hugeDataSeed  = "streamroot huge.squashfs /data/huge.bin"
	isoDataSeed   = "streamroot live.iso /data/huge.bin"
	isoRootfsSize = "1200M"
)

// treeDigest is run on the host over the image's tree and by StreamInit in
// the guest over the mounted squashfs: the same busybox tools on both sides,
// so the two outputs are comparable byte for byte.
const treeDigest = `busybox find . -type f | busybox sort | busybox xargs busybox sha256sum | busybox sha256sum | busybox cut -d' ' -f1`

// StreamInit is the stream fixtures' /sbin/init. fixture.mode= on the
// kernel command line picks what it does before reporting:
//
//	afterfill  wait for the block daemon's "fill complete", say
//	           STREAMROOT-FILL-DONE, wait until the server is gone (its
//	           /alive file no longer answers), then hash every file
//	lazyfail   say STREAMROOT-BOOTED, wait until the server is gone, then
//	           time a read of blocks never read before (it must fail)
//	hash       hash /data/random.bin, then report
//	sleepread  say STREAMROOT-BOOTED, wait 10 s (the test restarts the
//	           server meanwhile), then read blocks never read before and
//	           hash /data/random.bin
//	trace      wait (bounded) until the block daemon's boot trace
//	           (/run/initramfs/blockd.trace) holds chunks and stays the
//	           same for 3 s, then report it
//	(none)     report at once
const StreamInit = `#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
premounted=""
if [ -r /proc/mounts ]; then premounted="/proc"; else mount -t proc proc /proc; fi
for m in /sys /dev /run; do
	awk -v m="$m" '$2 == m { found = 1 } END { exit !found }' /proc/mounts && premounted="$premounted $m"
done
dmesg -n 1
uptime=$(cut -d' ' -f1 /proc/uptime)
mode=$(sed -n 's/.* fixture.mode=\([a-z]*\).*/\1/p' /proc/cmdline)
b64() { base64 -w0; }
say() { echo "$1" > /dev/console; }
server_gone() {
	for i in $(seq 1 90); do
		timeout 3 wget -q -O /dev/null http://10.77.0.1/alive || return 0
		sleep 1
	done
	return 1
}
extra=""
case "$mode" in
afterfill)
	for i in $(seq 1 300); do grep -q -e "fill complete" -e "background fill failed" /run/initramfs/blockd.log 2>/dev/null && break; sleep 1; done
	say STREAMROOT-FILL-DONE
	server_gone && gone=true || gone=false
	tree=$(cd /run/initramfs/squashfs && ` + treeDigest + `)
	data=$(sha256sum /data/random.bin | cut -d' ' -f1)
	extra=",\"server_gone\":$gone,\"tree_sha256\":\"$tree\",\"data_sha256\":\"$data\""
	;;
trace)
	last=""
	for i in $(seq 1 40); do
		cur=$(b64 < /run/initramfs/blockd.trace 2>/dev/null)
		[ -n "$cur" ] && [ "$cur" = "$last" ] && [ "$(wc -l < /run/initramfs/blockd.trace)" -gt 1 ] && break
		last=$cur
		sleep 3
	done
	extra=",\"trace_b64\":\"$cur\""
	;;
hash)
	data=$(sha256sum /data/random.bin | cut -d' ' -f1)
	extra=",\"data_sha256\":\"$data\""
	;;
sleepread)
	say STREAMROOT-BOOTED
	sleep 10
	if dd if=/data/random.bin of=/dev/null bs=1M skip=40 count=4 2>/dev/null; then ok=true; else ok=false; fi
	data=$(sha256sum /data/random.bin | cut -d' ' -f1)
	extra=",\"late_read_ok\":$ok,\"data_sha256\":\"$data\""
	;;
lazyfail)
	say STREAMROOT-BOOTED
	server_gone && gone=true || gone=false
	start=$(cut -d' ' -f1 /proc/uptime)
	if dd if=/data/random.bin of=/dev/null bs=1M skip=40 count=4 2>/dev/null; then ok=true; else ok=false; fi
	end=$(cut -d' ' -f1 /proc/uptime)
	extra=",\"server_gone\":$gone,\"lazy_read_ok\":$ok,\"lazy_read_start\":$start,\"lazy_read_end\":$end"
	;;
esac
w=false
if echo x > /.streamroot-write-test 2>/dev/null && [ "$(cat /.streamroot-write-test)" = x ]; then w=true; rm -f /.streamroot-write-test; fi
fstype=$(awk '$2 == "/" {t=$3} END {print t}' /proc/mounts)
printf 'STREAMROOT-REPORT {"pid":%s,"fixture":"%s","writable":%s,"root_fstype":"%s","premounted":"%s","uptime":"%s","mounts_b64":"%s","cmdline_b64":"%s","addrs_b64":"%s","links_b64":"%s","run_initramfs_b64":"%s","routes_b64":"%s","hostname":"%s"%s}\n' \
	"$$" "$(cat /etc/fixture-id)" "$w" "$fstype" "$premounted" "$uptime" "$(b64 < /proc/mounts)" "$(b64 < /proc/cmdline)" \
	"$(ip -o addr show | b64)" "$(ip -o link show | b64)" "$(ls -la /run/initramfs 2>&1 | b64)" "$(ip route | b64)" "$(hostname)" "$extra" > /dev/console
sync
poweroff -f
echo o > /proc/sysrq-trigger
`

var (
	streamOnce sync.Once
	streamFix  *StreamFixtures
	streamErr  error
)

// StreamFixtures builds (once per process, cached across runs) the stream fixtures.
func (e *Env) StreamFixtures(t testing.TB) *StreamFixtures {
	t.Helper()
	streamOnce.Do(func() {
		start := time.Now()
		streamFix, streamErr = buildStreamFixtures(e.Cache, t.Logf)
		if streamErr == nil {
			t.Logf("stream fixtures ready in %s", time.Since(start).Round(time.Millisecond))
		}
	})
	if streamErr != nil {
		t.Fatalf("stream fixtures: %v", streamErr)
	}
	return streamFix
}

func buildStreamFixtures(cache string, logf func(string, ...any)) (*StreamFixtures, error) {
	dir, base, err := fixtureBase(cache)
	if err != nil {
		return nil, err
	}
	base += "\nstream init " + StreamInit
	root := func(work, id, dataFile, seed string, size int64) (string, string, error) {
		r := filepath.Join(work, "root-"+id)
		if err := makeBusyboxRoot(r, id); err != nil {
			return "", "", err
		}
		if err := os.WriteFile(filepath.Join(r, "sbin/init"), []byte(StreamInit), 0o755); err != nil {
			return "", "", err
		}
		if err := os.MkdirAll(filepath.Join(r, "data"), 0o755); err != nil {
			return "", "", err
		}
		sum, err := writeRandom(filepath.Join(r, "data", dataFile), seed, size)
		return r, sum, err
	}
	set := []fixture{
		{
			name:   "stream.squashfs",
			recipe: base + fmt.Sprintf("\nsquashfs -comp xz of stream root + /data/random.bin %d bytes %q; tree digest %s", bigDataSize, bigDataSeed, treeDigest),
			build: func(work, out string) (map[string]string, error) {
				r, sum, err := root(work, "stream", "random.bin", bigDataSeed, bigDataSize)
				if err != nil {
					return nil, err
				}
				tree, err := runCmd(time.Minute, HostBusybox, "sh", "-c", "cd "+r+" && "+treeDigest)
				if err != nil {
					return nil, err
				}
				return map[string]string{"data_sha256": sum, "tree_sha256": strings.TrimSpace(tree)}, mksquashfs(r, out, "-comp", "xz")
			},
		},
		{
			name:   "huge.squashfs",
			recipe: base + fmt.Sprintf("\nsquashfs uncompressed of huge root + /data/huge.bin %d bytes %q", hugeDataSize, hugeDataSeed),
			build: func(work, out string) (map[string]string, error) {
				r, _, err := root(work, "huge", "huge.bin", hugeDataSeed, hugeDataSize)
				if err != nil {
					return nil, err
				}
				return nil, mksquashfs(r, out, "-noI", "-noD", "-noF", "-noX")
			},
		},
		{
			// dracut's Fedora/CentOS live layout at full size: an ISO whose
			// LiveOS/squashfs.img holds LiveOS/rootfs.img (ext4), 1 GiB of it.
			name: "live.iso",
			recipe: base + fmt.Sprintf("\nxorriso ISO: LiveOS/squashfs.img (uncompressed) = LiveOS/rootfs.img = mkfs.ext4 -m 0 -d <iso root + /data/huge.bin %d bytes %q> %s",
				hugeDataSize, isoDataSeed, isoRootfsSize),
			build: func(work, out string) (map[string]string, error) {
				r, _, err := root(work, "iso", "huge.bin", isoDataSeed, hugeDataSize)
				if err != nil {
					return nil, err
				}
				inner := filepath.Join(work, "squash")
				if err := liveOSRootfs(inner, r, isoRootfsSize, "-m", "0"); err != nil {
					return nil, err
				}
				os.RemoveAll(r) // the disk space goes to the next layer
				layout := filepath.Join(work, "iso")
				if err := os.MkdirAll(filepath.Join(layout, "LiveOS"), 0o755); err != nil {
					return nil, err
				}
				if err := mksquashfs(inner, filepath.Join(layout, "LiveOS", "squashfs.img"), "-noI", "-noD", "-noF", "-noX"); err != nil {
					return nil, err
				}
				os.RemoveAll(inner)
				_, err = runCmd(buildTimeout, "xorriso", "-as", "mkisofs", "-quiet", "-V", "LIVE", "-R", "-J", "-o", out, layout)
				return nil, err
			},
		},
	}
	fx := &StreamFixtures{}
	for _, f := range set {
		p, meta, err := f.ensure(dir, logf)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
		switch f.name {
		case "stream.squashfs":
			fx.Stream, fx.TreeSHA256, fx.DataSHA256 = p, meta["tree_sha256"], meta["data_sha256"]
		case "huge.squashfs":
			fx.Huge, fx.HugeSHA256 = p, meta["sha256"]
		case "live.iso":
			fx.ISO = p
		}
	}
	if len(fx.TreeSHA256) != 64 || len(fx.DataSHA256) != 64 {
		return nil, fmt.Errorf("stream.squashfs: meta.json lacks its digests")
	}
	return fx, nil
}
