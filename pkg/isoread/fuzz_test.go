package isoread_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/streamroot/streamroot/pkg/isoread"
	"github.com/streamroot/streamroot/pkg/isoread/isotest"
)

const systemArea = 16 * 2048

// FuzzOpen feeds the reader mutated ISO images. Besides not panicking, a
// file it finds never reads as more bytes than the image has. The input is
// the image from sector 16 on (the 32 KiB system area before it is zeros
// the reader never parses), so mutations land on descriptors, directories
// and data, and the seeds stay a few KiB.
func FuzzOpen(f *testing.F) {
	files := []isotest.File{
		{Path: "LiveOS/squashfs.img", Data: payload(2100, 1)},
		{Path: "isolinux/vmlinuz", Data: []byte("kernel")},
	}
	for _, o := range []isotest.Options{
		{VolumeID: "FDI"},
		{VolumeID: "FDI", RockRidge: true},
		{RockRidge: true, MaxExtent: 2048, Gap: 1},
	} {
		f.Add(isotest.Build(files, o)[systemArea:])
	}
	f.Fuzz(func(t *testing.T, tail []byte) {
		data := append(make([]byte, systemArea, systemArea+len(tail)), tail...)
		im, err := isoread.Open(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		for _, dir := range []string{"/", "isolinux", "LiveOS"} {
			im.ReadDir(dir)
		}
		file, err := im.Lookup("LiveOS/squashfs.img")
		if err != nil {
			return
		}
		if file.Size < 0 || file.Size > int64(len(data)) {
			t.Fatalf("a %d-byte file in a %d-byte image", file.Size, len(data))
		}
		n, _ := io.Copy(io.Discard, file.SectionReader())
		if n > int64(len(data)) {
			t.Fatalf("read %d bytes from a %d-byte image", n, len(data))
		}
		if file.Contiguous && file.Offset+file.Size > int64(len(data)) {
			t.Fatalf("contiguous file at %d, %d bytes, past the %d-byte image", file.Offset, file.Size, len(data))
		}
		buf := make([]byte, 100)
		file.ReaderAt().ReadAt(buf, file.Size/2)
	})
}
