package enginemetrics

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/omnigate/omnigate/internal/balance"
	"github.com/omnigate/omnigate/internal/clock"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/poll"
)

// Target is one deployment to scrape.
type Target struct {
	Model, Deployment string
	// Get fetches the engine's metrics page (backend.Getter.Get); the
	// caller closes the body.
	Get    func(ctx context.Context) (io.ReadCloser, error)
	State  *balance.State
	Config config.EngineMetrics
}

// Collector runs the scrapes of one configuration snapshot.
type Collector struct {
	*poll.Loops
	log *slog.Logger
}

// Start begins scraping targets: each at once, then every interval. Stop
// ends it.
func Start(targets []Target, clk clock.Clock, log *slog.Logger) *Collector {
	c := &Collector{Loops: poll.New(clk), log: log}
	for _, t := range targets {
		c.watch(t.Model, t.Deployment, "engine metrics scrape", t.Config.Interval.D(), func(ctx context.Context) error {
			return c.scrape(ctx, t)
		})
	}
	return c
}

// watch runs scrape every interval, logging what (a scrape of model's
// deployment) when it starts failing and when it works again.
func (c *Collector) watch(model, deployment, what string, interval time.Duration, scrape func(ctx context.Context) error) {
	failing := false
	c.Go(interval, func(ctx context.Context) {
		err := scrape(ctx)
		if ctx.Err() != nil {
			return
		}
		// A failed scrape stores nothing: the last one ages until it
		// stops counting. One warning when scrapes start failing, not
		// one per interval.
		switch {
		case err != nil && !failing:
			failing = true
			c.log.Warn(what+" failing", "model", model, "deployment", deployment, "err", err)
		case err != nil:
			c.log.Debug(what+" failed", "model", model, "deployment", deployment, "err", err)
		case failing:
			failing = false
			c.log.Info(what+" working again", "model", model, "deployment", deployment)
		}
	})
}

// scrape fetches and parses one metrics page and stores it in the
// deployment's state.
func (c *Collector) scrape(ctx context.Context, t Target) error {
	// The gateway's own requests, counted before the engine is asked: the
	// engine's answer includes at least those still running by then.
	local := t.State.InFlight()
	b, err := fetch(ctx, t.Get, t.Config.Timeout.D())
	if err != nil {
		return err
	}
	m, err := ParseBytes(b, c.Now())
	if err != nil {
		return err
	}
	m.Local = local
	t.State.Engine.Store(&m)
	return nil
}
