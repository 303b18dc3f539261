package sim

import (
	"math"
	"sync"
	"sync/atomic"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/clock"
)

// errClosed is what in-flight requests get when the engine shuts down.
var errClosed = apierror.New(503, "", "the engine is shutting down")

// stream is the delivery side of one request: the scheduler publishes each
// choice's progress, the handler waits on notify and reads it.
type stream struct {
	notify chan struct{} // capacity 1: a pending wake-up

	mu       sync.Mutex
	produced []int // tokens produced per choice
	err      error
}

func newStream(n int) *stream {
	return &stream{notify: make(chan struct{}, 1), produced: make([]int, n)}
}

func (st *stream) wake() {
	select {
	case st.notify <- struct{}{}:
	default:
	}
}

func (st *stream) publish(idx, generated int) {
	st.mu.Lock()
	st.produced[idx] = generated
	st.mu.Unlock()
	st.wake()
}

func (st *stream) fail(err error) {
	st.mu.Lock()
	if st.err == nil {
		st.err = err
	}
	st.mu.Unlock()
	st.wake()
}

// progress copies each choice's produced count into dst and returns the
// stream's error, if any.
func (st *stream) progress(dst []int) ([]int, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return append(dst[:0], st.produced...), st.err
}

// scheduler runs the core in time: one goroutine, like vLLM's engine loop.
type scheduler struct {
	core     *core
	clock    clock.Clock
	metrics  *metrics
	slowdown *factor // read before each step
	in       chan schedMsg
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once

	// What the metrics have been told of the core's prefix-cache counts.
	queries, hits int
}

// factor is a float64 shared between goroutines; its zero value reads 1.
type factor struct{ bits atomic.Uint64 }

func (f *factor) load() float64 {
	if v := math.Float64frombits(f.bits.Load()); v > 0 {
		return v
	}
	return 1
}

func (f *factor) store(v float64) { f.bits.Store(math.Float64bits(v)) }

// schedMsg adds or aborts the sequences of one request.
type schedMsg struct {
	add, abort []*seq
}

func newScheduler(p Profile, clk clock.Clock, m *metrics, slowdown *factor) *scheduler {
	s := &scheduler{core: newCore(p), clock: clk, metrics: m, slowdown: slowdown, in: make(chan schedMsg), stop: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

// submit hands the sequences to the engine.
func (s *scheduler) submit(seqs []*seq) error {
	select {
	case s.in <- schedMsg{add: seqs}:
		return nil
	case <-s.done:
		return errClosed
	}
}

// abort takes the sequences out of the engine, freeing their KV.
func (s *scheduler) abort(seqs []*seq) {
	select {
	case s.in <- schedMsg{abort: seqs}:
	case <-s.done:
	}
}

// close stops the loop; every sequence still in it fails with errClosed.
func (s *scheduler) close() {
	s.once.Do(func() { close(s.stop) })
	<-s.done
}

func (s *scheduler) apply(m schedMsg) {
	for _, q := range m.add {
		s.core.add(q)
	}
	for _, q := range m.abort {
		if s.core.remove(q) {
			s.metrics.aborted.Inc()
		}
	}
	s.gauges()
}

func (s *scheduler) gauges() {
	s.metrics.running.Set(float64(len(s.core.running)))
	s.metrics.waiting.Set(float64(len(s.core.waiting)))
	s.metrics.setKVUsage(s.core.usage())
}

func (s *scheduler) run() {
	defer close(s.done)
	defer s.failAll()
	for {
		if s.core.idle() {
			select {
			case m := <-s.in:
				s.apply(m)
				continue
			case <-s.stop:
				return
			}
		}
		before := s.core.preemptions
		s.core.slowdown = s.slowdown.load()
		st := s.core.plan()
		if n := s.core.preemptions - before; n > 0 {
			s.metrics.preemptions.Add(float64(n))
		}
		s.prefixCounts()
		s.gauges()
		if len(st.work) == 0 {
			if s.core.preemptions != before {
				continue // the next plan can admit again
			}
			select { // nothing fits: wait for an abort
			case m := <-s.in:
				s.apply(m)
				continue
			case <-s.stop:
				return
			}
		}
		timer := s.clock.After(st.dur)
	wait:
		for {
			select {
			case <-timer:
				break wait
			case m := <-s.in:
				s.apply(m) // arrivals join the next step; aborts take effect now
			case <-s.stop:
				return
			}
		}
		emitted := s.core.complete(st)
		for _, q := range emitted {
			if q.generated == q.target {
				s.core.remove(q)
			}
		}
		// The metrics first: a client that has its last token and reads
		// /metrics sees the step done (its KV freed).
		s.metrics.generation.Add(float64(len(emitted)))
		s.gauges()
		for _, q := range emitted {
			q.out.publish(q.idx, q.generated)
		}
	}
}

// prefixCounts adds the prefix-cache lookups of the admissions just planned.
func (s *scheduler) prefixCounts() {
	if n := s.core.queries - s.queries; n > 0 {
		s.metrics.pcQueries.Add(float64(n))
		s.queries = s.core.queries
	}
	if n := s.core.hits - s.hits; n > 0 {
		s.metrics.pcHits.Add(float64(n))
		s.hits = s.core.hits
	}
}

func (s *scheduler) failAll() {
	for _, q := range append(append([]*seq(nil), s.core.running...), s.core.waiting...) {
		s.core.remove(q)
		q.out.fail(errClosed)
	}
	s.gauges()
}
