// Package health runs the active health checks: one goroutine per
// deployment probes its engine on an interval, takes it out of rotation
// after the configured failures in a row and brings it back after the
// configured successes. Passive health (the breaker) learns from requests;
// this learns without them, so a dead engine leaves rotation and /readyz
// within an interval even when no request is sent to it.
package health

import (
	"context"
	"log/slog"
	"sync"

	"github.com/omnigate/omnigate/internal/balance"
	"github.com/omnigate/omnigate/internal/clock"
	"github.com/omnigate/omnigate/internal/config"
)

// Prober asks an engine whether it is up.
type Prober interface {
	Probe(ctx context.Context) error
}

// Target is one deployment to check.
type Target struct {
	Model, Deployment string
	Prober            Prober
	State             *balance.State
	Check             config.HealthCheck
}

// Checker runs the checks of one configuration snapshot.
type Checker struct {
	clock  clock.Clock
	log    *slog.Logger
	ctx    context.Context // ends with Stop, and the probes in flight with it
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Start begins checking targets: each is probed at once, then every
// interval. Stop ends it.
func Start(targets []Target, clk clock.Clock, log *slog.Logger) *Checker {
	c := &Checker{clock: clk, log: log}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	for _, t := range targets {
		c.wg.Add(1)
		go c.run(t)
	}
	return c
}

// Stop ends every check and waits for them.
func (c *Checker) Stop() {
	c.cancel()
	c.wg.Wait()
}

func (c *Checker) run(t Target) {
	defer c.wg.Done()
	ctx := c.ctx
	var fails, oks int
	for {
		pctx, pcancel := context.WithTimeout(ctx, t.Check.Timeout.D())
		err := t.Prober.Probe(pctx)
		pcancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			fails, oks = 0, oks+1
		} else {
			fails, oks = fails+1, 0
		}
		c.judge(t, err, fails, oks)
		select {
		case <-ctx.Done():
			return
		case <-c.clock.After(t.Check.Interval.D()):
		}
	}
}

// judge moves the deployment in or out of rotation once a run of probes
// reaches its threshold; the first conclusion is drawn from the first
// probe either way, so a deployment starts up or down at once.
func (c *Checker) judge(t Target, err error, fails, oks int) {
	was := t.State.Health()
	switch {
	case err != nil && (fails >= t.Check.Failures || was == balance.Unchecked) && was != balance.Down:
		t.State.SetHealth(balance.Down)
		c.log.Warn("deployment out of rotation", "model", t.Model, "deployment", t.Deployment,
			"failed_checks", fails, "err", err)
	case err == nil && (oks >= t.Check.Successes || was == balance.Unchecked) && was != balance.Up:
		t.State.SetHealth(balance.Up)
		if was == balance.Down {
			// Back: its breaker, opened by the requests that failed on
			// it, need not wait out its cool-down before a probe.
			t.State.Breaker.ProbeNow(c.clock.Now())
			c.log.Info("deployment back in rotation", "model", t.Model, "deployment", t.Deployment)
		}
	}
}
