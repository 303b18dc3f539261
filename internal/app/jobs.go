package app

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/jobs"
	"github.com/omnigate/omnigate/internal/jobs/store"
)

// maxJobAnswer bounds a job's answer, read whole and stored.
const maxJobAnswer = 64 << 20

// newJobs builds the jobs service of cfg over the gateway's core; its
// backend opens when first needed (see startJobs).
func (g *Gateway) newJobs(cfg *config.Config) *jobs.Service {
	j := cfg.Jobs
	var secret []byte
	if e := j.Webhook.SecretEnv; e != "" {
		if v := os.Getenv(e); v != "" {
			secret = []byte(v)
		} else {
			g.log.Warn("webhooks are off: their secret's variable is empty", "jobs.webhook.secret_env", e)
		}
	}
	open := func(ctx context.Context) (*jobs.Backend, error) { return store.Open(ctx, j, os.Getenv) }
	return jobs.New(j, open, jobs.CoreExecutor{Core: g.core, MaxAnswer: maxJobAnswer}, jobs.Options{Log: g.log, Secret: secret, Metrics: g.metrics})
}

// startJobs lets the gateway's workers run jobs until ctx ends. A shared
// store is opened now; the embedded one now only when its file exists
// (jobs may be waiting in it), else at the first job, so a gateway that
// never runs one writes nothing to disk.
func (g *Gateway) startJobs(ctx context.Context) error {
	j := g.Config().Jobs
	eager := j.Store != config.JobsEmbedded
	if !eager {
		_, err := os.Stat(filepath.Join(j.Dir, config.EmbeddedJobsFile))
		eager = err == nil
	}
	return g.jobs.Start(ctx, eager)
}

// closeJobs stops the workers, giving the jobs running grace to finish
// (the others run again once their leases lapse), and closes the store.
func (g *Gateway) closeJobs(grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := g.jobs.Close(ctx); err != nil {
		g.log.Warn("job store not closed cleanly", "err", err)
	}
}
