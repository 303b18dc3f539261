// Package sparselog lets a warning that can repeat many times a second
// (accept failing out of descriptors, connections refused) through once
// per interval, counting the ones held back.
package sparselog

import (
	"sync"
	"time"
)

// Limiter lets one line through per Every and counts the others. Now is
// the clock (time.Now when nil).
type Limiter struct {
	Every time.Duration
	Now   func() time.Time

	mu      sync.Mutex
	next    time.Time
	dropped int
}

// Allow reports whether to log now, and how many lines were held back
// since the last one.
func (l *Limiter) Allow() (bool, int) {
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	t := now()
	if t.Before(l.next) {
		l.dropped++
		return false, 0
	}
	l.next = t.Add(l.Every)
	n := l.dropped
	l.dropped = 0
	return true, n
}
