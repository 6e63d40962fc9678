package chunkcache

import (
	"slices"
	"testing"
)

// at is a clean sample of mbps MB/s over fillSampleTime.
func at(mbps float64) fillSample {
	return fillSample{bytes: int64(mbps * 1e6 * fillSampleTime.Seconds()), took: fillSampleTime}
}

func repeat(s fillSample, n int) []fillSample {
	out := make([]fillSample, n)
	for i := range out {
		out[i] = s
	}
	return out
}

var (
	held   = fillSample{bytes: 1 << 20, took: fillSampleTime, held: true}
	failed = fillSample{bytes: 8 << 20, took: fillSampleTime, failures: 1}
)

func TestFillCtl(t *testing.T) {
	for _, tc := range []struct {
		name        string
		floor, ceil int
		samples     []fillSample
		want        []int // the parallelism after each sample
		peak        int
	}{
		{
			name: "latency-bound: the rate follows the fetches in flight, up to the cap",
			// 19 MB/s per fetch: 1 MiB per 50 ms RTT.
			floor: 4, ceil: 16,
			samples: []fillSample{at(76), at(114), at(171), at(247), at(300), at(301)},
			want:    []int{6, 9, 13, 16, 16, 16},
			peak:    16,
		},
		{
			name:  "saturated link: one step up, back, and a new probe only after fillHold samples",
			floor: 4, ceil: 16,
			samples: slices.Concat([]fillSample{at(100), at(104)}, repeat(at(100), fillHold), []fillSample{at(100), at(101)}),
			want:    slices.Concat([]int{6, 4}, slices.Repeat([]int{4}, fillHold), []int{6, 4}),
			peak:    6,
		},
		{
			name:  "saturated after two good steps: it settles at the last level that paid",
			floor: 4, ceil: 16,
			samples: []fillSample{at(76), at(114), at(171), at(175), at(170)},
			want:    []int{6, 9, 13, 9, 9},
			peak:    13,
		},
		{
			name:  "demand waiting: no growth while it lasts",
			floor: 4, ceil: 16,
			samples: []fillSample{held, held, held, at(76), held, at(114)},
			want:    []int{4, 4, 4, 6, 6, 9},
			peak:    9,
		},
		{
			name:  "a held sample does not judge a probe: the next clean one does",
			floor: 4, ceil: 16,
			samples: []fillSample{at(100), held, at(100)},
			want:    []int{6, 6, 4},
			peak:    6,
		},
		{
			name:  "failures during a probe: back to where it came from, and hold",
			floor: 4, ceil: 16,
			samples: slices.Concat([]fillSample{at(76), at(114), failed}, repeat(at(114), fillHold), []fillSample{at(114)}),
			want:    slices.Concat([]int{6, 9, 6}, slices.Repeat([]int{6}, fillHold), []int{9}),
			peak:    9,
		},
		{
			name:  "failures at a settled level: one step down, never below the floor",
			floor: 4, ceil: 9,
			samples: []fillSample{at(76), at(114), at(171), failed, failed, failed},
			want:    []int{6, 9, 9, 6, 4, 4},
			peak:    9,
		},
		{
			name:  "a settled level whose rate falls steps back",
			floor: 4, ceil: 6,
			samples: []fillSample{at(100), at(150), at(150), at(100), at(100)},
			want:    []int{6, 6, 6, 4, 4},
			peak:    6,
		},
		{
			name:  "a rate falling at the floor changes nothing",
			floor: 4, ceil: 4,
			samples: []fillSample{at(100), at(10), failed, at(100)},
			want:    []int{4, 4, 4, 4},
			peak:    4,
		},
		{
			name:  "an empty interval is no sample",
			floor: 4, ceil: 16,
			samples: []fillSample{{}, {bytes: 1 << 20}, at(76)},
			want:    []int{4, 4, 6},
			peak:    6,
		},
		{
			name:  "a ceiling below the floor is the floor",
			floor: 4, ceil: 2,
			samples: []fillSample{at(76), at(200)},
			want:    []int{4, 4},
			peak:    4,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFillCtl(tc.floor, tc.ceil)
			var got []int
			for _, s := range tc.samples {
				got = append(got, f.next(s))
			}
			if !slices.Equal(got, tc.want) || f.peak != tc.peak {
				t.Errorf("parallelism %v peak %d, want %v peak %d", got, f.peak, tc.want, tc.peak)
			}
		})
	}
}

func TestFillCtlSteps(t *testing.T) {
	f := newFillCtl(4, 16)
	for _, tc := range []struct{ n, up, down int }{
		{4, 6, 4}, {5, 7, 4}, {6, 9, 4}, {9, 13, 6}, {13, 16, 9}, {16, 16, 11},
	} {
		if up, down := f.stepUp(tc.n), f.stepDown(tc.n); up != tc.up || down != tc.down {
			t.Errorf("from %d: up %d down %d, want %d and %d", tc.n, up, down, tc.up, tc.down)
		}
	}
	if up := newFillCtl(1, 16).stepUp(1); up != 2 {
		t.Errorf("from 1: up %d, want 2", up)
	}
}
