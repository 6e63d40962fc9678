package chunkcache

import "time"

// The background fill's parallelism follows the link. Chunks are 1 MiB
// (the manifest verifies them so), and one fetch delivers a chunk per round
// trip, so a fill with n fetches in flight moves about n MiB per RTT until
// the link or the server saturates: 4 fetches give 76 MB/s at 50 ms RTT
// where 8 give 147 MB/s (docs/benchmarks.md). fillCtl climbs from
// Options.Parallel while each step still pays, and no higher: a saturated
// server gains nothing from more of one node's fetches, and during a boot
// storm it serves every other node too.

const (
	// fillGain is the rise in throughput a step up must bring to be kept:
	// below it the extra fetches only load the server. A latency-bound
	// fill gains about the step's own ratio (+50%), far above it; noise on
	// a busy node is well below it over a sample (see fillSampleChunks).
	fillGain = 1.10
	// fillDrop: a settled level whose throughput falls under this share of
	// its own earlier sample steps back (the server or the link is
	// loaded by others now), then climbs again from there.
	fillDrop = 0.80
	// fillHold is how many samples the fill stays at a level after a step
	// up did not pay or fetches failed, before it tries a step up again:
	// often enough to follow a link that changed, rarely enough that a
	// saturated server sees one probing step in fillHold samples.
	fillHold = 16
)

// A sample ends once the fill has fetched at least max(fillSampleChunks,
// 2×parallelism) chunks and fillSampleTime has passed, whichever comes
// later. Neither bound is enough alone. When chunks come fast (loopback, a
// LAN: 16 MiB in a few milliseconds) a count-only sample is a burst that one
// scheduling delay or GC pause swings by half, so time sets the floor. When
// chunks come slowly, a time-only sample holds a handful of them, and one
// more or less changes the rate by 25%, so the count sets the floor; 2×
// the parallelism makes every sample span at least two rounds of each
// fetch in flight, so the fetches started at the previous level are a
// minority of it.
const (
	fillSampleChunks = 16
	fillSampleTime   = 250 * time.Millisecond
)

// fillSample is what the fill measured over one interval.
type fillSample struct {
	bytes    int64         // fetched from the source (fill and demand)
	took     time.Duration // the interval
	failures int           // fill fetches that failed (and will be retried)
	// held: a fill worker waited for demand reads (or FillPace held it)
	// during the interval; the rate says nothing about the link then.
	held bool
}

// fillCtl decides the fill's parallelism from its samples: a hill climb.
// Settled at a level, it measures the level's rate; then it steps up and
// keeps the step if the rate rose by fillGain, else steps back and holds.
// It never goes below floor (Options.Parallel: the fixed fill it replaces)
// nor above ceil (Options.MaxParallel).
type fillCtl struct {
	floor, ceil int
	cur         int     // the parallelism now allowed
	peak        int     // the most ever allowed
	prev        int     // while probing: the level stepped up from; else 0
	base        float64 // the rate (bytes/s) at prev while probing, else at cur; 0: not measured
	hold        int     // samples left before the next step up
}

func newFillCtl(floor, ceil int) *fillCtl {
	floor = max(floor, 1)
	ceil = max(ceil, floor)
	return &fillCtl{floor: floor, ceil: ceil, cur: floor, peak: floor}
}

// stepUp is the next level up: by half, so a latency-bound fill reaches
// 16 from 4 in four steps (6, 9, 13, 16) while each step is large enough
// to measure.
func (f *fillCtl) stepUp(n int) int { return min(f.ceil, n+max(1, n/2)) }

// stepDown undoes about one stepUp.
func (f *fillCtl) stepDown(n int) int { return max(f.floor, n-max(1, n/3)) }

// next takes one sample and returns the parallelism to allow from now on.
func (f *fillCtl) next(s fillSample) int {
	switch {
	case s.failures > 0:
		// The server or the path is in trouble: fewer fetches, and no
		// probing for a while.
		if f.prev > 0 {
			f.cur = f.prev
		} else {
			f.cur = f.stepDown(f.cur)
		}
		f.prev, f.base, f.hold = 0, 0, fillHold
	case s.held || s.took <= 0:
		// Demand reads go first: do not grow while they wait, and do not
		// judge a level by a rate they (or the pacer) held down. A probe
		// in progress is judged by the next clean sample.
	default:
		f.clean(float64(s.bytes) / s.took.Seconds())
	}
	f.peak = max(f.peak, f.cur)
	return f.cur
}

// clean takes the rate of a sample neither failures nor demand disturbed.
func (f *fillCtl) clean(rate float64) {
	switch {
	case f.prev > 0 && rate >= f.base*fillGain:
		// The step paid: keep it, and try the next one at once.
		f.prev, f.base = 0, rate
	case f.prev > 0:
		// It did not: the link or the server is saturated.
		f.cur, f.prev, f.base, f.hold = f.prev, 0, 0, fillHold
		return
	case f.base > 0 && rate < f.base*fillDrop && f.cur > f.floor:
		f.cur, f.base, f.hold = f.stepDown(f.cur), 0, fillHold
		return
	default:
		f.base = rate
	}
	if f.hold > 0 {
		f.hold--
		return
	}
	if f.cur < f.ceil {
		f.prev, f.cur = f.cur, f.stepUp(f.cur)
	}
}
