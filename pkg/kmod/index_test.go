package kmod

import (
	"reflect"
	"slices"
	"testing"
)

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"virtio-net":       "virtio_net",
		"crypto-crc32c":    "crypto_crc32c",
		"pci:v*d[0-9]*":    "pci:v*d[0-9]*",
		"a-b[x-y]c-d":      "a_b[x-y]c_d",
		"already_normal":   "already_normal",
		"block-major-7-*":  "block_major_7_*",
		"snd-hda-codec-hd": "snd_hda_codec_hd",
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseAliases(t *testing.T) {
	text := "# Aliases extracted from modules themselves.\n" +
		"alias pci:v00001AF4d00001000sv*sd*bc*sc*i* virtio_net\n" +
		"alias crypto-crc32c crc32c-intel\n" +
		"alias crypto-crc32c crc32c_generic\n" +
		"alias fs-ext4 ext4\n" +
		"alias fs-ext4 ext4\n" +
		"alias only-a-pattern\n" +
		"softdep ext4 pre: crc32c\n" +
		"\n"
	as := ParseAliases([]byte(text))
	if len(as) != 5 || as[1] != NewAlias("crypto_crc32c", "crc32c_intel") || as[1].glob || !as[0].glob {
		t.Fatalf("ParseAliases = %+v", as)
	}
	for _, tc := range []struct {
		name string
		want []string
	}{
		{"pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00", []string{"virtio_net"}},
		{"crypto-crc32c", []string{"crc32c_intel", "crc32c_generic"}},
		{"crypto_crc32c", []string{"crc32c_intel", "crc32c_generic"}},
		{"fs-ext4", []string{"ext4"}}, // listed twice, matched once
		{"fs-ext", nil},
		{"pci:v00008086d0000100Esv*", nil},
	} {
		if got := MatchAliases(as, tc.name); !slices.Equal(got, tc.want) {
			t.Errorf("MatchAliases(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestParseSoftdeps(t *testing.T) {
	text := "# Soft dependencies extracted from modules themselves.\n" +
		"softdep ext4 pre: crc32c\n" +
		"softdep ext4 post: jbd-x\n" +
		"softdep snd-hda-intel pre: snd-hda-codec post: snd-x snd-y\n" +
		"softdep nokeyword a b\n" +
		"softdep short\n"
	want := map[string]Softdep{
		"ext4":          {Pre: []string{"crc32c"}, Post: []string{"jbd-x"}},
		"snd_hda_intel": {Pre: []string{"snd-hda-codec"}, Post: []string{"snd-x", "snd-y"}},
		"nokeyword":     {},
	}
	if got := ParseSoftdeps([]byte(text)); !reflect.DeepEqual(got, want) {
		t.Errorf("ParseSoftdeps = %+v, want %+v", got, want)
	}
}
