package qemutests

import (
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamroot/streamroot/internal/testfile"
	"github.com/streamroot/streamroot/pkg/boottrace"
	"github.com/streamroot/streamroot/pkg/manifest"
	"github.com/streamroot/streamroot/qemu-tests/harness"
)

// bootTrace is the block daemon's boot trace the stream fixture reported
// (fixture.mode=trace), parsed as streamroot trace parses it.
func bootTrace(t *testing.T, vm *harness.VM) (*boottrace.Trace, []byte) {
	t.Helper()
	b64, _ := rawReport(t, vm)["trace_b64"].(string)
	data, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(data) == 0 {
		t.Fatalf("the root reported no /run/initramfs/blockd.trace (%q, %v)", b64, err)
	}
	tr, err := boottrace.Parse(data)
	if err != nil {
		t.Fatalf("blockd.trace: %v\n%s", err, data)
	}
	return tr, data
}

var prefetchLine = regexp.MustCompile(`prefetched the boot trace's chunks chunks=(\d+) planned=(\d+) listed=(\d+) failed=(\d+)`)

// The boot trace end to end, as an operator runs it: a node boots the image
// without pins and its block daemon records which chunks the boot read
// (in 1 MiB cache chunks); streamroot manifest and streamroot trace turn
// that into a manifest (4 MiB chunks) whose prefetch list the pin covers;
// the next boot with that pin fetches exactly those chunks, once each,
// before the real init runs and without a kernel read outside them, and
// boots the same root.
func TestTracePrefetch(t *testing.T) {
	t.Parallel()
	n, fx, url := streamNet(t, netOptions{})
	vm := n.boot(t, harness.BootOptions{Append: "ip=dhcp root=live:" + url + " fixture.mode=trace", Timeout: 300 * time.Second})
	checkRoot(t, vm.ExpectReport(t), "stream")
	tr, raw := bootTrace(t, vm)
	if tr.ChunkSize != 1<<20 {
		t.Errorf("a boot without a manifest traced %d-byte chunks, want the cache's 1 MiB", tr.ChunkSize)
	}
	if len(tr.Entries) == 0 || tr.Entries[0].Chunk != 0 {
		t.Fatalf("the trace does not start at chunk 0 (the superblock): %+v", tr.Entries)
	}

	// What streamroot trace must write: each 1 MiB chunk's 4 MiB chunk,
	// at its first place.
	var want []int
	for _, e := range tr.Entries {
		if c := int(int64(e.Chunk) * tr.ChunkSize / manifest.DefaultChunk); !slices.Contains(want, c) {
			want = append(want, c)
		}
	}
	dir := t.TempDir()
	mpath := filepath.Join(dir, "traced.squashfs.manifest")
	traceFile := filepath.Join(dir, "blockd.trace")
	if err := os.WriteFile(traceFile, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	cli := harness.StreamrootCLI(t)
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(cli, args...).Output()
		if err != nil {
			t.Fatalf("streamroot %s: %v", strings.Join(args, " "), err)
		}
		return string(out)
	}
	run("manifest", "-o", mpath, "-no-progress", fx.Stream)
	pins := run("trace", "-manifest", mpath, traceFile)
	data := testfile.Read(t, mpath)
	m, err := manifest.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if m.FormatVersion() != 2 || !slices.Equal(m.Prefetch, want) {
		t.Fatalf("streamroot trace wrote format %d with prefetch %v, want format 2 with %v", m.FormatVersion(), m.Prefetch, want)
	}
	pin := manifest.KernelArg(data)
	if !strings.Contains(pins, pin) {
		t.Errorf("streamroot trace printed %q, not the new manifest's pin %s", pins, pin)
	}

	// The default (stream) mode: its fill starts only when the real init
	// runs, so what the server sent first is the prefetch's and the boot's
	// reads, and the fill then fetches only the chunks still missing.
	url2 := n.serve(t, "traced.squashfs", fx.Stream)
	n.serve(t, "traced.squashfs.manifest", mpath)
	serveAlive(t, n)
	vm2 := n.boot(t, harness.BootOptions{Append: "ip=dhcp root=live:" + url2 + " " + pin + " fixture.mode=afterfill", MemoryMiB: 1024, Timeout: 300 * time.Second})
	reportAfterFill(t, n, vm2, 240*time.Second)
	if rep := rawReport(t, vm2); rep["tree_sha256"] != fx.TreeSHA256 || rep["data_sha256"] != fx.DataSHA256 {
		t.Errorf("after the fill the root read back tree %v data %v, want %s %s", rep["tree_sha256"], rep["data_sha256"], fx.TreeSHA256, fx.DataSHA256)
	}
	pm := prefetchLine.FindStringSubmatch(vm2.Console())
	if pm == nil {
		t.Fatal("the second boot's console has no prefetch summary")
	}
	if l := fmt.Sprint(len(want)); pm[1] != l || pm[2] != l || pm[3] != l || pm[4] != "0" {
		t.Errorf("prefetch summary %q, want chunks, planned and listed %d and failed=0", pm[0], len(want))
	}
	// nginx logs a request when it ends: the first len(want) chunks it
	// served are the list, and no chunk went over the wire twice.
	got := map[int]int{}
	var order []int
	for _, e := range n.web.Requests("/traced.squashfs") {
		var from, to int64
		if _, err := fmt.Sscanf(e.Range, "bytes=%d-%d", &from, &to); err != nil || e.Status != 206 || to == from {
			continue // bytes=0-0 is the daemon's size probe
		}
		c := int(from / m.Chunk)
		if from != int64(c)*m.Chunk || to != min(from+m.Chunk, m.Size)-1 {
			t.Errorf("request %q is not one manifest chunk", e.Range)
		}
		got[c]++
		order = append(order, c)
	}
	for c := range m.NumChunks() {
		if got[c] != 1 {
			t.Errorf("chunk %d was fetched %d times, want once (%v)", c, got[c], order)
		}
	}
	if first := order[:min(len(want), len(order))]; !sameSet(first, want) {
		t.Errorf("the first chunks the server sent were %v (of %v), want the prefetch list %v", first, order, want)
	}
}

// sameSet says whether a and b hold the same elements, in any order.
func sameSet(a, b []int) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
