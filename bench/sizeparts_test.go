package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// cpioParts reads the initramfs at path (zstd, gzip or uncompressed newc
// cpio; concatenated archives are read to the end) and sums the file bytes
// by part: the init binary, NIC driver modules, other modules, firmware,
// everything else. The sums are uncompressed bytes.
func cpioParts(path string) (map[string]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	magic, _ := br.Peek(4)
	var r io.Reader = br
	switch {
	case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		d, err := zstd.NewReader(br)
		if err != nil {
			return nil, err
		}
		defer d.Close()
		r = d
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		g, err := gzip.NewReader(br)
		if err != nil {
			return nil, err
		}
		r = g
	}
	rb := bufio.NewReader(r)
	r = rb
	parts := map[string]int64{}
	hdr := make([]byte, 110)
	var off int64
	skip := func(n int64) error { _, err := io.CopyN(io.Discard, r, n); off += n; return err }
	for range 1 << 20 { // bounded: no initramfs has a million files
		if _, err := io.ReadFull(r, hdr); err != nil {
			if err == io.EOF {
				return parts, nil
			}
			return parts, err
		}
		off += 110
		if string(hdr[:6]) != "070701" && string(hdr[:6]) != "070702" {
			return parts, fmt.Errorf("%s: not a newc cpio at offset %d", path, off-110)
		}
		size, _ := strconv.ParseInt(string(hdr[54:62]), 16, 64)
		nlen, _ := strconv.ParseInt(string(hdr[94:102]), 16, 64)
		name := make([]byte, nlen)
		if _, err := io.ReadFull(r, name); err != nil {
			return parts, err
		}
		off += nlen
		if err := skip((4 - off%4) % 4); err != nil {
			return parts, err
		}
		n := strings.TrimSuffix(strings.TrimPrefix(string(name), "./"), "\x00")
		if n == "TRAILER!!!" {
			// Skip the padding to the next archive of a concatenation.
			for {
				c, err := rb.ReadByte()
				if err == io.EOF {
					return parts, nil
				} else if err != nil {
					return parts, err
				}
				if c != 0 {
					rb.UnreadByte()
					break
				}
				off++
			}
			continue
		}
		parts[partOf(n)] += size
		if err := skip(size + (4-(off+size)%4)%4); err != nil {
			return parts, err
		}
	}
	return parts, nil
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
	var ks []string
	for k := range keys {
		ks = append(ks, k)
	}
	sort.Strings(ks)
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
