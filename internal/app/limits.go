package app

import (
	"log/slog"
	"os"

	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/quota"
	"github.com/omnigate/omnigate/internal/telemetry"
)

// newLimiter builds the keys' limiter from auth.limits: live state, kept
// across reloads (a change of auth.limits needs a restart); close
// releases its store.
func newLimiter(c config.LimitStore, m *telemetry.Metrics, log *slog.Logger) (l *quota.Limiter, close func()) {
	if c.Store != config.StoreRedis {
		return quota.New(quota.Options{Log: log}), func() {}
	}
	var password string
	if e := c.Redis.PasswordEnv; e != "" {
		password = os.Getenv(e)
	}
	r := quota.NewRedis(quota.RedisOptions{Addr: c.Redis.Addr, Password: password, DB: c.Redis.DB, Prefix: c.Redis.Prefix, Timeout: c.Redis.Timeout.D()})
	l = quota.New(quota.Options{Store: r, Shared: true, OnDown: c.OnStoreDown, Log: log.With("limits", "redis", "addr", c.Redis.Addr), Failed: m.LimitStoreFailed})
	return l, func() { r.Close() }
}
