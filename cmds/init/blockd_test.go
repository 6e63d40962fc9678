package main

import "testing"

func TestLazyCacheBytes(t *testing.T) {
	for _, tc := range []struct {
		name          string
		argMiB, total int64
		want          int64
	}{
		{"argument wins", 32, 64 << 30, 32 << 20},
		{"argument above the default", 1024, 512 << 20, 1 << 30},
		{"512 MiB node: RAM/16", 0, 512 << 20, 32 << 20},
		{"2 GiB node: RAM/16", 0, 2 << 30, 128 << 20},
		{"64 GiB node: capped", 0, 64 << 30, 256 << 20},
		{"meminfo unreadable", 0, 0, 64 << 20},
	} {
		if got := lazyCacheBytes(tc.argMiB, tc.total); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestMemTotal(t *testing.T) {
	if n := memTotal(); n <= 0 {
		t.Fatalf("memTotal() = %d on a Linux host", n)
	}
}
