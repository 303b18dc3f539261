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

	"github.com/omnigate/omnigate/internal/balance"
	"github.com/omnigate/omnigate/internal/clock"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/poll"
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
	*poll.Loops
	log *slog.Logger
}

// Start begins checking targets: each is probed at once, then every
// interval. Stop ends it.
func Start(targets []Target, clk clock.Clock, log *slog.Logger) *Checker {
	c := &Checker{Loops: poll.New(clk), log: log}
	for _, t := range targets {
		var fails, oks int
		c.Go(t.Check.Interval.D(), func(ctx context.Context) {
			pctx, pcancel := context.WithTimeout(ctx, t.Check.Timeout.D())
			err := t.Prober.Probe(pctx)
			pcancel()
			if ctx.Err() != nil {
				return // stopped: the probe's failure says nothing
			}
			if err == nil {
				fails, oks = 0, oks+1
			} else {
				fails, oks = fails+1, 0
			}
			c.judge(t, err, fails, oks)
		})
	}
	return c
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
			t.State.Breaker.ProbeNow(c.Now())
			c.log.Info("deployment back in rotation", "model", t.Model, "deployment", t.Deployment)
		}
	}
}
