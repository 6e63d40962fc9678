package builder

import (
	"bufio"
	"io"
	"os"
	"path/filepath"

	"github.com/streamroot/streamroot/pkg/atomicfile"
)

// writeAtomic creates path (and its directory) with atomicfile, so a reader
// (a PXE server, make) sees either the old image or the complete new one,
// never a truncated one. fn writes the content, buffered; the file is 0644
// because an initramfs is not secret and is usually served by a web or
// TFTP server running as another user. It returns the written size.
func writeAtomic(path string, fn func(io.Writer) error) (size int64, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return 0, err
	}
	err = atomicfile.Write(path, 0o644, func(w io.Writer) error {
		cw := &countingWriter{w: w}
		bw := bufio.NewWriterSize(cw, 1<<20)
		if err := fn(bw); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		size = cw.n
		return nil
	})
	return size, err
}
