package isoread_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/streamroot/streamroot/pkg/isoread"
	"github.com/streamroot/streamroot/pkg/isoread/isotest"
)

// FuzzOpen feeds the reader mutated ISO images. Besides not panicking, a
// file it finds never reads as more bytes than the image has.
func FuzzOpen(f *testing.F) {
	files := []isotest.File{
		{Path: "LiveOS/squashfs.img", Data: payload(3000, 1)},
		{Path: "isolinux/vmlinuz", Data: []byte("kernel")},
	}
	for _, o := range []isotest.Options{
		{VolumeID: "FDI"},
		{VolumeID: "FDI", RockRidge: true},
		{RockRidge: true, MaxExtent: 2048, Gap: 1},
	} {
		f.Add(isotest.Build(files, o))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
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
