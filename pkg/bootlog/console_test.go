package bootlog

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

var sampleStages = []StageTime{{"early", 52 * time.Millisecond}, {"config", 26 * time.Millisecond}, {"modules", 1677 * time.Millisecond}}

func TestStages(t *testing.T) {
	if got := FormatStages(sampleStages); got != "early 52ms, config 26ms, modules 1.677s" {
		t.Errorf("FormatStages = %q", got)
	}
	if got := FormatStages([]StageTime{{"fetch", 1234567 * time.Microsecond}}); got != "fetch 1.235s" {
		t.Errorf("not rounded to the millisecond: %q", got)
	}
	for _, tc := range []struct {
		in   string
		want []StageTime
	}{
		{"early 52ms, config 26ms, modules 1.677s", sampleStages},
		{"early 52ms, junk, config x, modules 1.677s", []StageTime{sampleStages[0], sampleStages[2]}},
		{"", nil},
	} {
		if got := ParseStages(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseStages(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestSwitch(t *testing.T) {
	s := Switch{Init: "/sbin/init", Took: 2877 * time.Millisecond, Stages: sampleStages}
	const line = "streamroot: switch: starting /sbin/init (boot took 2.877s: early 52ms, config 26ms, modules 1.677s)"
	if s.Line() != line {
		t.Errorf("Line = %q", s.Line())
	}
	for _, tc := range []struct {
		in   string
		want *Switch
	}{
		{line, &s},
		{"[   9.1] " + line + " \r", &s},
		{"streamroot: switch: starting /usr/lib/systemd/systemd (boot took 1s: early 1s)",
			&Switch{"/usr/lib/systemd/systemd", time.Second, []StageTime{{"early", time.Second}}}},
		{"streamroot: switch: starting /sbin/init", nil},
		{"streamroot: switch: starting /sbin/init (boot took soon: early 1s)", nil},
		{"streamroot: switch: starting /sbin/init (boot took 1s: early 1s", nil},
		{"streamroot: switch: starting  (boot took 1s: early 1s)", nil},
		{"streamroot: network: bound 10.0.2.15/24", nil},
	} {
		got, ok := ParseSwitch(tc.in)
		if ok != (tc.want != nil) || (ok && !reflect.DeepEqual(got, *tc.want)) {
			t.Errorf("ParseSwitch(%q) = %+v, %v; want %+v", tc.in, got, ok, tc.want)
		}
	}
	if !IsSwitch("streamroot: switch: starting /sbin/init") || IsSwitch("streamroot: switch: mounting") {
		t.Error("IsSwitch")
	}
}

const sampleBlock = "streamroot: ==================== BOOT FAILED ====================\n" +
	"streamroot: stage:   fetch\n" +
	"streamroot: problem: GET http://10.77.0.1/missing.squashfs: 404 Not Found\n" +
	"streamroot:          after 3 tries\n" +
	"streamroot: hint:    check the URL in root=\n" +
	"streamroot: log:     /run/initramfs/streamroot.log (stages: early 52ms, config 26ms, modules 1.677s)\n" +
	"streamroot: =======================================================\n"

var sampleFailure = Failure{
	Stage:   "fetch",
	Problem: "GET http://10.77.0.1/missing.squashfs: 404 Not Found\nafter 3 tries",
	Hint:    "check the URL in root=",
	Log:     "/run/initramfs/streamroot.log",
	Stages:  sampleStages,
}

func TestFailureFormat(t *testing.T) {
	if got := sampleFailure.Format(); got != sampleBlock {
		t.Errorf("Format =\n%s\nwant\n%s", got, sampleBlock)
	}
}

func TestFindFailure(t *testing.T) {
	stamp := func(s string) string {
		lines := strings.SplitAfter(s, "\n")
		for i := range lines {
			if lines[i] != "" {
				lines[i] = "[   12.345678] " + lines[i]
			}
		}
		return strings.Join(lines, "")
	}
	short := "streamroot: ==================== BOOT FAILED ====================\n" +
		"streamroot: stage:   network\n" +
		"streamroot: problem: no lease\n" +
		"streamroot: hint:    check DHCP\n" +
		"streamroot: =======================================================\n"
	for _, tc := range []struct {
		name, console string
		want          *Failure
		block         string
	}{
		{"plain", "boot...\n" + sampleBlock + "streamroot: rebooting in 0 s\n", &sampleFailure, sampleBlock},
		{"timestamped", stamp(sampleBlock), &sampleFailure, stamp(sampleBlock)},
		{"crlf", strings.ReplaceAll(sampleBlock, "\n", "\r\n"), &sampleFailure, strings.ReplaceAll(sampleBlock, "\n", "\r\n")},
		{"no log line", short, &Failure{Stage: "network", Problem: "no lease", Hint: "check DHCP"}, short},
		{"first of two", short + sampleBlock, &Failure{Stage: "network", Problem: "no lease", Hint: "check DHCP"}, short},
		{"kernel line inside", strings.Replace(sampleBlock, "streamroot: hint:", "[ 3.0] eth0: link up\nstreamroot: hint:", 1),
			&sampleFailure, strings.Replace(sampleBlock, "streamroot: hint:", "[ 3.0] eth0: link up\nstreamroot: hint:", 1)},
		{"incomplete", sampleBlock[:150], nil, ""},
		{"last line without newline", strings.TrimSuffix(sampleBlock, "\n"), nil, ""},
		{"none", "streamroot: switch: starting /sbin/init\n", nil, ""},
	} {
		got, block, ok := FindFailure(tc.console)
		if ok != (tc.want != nil) {
			t.Errorf("%s: ok = %v", tc.name, ok)
			continue
		}
		if ok && (!reflect.DeepEqual(got, *tc.want) || block != tc.block) {
			t.Errorf("%s: got %+v, block %q", tc.name, got, block)
		}
	}
	if !IsFailureStart("[ 1.0] streamroot: ===== BOOT FAILED =====") || IsFailureStart("streamroot: BOOT FAILED") {
		t.Error("IsFailureStart")
	}
	if !IsFailureEnd("streamroot: ======= ") || IsFailureEnd("streamroot: ") || IsFailureEnd("streamroot: == x") {
		t.Error("IsFailureEnd")
	}
}

// TestProgress checks both progress lines: each formats to the line the
// init prints and reads back from it, with the stage's prefix and a kmsg
// timestamp in front; lines of the other kind or cut short are refused.
func TestProgress(t *testing.T) {
	download := func(s string) (any, bool) { return ParseDownload(s) }
	fill := func(s string) (any, bool) { return ParseFill(s) }
	for _, tc := range []struct {
		value   interface{ Message() string }
		message string
		prefix  string
		parse   func(string) (any, bool)
	}{
		{Download{4 << 20, 8 << 20, 2 << 20}, "4.0 MiB / 8.0 MiB (50%) 2.0 MiB/s ETA 2s", "fetch: ", download},
		{Download{0, 8 << 20, 0}, "0.0 MiB / 8.0 MiB (0%) 0.0 MiB/s ETA ?", "fetch: ", download},
		{Download{0, 0, 0}, "0.0 MiB / 0.0 MiB (0%) 0.0 MiB/s ETA ?", "fetch: ", download},
		{Fill{512 << 20, 1 << 30, 50, 0}, "fill: 512.0 MiB / 1024.0 MiB (50%)", "blockd: ", fill},
		{Fill{600 << 20, 1 << 30, 58, 8 << 20}, "fill: 600.0 MiB / 1024.0 MiB (58%) (held to 8.0 MiB/s while the system is busy)", "blockd: ", fill},
	} {
		if got := tc.value.Message(); got != tc.message {
			t.Errorf("Message = %q, want %q", got, tc.message)
		}
		got, ok := tc.parse("[ 5.1] " + Prefix + tc.prefix + tc.message + "\r")
		if !ok || got != tc.value {
			t.Errorf("parse(%q) = %+v, %v; want %+v", tc.message, got, ok, tc.value)
		}
	}
	for _, tc := range []struct {
		line  string
		parse func(string) (any, bool)
	}{
		{"streamroot: fetch: image url=http://x size=8.0 MiB", download},
		{"streamroot: fetch: 4.0 MiB / 8.0 MiB", download},
		{"streamroot: fetch: 4.0 MiB / 8.0 MiB (50%)", download},
		{"streamroot: fetch: NaN MiB / 8.0 MiB (50%) 2.0 MiB/s ETA 2s", download},
		{"streamroot: fetch: -1.0 MiB / 8.0 MiB (50%) 2.0 MiB/s ETA 2s", download},
		{"streamroot: fetch: 4.0 MiB / 8.0 MiB (x%) 2.0 MiB/s ETA 2s", download},
		{"streamroot: blockd: fill: 4.0 MiB / 8.0 MiB (50%)", download},
		{"streamroot: blockd: fill complete: 0.9 MiB in 1ms; the server is no longer needed", fill},
		{"streamroot: blockd: fill: 50.0 MiB", fill},
		{"streamroot: blockd: fill: 1.0 MiB / 2.0 MiB (50%) and more", fill},
		{"streamroot: blockd: fill: 1.0 MiB / 2.0 MiB (50%) (held to fast/s while the system is busy)", fill},
		{"fill: 1.0 MiB / 2.0 MiB (50%)", fill},
	} {
		if v, ok := tc.parse(tc.line); ok {
			t.Errorf("%q parsed as %+v", tc.line, v)
		}
	}
}

// FuzzConsole feeds console text to every parser of the protocol: none may
// panic, and what one parses must read back the same once formatted again.
func FuzzConsole(f *testing.F) {
	f.Add(sampleBlock)
	f.Add(Switch{"/sbin/init", time.Second, sampleStages}.Line())
	f.Add("streamroot: fetch: 4.0 MiB / 8.0 MiB (50%) 2.0 MiB/s ETA 2s")
	f.Add("streamroot: blockd: fill: 600.0 MiB / 1024.0 MiB (58%) (held to 8.0 MiB/s while the system is busy)")
	f.Fuzz(func(t *testing.T, s string) {
		ParseStages(s)
		IsFailureStart(s)
		IsFailureEnd(s)
		if fb, block, ok := FindFailure(s); ok {
			first, _, _ := strings.Cut(block, "\n")
			if !strings.Contains(s, block) || !IsFailureStart(first) {
				t.Fatalf("block %q is not a block of the input", block)
			}
			_ = fb.Format()
		}
		if sw, ok := ParseSwitch(s); ok {
			if _, ok := ParseSwitch(sw.Line()); !ok {
				t.Fatalf("switch %+v from %q does not read back", sw, s)
			}
		}
		if d, ok := ParseDownload(s); ok {
			if again, ok := ParseDownload(Prefix + "fetch: " + d.Message()); !ok || again.Done != d.Done || again.Total != d.Total {
				t.Fatalf("download %+v from %q reads back as %+v, %v", d, s, again, ok)
			}
		}
		if fl, ok := ParseFill(s); ok {
			if again, ok := ParseFill(Prefix + "blockd: " + fl.Message()); !ok || again != fl {
				t.Fatalf("fill %+v from %q reads back as %+v, %v", fl, s, again, ok)
			}
		}
	})
}
