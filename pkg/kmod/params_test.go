package kmod

import (
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestCmdlineParams(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     map[string][]string
	}{
		{"none", "console=ttyS0 ip=dhcp root=live:http://s/x.img", map[string][]string{}},
		{"value and boolean", "virtio_net.napi_tx=1 e1000e.debug mlx5_core.num_vfs=0",
			map[string][]string{"virtio_net": {"napi_tx=1"}, "e1000e": {"debug"}, "mlx5_core": {"num_vfs=0"}}},
		{"dash and underscore alike", "virtio-net.napi_tx=1", map[string][]string{"virtio_net": {"napi_tx=1"}}},
		{"order kept, several", "i915.modeset=0 i915.enable_guc=2", map[string][]string{"i915": {"modeset=0", "enable_guc=2"}}},
		{"quoted value with spaces stays one", `foo.bar="a b" x.y=1`, map[string][]string{"foo": {`bar="a b"`}, "x": {"y=1"}}},
		{"dotted parameter name", "nf_conntrack.acct.x=1", map[string][]string{"nf_conntrack": {"acct.x=1"}}},
		{"after -- belongs to init", "a.b=1 -- c.d=2", map[string][]string{"a": {"b=1"}}},
		{"dracut's own arguments are no module's", "rd.live.ram=1 rd.neednet=0",
			map[string][]string{"rd": {"live.ram=1", "neednet=0"}}}, // harmless: no module is called rd
		{"not module arguments", ".x=1 a.=1 a/b.c=1 =x a..b=1 " + strings.Repeat("m", 70) + ".p=1",
			map[string][]string{"a": {".b=1"}}},
		{"tabs and newlines separate", "a.b=1\tc.d=2\ne.f=3", map[string][]string{"a": {"b=1"}, "c": {"d=2"}, "e": {"f=3"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := cmdlineParams(tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("cmdlineParams(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestModuleParamsWorkarounds(t *testing.T) {
	for _, tc := range []struct {
		name, cmdline, want string
		applied             bool
	}{
		{"default", "ip=dhcp", "napi_tx=0", true},
		{"operator keeps TX NAPI", "virtio_net.napi_tx=1", "napi_tx=1", false},
		{"dash spelling overrides too", "virtio-net.napi-tx=1", "napi-tx=1", false},
		{"other parameters kept beside it", "virtio_net.csum=0", "napi_tx=0 csum=0", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, applied := moduleParams(tc.cmdline)
			if got["virtio_net"] != tc.want {
				t.Errorf("virtio_net params = %q, want %q", got["virtio_net"], tc.want)
			}
			if (len(applied["virtio_net"]) > 0) != tc.applied {
				t.Errorf("workaround applied = %v, want %v", applied["virtio_net"], tc.applied)
			}
		})
	}
	if got, _ := moduleParams("big.p=" + strings.Repeat("x", maxParamBytes)); got["big"] != "" {
		t.Errorf("a parameter string over %d bytes was kept", maxParamBytes)
	}
}

func TestSplitArgs(t *testing.T) {
	for in, want := range map[string][]string{
		"":                     nil,
		"  a  b ":              {"a", "b"},
		`a="b c" d`:            {`a="b c"`, "d"},
		`"unterminated x y`:    {`"unterminated x y`},
		"a\t\tb\n":             {"a", "b"},
		`x="" y`:               {`x=""`, "y"},
		`p="1 2"q r`:           {`p="1 2"q`, "r"},
		"single":               {"single"},
		"trailing-space-only ": {"trailing-space-only"},
	} {
		if got := splitArgs(in); !reflect.DeepEqual(got, want) {
			t.Errorf("splitArgs(%q) = %q, want %q", in, got, want)
		}
	}
}

// Open takes the parameters from root's proc/cmdline and modules.dep's
// dependencies, so a dependency with parameters is loaded with them first.
func TestOpenReadsParamsAndDeps(t *testing.T) {
	l := testLoader(t)
	if got := l.params["virtio_net"]; got != "napi_tx=0" {
		t.Errorf("no command line: virtio_net params %q, want the workaround", got)
	}
	if got, want := l.deps["virtio_net"], []string{"virtio"}; !reflect.DeepEqual(got, want) {
		t.Errorf("deps of virtio_net = %v, want %v", got, want)
	}

	root := t.TempDir()
	dir := filepath.Join(root, "lib/modules/6.1.0-test")
	for p, c := range map[string]string{
		filepath.Join(dir, "modules.dep"):   "kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/virtio/virtio_ring.ko.zst kernel/drivers/virtio/virtio.ko\n",
		filepath.Join(root, "proc/cmdline"): "console=ttyS0 virtio_net.napi_tx=1 bonding.max_bonds=2 virtio_ring.x=2 -- virtio.y=3\n",
	} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l, err := Open(root, "6.1.0-test", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"virtio_net": "napi_tx=1", "bonding": "max_bonds=2", "virtio_ring": "x=2"}
	if !maps.Equal(l.params, want) {
		t.Errorf("params = %v, want %v", l.params, want)
	}
	if len(l.applied) != 0 {
		t.Errorf("workarounds applied although the line overrides them: %v", l.applied)
	}
	if got, want := l.deps["virtio_net"], []string{"virtio_ring", "virtio"}; !reflect.DeepEqual(got, want) {
		t.Errorf("deps = %v, want %v", got, want)
	}
}

func FuzzModuleParams(f *testing.F) {
	for _, s := range []string{"virtio_net.napi_tx=1", `a.b="c d" -- e.f`, "rd.live.ram=1 x.y", "\"", "a.b=\"\"\"", ". .. ... =.="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cmdline string) {
		params, applied := moduleParams(cmdline)
		for mod, p := range params {
			if !validName(mod) || strings.Contains(mod, "-") {
				t.Fatalf("module name %q", mod)
			}
			if len(p) > maxParamBytes {
				t.Fatalf("%s: %d bytes of parameters", mod, len(p))
			}
		}
		for mod := range applied {
			if _, ok := params[mod]; !ok {
				t.Fatalf("workaround for %s applied but not in its parameters", mod)
			}
		}
	})
}
