package app

import (
	"io"
	"sync"
	"time"
)

// logWriter batches access lines into fewer writes: one write(2) per line
// would cost a request a few microseconds of system time at load. A line
// waits at most flushEvery (Envoy's access logs wait up to a second), and
// a batch never grows past flushBytes. Close writes what is left; a killed
// process loses at most flushEvery of access lines (the process's own
// log is not batched).
type logWriter struct {
	w io.Writer

	mu      sync.Mutex
	buf     []byte
	pending bool // a flush is scheduled
	closed  bool
}

const (
	flushEvery = 100 * time.Millisecond
	flushBytes = 32 << 10
)

func newLogWriter(w io.Writer) *logWriter { return &logWriter{w: w, buf: make([]byte, 0, flushBytes)} }

// Write queues p, a whole line as slog writes it.
func (l *logWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return l.w.Write(p)
	}
	if len(l.buf)+len(p) > flushBytes {
		l.flushLocked()
		if len(p) > flushBytes {
			return l.w.Write(p)
		}
	}
	l.buf = append(l.buf, p...)
	if !l.pending {
		l.pending = true
		time.AfterFunc(flushEvery, l.flush)
	}
	return len(p), nil
}

func (l *logWriter) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending = false
	l.flushLocked()
}

func (l *logWriter) flushLocked() {
	if len(l.buf) > 0 {
		l.w.Write(l.buf) // nowhere to report a failed log write
		l.buf = l.buf[:0]
	}
}

// Close writes what is queued; later writes go straight through.
func (l *logWriter) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushLocked()
	l.closed = true
	return nil
}
