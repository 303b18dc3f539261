package cache

import (
	"context"
	"io"
	"sync"
)

// Flights coalesces identical requests in flight: the first (the leader)
// goes upstream and its answer's bytes are recorded as they are relayed;
// the others (followers) read the same bytes, the ones so far at once and
// then the rest as they come, without an upstream request of their own.
type Flights struct {
	mu sync.Mutex
	m  map[FlightKey]*Flight
}

// FlightKey identifies requests that can share one answer byte for byte:
// the same cache key, asked for in the same form.
type FlightKey struct {
	Key    Key
	Stream bool
	Usage  bool // stream_options.include_usage
}

// Flight is one answer being relayed to its leader.
type Flight struct {
	key     FlightKey
	flights *Flights

	mu      sync.Mutex
	buf     []byte
	more    chan struct{} // closed and replaced on every write
	done    bool
	err     error // why the answer ended early; nil: complete
	status  int   // the leader's status, once it answers
	ctype   string
	started bool
	waiters int // followers so far
}

// Join returns the flight of k: a new one with leader true when none is
// in the air (the caller leads it and must end it with Answer and Finish,
// or Abort), else the one in flight, to follow.
func (fs *Flights) Join(k FlightKey) (f *Flight, leader bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.m == nil {
		fs.m = make(map[FlightKey]*Flight)
	}
	if f := fs.m[k]; f != nil {
		f.mu.Lock()
		f.waiters++
		f.mu.Unlock()
		return f, false
	}
	f = &Flight{key: k, flights: fs, more: make(chan struct{})}
	fs.m[k] = f
	return f, true
}

// Followers counts the requests that joined f after its leader.
func (f *Flight) Followers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.waiters
}

// InFlight counts the flights in the air.
func (fs *Flights) InFlight() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return len(fs.m)
}

// release takes f out of the map: requests from now on start their own.
func (f *Flight) release() {
	fs := f.flights
	fs.mu.Lock()
	if fs.m[f.key] == f {
		delete(fs.m, f.key)
	}
	fs.mu.Unlock()
}

// Answer records that the leader's upstream answered with status and
// content type: followers can start.
func (f *Flight) Answer(status int, contentType string) {
	f.mu.Lock()
	f.status, f.ctype, f.started = status, contentType, true
	f.signalLocked()
	f.mu.Unlock()
}

// Write records a piece of the leader's answer as it is relayed.
func (f *Flight) Write(p []byte) {
	f.mu.Lock()
	f.buf = append(f.buf, p...)
	f.signalLocked()
	f.mu.Unlock()
}

// Finish ends the flight: err nil when the answer is complete, else what
// cut it (followers then end the same way).
func (f *Flight) Finish(err error) {
	f.release()
	f.mu.Lock()
	f.done, f.err = true, err
	f.signalLocked()
	f.mu.Unlock()
}

// Abort ends a flight whose leader got no answer: followers are told to
// go upstream themselves (Wait returns false).
func (f *Flight) Abort() { f.Finish(errAborted) }

var errAborted = &abortError{}

type abortError struct{}

func (*abortError) Error() string { return "cache: the coalesced request failed before answering" }

func (f *Flight) signalLocked() {
	close(f.more)
	f.more = make(chan struct{})
}

// Wait blocks a follower until the leader has answered (ok: read the
// answer with Reader) or given up (ok false: send the request yourself),
// or ctx ends.
func (f *Flight) Wait(ctx context.Context) (status int, contentType string, ok bool, err error) {
	for {
		f.mu.Lock()
		switch {
		case f.started:
			s, ct := f.status, f.ctype
			f.mu.Unlock()
			return s, ct, true, nil
		case f.done:
			f.mu.Unlock()
			return 0, "", false, nil
		}
		more := f.more
		f.mu.Unlock()
		select {
		case <-more:
		case <-ctx.Done():
			return 0, "", false, ctx.Err()
		}
	}
}

// Reader returns a follower's view of the answer: every byte from the
// start, blocking for the rest until the flight ends or ctx does. A flight
// cut early ends the reader with the leader's error.
func (f *Flight) Reader(ctx context.Context) io.ReadCloser { return &flightReader{f: f, ctx: ctx} }

type flightReader struct {
	f   *Flight
	ctx context.Context
	off int
}

func (r *flightReader) Read(p []byte) (int, error) {
	f := r.f
	for {
		f.mu.Lock()
		if r.off < len(f.buf) {
			n := copy(p, f.buf[r.off:])
			r.off += n
			f.mu.Unlock()
			return n, nil
		}
		if f.done {
			err := f.err
			f.mu.Unlock()
			if err == nil {
				return 0, io.EOF
			}
			return 0, err
		}
		more := f.more
		f.mu.Unlock()
		select {
		case <-more:
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
	}
}

func (r *flightReader) Close() error { return nil }
