package httpsrc

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// ErrBudget means a BlockReader was asked for bytes beyond its budget.
var ErrBudget = errors.New("read budget exhausted")

// BlockReader is an io.ReaderAt over a pinned Source for a reader that
// looks at a little of an image in scattered places (the CLI's inspect
// walking an ISO and a squashfs): it fetches aligned blocks, keeps them,
// asks for a run of missing blocks in one range, and refuses to fetch more
// than its budget in all, so a corrupt or hostile image (a huge directory
// length, a loop of pointers) cannot turn a look into a full download.
// Every range goes through ReadRange: the Source's pinning (If-Range,
// validators, size, Content-Range) applies to each. It is not safe for
// concurrent use.
type BlockReader struct {
	src    *Source
	ctx    context.Context
	block  int64
	budget int64
	cache  map[int64][]byte // block number → its bytes (the last one short)

	ranges  int
	fetched int64
}

// BlockReader reads s in blocks of block bytes (at least 512), fetching
// at most budget bytes over its life. ctx bounds every fetch; each also
// ends after the Source's stall time (Options.Stall).
func (s *Source) BlockReader(ctx context.Context, block, budget int64) *BlockReader {
	return &BlockReader{src: s, ctx: ctx, block: max(block, 512), budget: budget, cache: map[int64][]byte{}}
}

// Size is the image's size.
func (b *BlockReader) Size() int64 { return b.src.Size }

// Ranges is how many ranges ReadAt has fetched.
func (b *BlockReader) Ranges() int { return b.ranges }

// Fetched is how many image bytes ReadAt has fetched (the budget spent).
func (b *BlockReader) Fetched() int64 { return b.fetched }

// ReadAt reads len(p) bytes at off, fetching the blocks it does not hold
// yet; it returns fewer, with io.EOF, only at the end of the image.
func (b *BlockReader) ReadAt(p []byte, off int64) (int, error) {
	size := b.src.Size
	if off < 0 {
		return 0, fmt.Errorf("read %s: negative offset %d", b.src.name, off)
	}
	if off >= size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	// Neither off+len(p) nor block numbers times the block size past the
	// image: a server may claim a size near 2^63, and both would wrap.
	end := off + min(int64(len(p)), size-off)
	last := (end - 1) / b.block
	for n := off / b.block; n <= last; {
		if _, ok := b.cache[n]; ok {
			n++
			continue
		}
		run := int64(1)
		for n+run <= last {
			if _, ok := b.cache[n+run]; ok {
				break
			}
			run++
		}
		if err := b.fetch(n, run); err != nil {
			return 0, err
		}
		n += run
	}
	done := 0
	for pos := off; pos < end; {
		blk := b.cache[pos/b.block]
		if pos%b.block >= int64(len(blk)) {
			return done, fmt.Errorf("read %s: no block holds byte %d", b.src.name, pos)
		}
		c := copy(p[done:end-off], blk[pos%b.block:])
		done += c
		pos += int64(c)
	}
	if done < len(p) {
		return done, io.EOF
	}
	return done, nil
}

// fetch gets blocks [first, first+n) in one range.
func (b *BlockReader) fetch(first, n int64) error {
	start := first * b.block // first <= (size-1)/block: no wrap
	length := min(n*b.block, b.src.Size-start)
	if length > b.budget-b.fetched {
		return fmt.Errorf("GET %s: %w: %d more bytes would pass the %d allowed (%d fetched)", b.src.name, ErrBudget, length, b.budget, b.fetched)
	}
	buf := make([]byte, length)
	ctx, cancel := context.WithTimeout(b.ctx, b.src.stall)
	defer cancel()
	b.ranges++
	if err := b.src.ReadRange(ctx, buf, start); err != nil {
		return err
	}
	b.fetched += length
	for i := int64(0); i*b.block < length; i++ {
		b.cache[first+i] = buf[i*b.block : min(length, (i+1)*b.block)]
	}
	return nil
}
