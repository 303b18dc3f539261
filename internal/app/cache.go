package app

import (
	"log/slog"
	"os"

	"github.com/omnigate/omnigate/internal/cache"
	"github.com/omnigate/omnigate/internal/clock"
	"github.com/omnigate/omnigate/internal/config"
)

// newAnswerCache makes the answer cache on cfg's stores (the Redis
// password from the variable cache.redis.password_env names). The stores
// are read at start: a reload keeps them.
func newAnswerCache(cfg *config.Config, log *slog.Logger) *cache.Cache {
	password := ""
	if e := cfg.Cache.Redis.PasswordEnv; e != "" {
		password = os.Getenv(e)
	}
	return cache.New(cfg.Cache, password, clock.Real{}, log)
}
