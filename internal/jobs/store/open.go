// Package store holds the job backends behind jobs.Backend: the embedded
// single-file store (bbolt) for one gateway, Redis and NATS JetStream for
// many, and file contents in a directory, in Redis or in an object store.
package store

import (
	"context"
	"fmt"

	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/jobs"
)

// Open opens the backend cfg names (cfg has defaults applied; see
// config.Jobs), reading secrets through getenv.
func Open(ctx context.Context, cfg config.Jobs, getenv func(string) string) (*jobs.Backend, error) {
	filesDir := ""
	if cfg.Files == config.FilesDir {
		filesDir = cfg.FilesPath()
	}
	switch cfg.Store {
	case config.JobsEmbedded:
		if cfg.Files != config.FilesDir {
			return nil, fmt.Errorf("jobs: the embedded store keeps files in a directory, not %q", cfg.Files)
		}
		return OpenEmbedded(cfg.Dir, cfg.Lease.D())
	case config.JobsRedisStore:
		o := RedisOptions{Addr: cfg.Redis.Addr, DB: cfg.Redis.DB, Prefix: cfg.Redis.Prefix, FilesDir: filesDir}
		if e := cfg.Redis.PasswordEnv; e != "" {
			o.Password = getenv(e)
		}
		return OpenRedis(ctx, o, cfg.Lease.D())
	case config.JobsNATSStore:
		o := NATSOptions{URL: cfg.NATS.URL, Prefix: cfg.NATS.Prefix, FilesDir: filesDir}
		if e := cfg.NATS.CredentialsEnv; e != "" {
			if o.Credentials = getenv(e); o.Credentials == "" {
				return nil, fmt.Errorf("jobs: jobs.nats.credentials_env names %s, which is empty", e)
			}
		}
		return OpenNATS(ctx, o, cfg.Lease.D())
	}
	return nil, fmt.Errorf("jobs: %q is not embedded, redis or nats", cfg.Store)
}
