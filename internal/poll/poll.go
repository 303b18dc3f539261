// Package poll runs background loops that do one step on an interval
// (health probes, engine metrics scrapes) until they are stopped.
package poll

import (
	"context"
	"sync"
	"time"

	"github.com/omnigate/omnigate/internal/clock"
)

// Loops is a set of loops stopped together. The zero value is not
// usable; make one with New.
type Loops struct {
	clock  clock.Clock
	ctx    context.Context // ends with Stop, and the steps in flight with it
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns an empty set timed by clk.
func New(clk clock.Clock) *Loops {
	l := &Loops{clock: clk}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	return l
}

// Go runs step at once and then every interval, until Stop. step's
// context ends with Stop.
func (l *Loops) Go(interval time.Duration, step func(ctx context.Context)) {
	l.wg.Go(func() {
		for {
			step(l.ctx)
			select {
			case <-l.ctx.Done():
				return
			case <-l.clock.After(interval):
			}
		}
	})
}

// Now is the loops' clock.
func (l *Loops) Now() time.Time { return l.clock.Now() }

// Stop ends every loop and waits for them.
func (l *Loops) Stop() {
	l.cancel()
	l.wg.Wait()
}
