package admission

import (
	"math"
	"time"
)

// The gradient controller's constants (Netflix concurrency-limits'
// Gradient2 defaults where it has one).
const (
	// windowMinSamples is the fewest samples of a window; a window also
	// holds at least limit samples, about one turn of every place, so the
	// effect of the last change is seen before the next.
	windowMinSamples = 10
	// tolerance is how far above the floor the window's latency may be
	// and still count as no queueing: time to first token rises with the
	// engine's batch even when nothing waits inside it.
	tolerance = 1.5
	// minGradient bounds one window's cut, so an outlier window cannot
	// halve the limit more than once.
	minGradient = 0.5
	// smoothing is the weight of a cut's estimate in the limit; a probe
	// up by the queue allowance applies whole, so a limit that started
	// low reaches the engines' capacity in a few windows.
	smoothing = 0.2
	// floorDown and floorRise are how fast the floor follows a window's
	// latency: down by a quarter of the gap (the no-load latency is the low
	// one), up by at most 1% a window, so a latency that stays higher (a
	// longer prompt mix, slower hardware) becomes the floor in about 70
	// windows per doubling, while a burst of overload is not learned as
	// normal before the limit has come down.
	floorDown = 0.25
	floorRise = 0.01
)

// gradient is the adaptive concurrency limit. Not safe for concurrent
// use: the Queue's mutex guards it.
type gradient struct {
	limit    float64 // in [min, max]
	min, max float64
	floor    float64 // long-term latency, ns; 0 before the first window
	short    float64 // the last window's mean latency, ns

	// The open window.
	sum    float64 // of its latencies, ns
	n      int     // samples
	peak   int     // most requests in flight or queued at a sample
	queued bool    // a sample may have waited in an engine's queue
}

func newGradient(initial, min, max int) gradient {
	g := gradient{limit: float64(initial)}
	g.setBounds(min, max)
	return g
}

// setBounds changes the bounds (a reload), keeping the learned state.
func (g *gradient) setBounds(min, max int) {
	g.min, g.max = float64(min), float64(max)
	g.limit = math.Min(math.Max(g.limit, g.min), g.max)
}

// places is the limit as a count of requests.
func (g *gradient) places() int { return int(g.limit) }

// sample adds one successful attempt's time to first token, with demand
// the requests in flight (this one included) and queued when it ended,
// and queued false when its engine is known to have queued nothing (its
// engine metrics said so). It reports whether a window closed, i.e. the
// limit may have changed.
func (g *gradient) sample(latency time.Duration, demand int, queued bool) bool {
	g.sum += float64(latency)
	g.n++
	g.peak = max(g.peak, demand)
	g.queued = g.queued || queued
	if g.n < max(windowMinSamples, g.places()) {
		return false
	}
	g.update(g.sum/float64(g.n), g.peak, g.queued)
	g.sum, g.n, g.peak, g.queued = 0, 0, 0, false
	return true
}

// update is Gradient2's step on one window of mean latency short (ns)
// that saw at most peak requests in flight or queued, and whose samples
// may have waited in an engine's queue (queued).
func (g *gradient) update(short float64, peak int, queued bool) {
	g.short = short
	switch {
	case g.floor == 0:
		g.floor = short
	case short < g.floor:
		g.floor += (short - g.floor) * floorDown
	default:
		g.floor += math.Min(short-g.floor, g.floor*floorRise)
	}
	// Within tolerance, probe up by the queue allowance √limit; past it,
	// cut by the gradient alone. (Gradient2 adds the allowance always,
	// which with a tolerance cancels the cut at small limits: at 16 a
	// doubled latency would give 0.75·16 + 4 = 16.)
	next := g.limit + math.Sqrt(g.limit)
	if grad := tolerance * g.floor / short; grad < 1 && queued {
		// Slower, and an engine may have queued: cut. Slower with no
		// engine queueing is a bigger batch, which is what the places
		// are for: the probe up goes on.
		next = g.limit*(1-smoothing) + g.limit*math.Max(grad, minGradient)*smoothing
	}
	if peak < g.places() {
		// Not every place was taken: a limit nobody uses does not grow.
		next = math.Min(next, g.limit)
	}
	g.limit = math.Min(math.Max(next, g.min), g.max)
}
