package bench

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/streamroot/streamroot/pkg/decompress"
	"github.com/u-root/u-root/pkg/cpio"
)

// cpioParts reads the initramfs at path (zstd, gzip or uncompressed newc
// cpio, one archive: both images are built without an early-microcode
// archive in front) with u-root's cpio reader and sums the file bytes by
// part: the init binary, NIC driver modules, other modules, firmware,
// everything else. The sums are uncompressed bytes.
func cpioParts(path string) (map[string]int64, error) {
	archive, err := uncompressedArchive(path)
	if err != nil {
		return nil, err
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(archive)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	parts := map[string]int64{}
	for _, r := range recs {
		parts[partOf(strings.TrimPrefix(r.Name, "./"))] += int64(r.FileSize)
	}
	return parts, nil
}

// uncompressedArchive returns the initramfs at path (zstd, gzip or none)
// decompressed.
func uncompressedArchive(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	format := decompress.None
	switch {
	case bytes.HasPrefix(raw, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		format = decompress.Zstd
	case bytes.HasPrefix(raw, []byte{0x1f, 0x8b}):
		format = decompress.Gzip
	}
	d, err := decompress.Reader(format, bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer d.Close()
	archive, err := io.ReadAll(d)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return archive, nil
}

func partOf(name string) string {
	switch {
	case name == "init":
		return "/init"
	case strings.Contains(name, "/kernel/drivers/net/"):
		return "NIC modules"
	case strings.HasPrefix(name, "lib/modules/") || strings.HasPrefix(name, "usr/lib/modules/"):
		return "other modules"
	case strings.HasPrefix(name, "lib/firmware/") || strings.HasPrefix(name, "usr/lib/firmware/"):
		return "firmware"
	}
	return "other files"
}

// partsTable compares ours and dracut's parts, uncompressed.
func partsTable(oursPath, dracutPath string) string {
	a, errA := cpioParts(oursPath)
	d, errD := cpioParts(dracutPath)
	if errA != nil || errD != nil {
		return fmt.Sprintf("\nparts not read: %v %v\n", errA, errD)
	}
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range d {
		keys[k] = true
	}
	ks := slices.Sorted(maps.Keys(keys))
	var b strings.Builder
	b.WriteString("\n| part (uncompressed) | ours, dracut's NIC set | dracut | ours × dracut |\n|---|---:|---:|---:|\n")
	for _, k := range ks {
		r := "–"
		if d[k] > 0 {
			r = fmt.Sprintf("%.2f", float64(a[k])/float64(d[k]))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", k, mib(a[k]), mib(d[k]), r)
	}
	return b.String()
}
