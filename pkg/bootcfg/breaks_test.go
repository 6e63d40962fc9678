package bootcfg

import "testing"

func TestBreakBefore(t *testing.T) {
	for _, tc := range []struct {
		breaks []string
		stage  string
		want   bool
	}{
		{nil, "switch", false},
		{[]string{"fetch"}, "fetch", true},
		{[]string{"fetch"}, "layers", false},
		{[]string{"pre-mount"}, "layers", true}, // dracut's hook names
		{[]string{"cmdline"}, "config", true},
		{[]string{"initqueue"}, "network", true},
		{[]string{"pre-pivot"}, "switch", true},
		{[]string{"pre-udev", "mount"}, "modules", true},
		{[]string{"pre-udev", "mount"}, "layers", true},
		{[]string{"pre-udev", "mount"}, "network", false},
		{[]string{"nonsense"}, "fetch", false},
	} {
		c := &Config{Break: tc.breaks}
		if got := c.BreakBefore(tc.stage); got != tc.want {
			t.Errorf("BreakBefore(%q, %s) = %v", tc.breaks, tc.stage, got)
		}
	}
	// A bare rd.break is "before switch": it must stop there and only there.
	cfg, err := Parse("root=live:http://x/i rd.break")
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []string{"early", "config", "modules", "network", "fetch", "layers", "handover", "switch"} {
		if got := cfg.BreakBefore(st); got != (st == "switch") {
			t.Errorf("plain rd.break (%q): break before %s = %v", cfg.Break, st, got)
		}
	}
}
