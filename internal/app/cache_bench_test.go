package app

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/omnigate/omnigate/internal/config"
)

// benchCachedRequest is benchRequest at temperature 0: cacheable.
var benchCachedRequest = strings.Replace(benchRequest, `"temperature":0.7`, `"temperature":0`, 1)

// BenchmarkCache compares, side by side, a request forwarded upstream
// (the cache off) with a hit in memory, a hit in Redis (at
// OMNIGATE_REDIS, default 127.0.0.1:6379; skipped without one), and a
// streamed hit replayed from a whole answer.
func BenchmarkCache(b *testing.B) {
	up := httptest.NewServer(jsonUpstream())
	defer up.Close()
	redisAddr := os.Getenv("OMNIGATE_REDIS")
	if redisAddr == "" {
		redisAddr = "127.0.0.1:6379"
	}
	for _, bc := range []struct {
		name  string
		cache config.Cache
		body  string
	}{
		{"forwarded", config.Cache{}, benchCachedRequest},
		{"hit-memory", config.Cache{Mode: "exact"}, benchCachedRequest},
		{"hit-redis", config.Cache{Mode: "exact", Store: "redis"}, benchCachedRequest},
		{"hit-memory-stream", config.Cache{Mode: "exact"}, strings.Replace(benchCachedRequest, `"max_tokens"`, `"stream":true,"max_tokens"`, 1)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := &config.Config{Cache: config.CacheStores{Redis: config.RedisStore{Addr: redisAddr, Prefix: "omnigate-bench"}},
				Models: []config.Model{{Name: "m", Cache: bc.cache,
					Deployments: []config.Deployment{{Name: "up", Kind: "openai", URL: up.URL + "/v1"}}}}}
			cfg.ApplyDefaults()
			gw, err := NewGateway(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				b.Fatal(err)
			}
			defer gw.Close()
			if bc.cache.Store == "redis" {
				if err := gw.answers.Ping(b.Context()); err != nil {
					b.Skipf("no Redis at %s: %v", redisAddr, err)
				}
				defer gw.answers.Purge(b.Context(), "", "")
			}
			serveOnce(b, gw, strings.Replace(bc.body, `"stream":true,`, ``, 1)) // kept from a whole answer
			serveOnce(b, gw, bc.body)
			b.ReportAllocs()
			for b.Loop() {
				serveOnce(b, gw, bc.body)
			}
		})
	}
}
