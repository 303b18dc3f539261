package store

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/omnigate/omnigate/internal/config"
)

func TestNATSKeys(t *testing.T) {
	tests := []struct{ key, want string }{
		{"job/abc_DEF-123", "r.job.abc_DEF-123"},
		{"batch/x/done", "r.batch.x.done"},
		{"odd/a.b*c>d e=f", "r.odd.a=2Eb=2Ac=3Ed=20e=3Df"},
		{"a//b/", "r.a.=.b.="},
		{"", "r.="},
		{"ünï", "r.=C3=BCn=C3=AF"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			got := encodeKey("r", tt.key)
			if got != tt.want {
				t.Errorf("encodeKey(%q) = %q, want %q", tt.key, got, tt.want)
			}
			if back, ok := decodeKey(got); !ok || back != tt.key {
				t.Errorf("decodeKey(%q) = %q, %v", got, back, ok)
			}
		})
	}
	for _, bad := range []string{"nons", "r.a=4", "r.=zz"} {
		if k, ok := decodeKey(bad); ok {
			t.Errorf("decodeKey(%q) = %q, want not ok", bad, k)
		}
	}
}

// TestOpen opens each store from its configuration, files dir included,
// the way the gateway does.
func TestOpen(t *testing.T) {
	ctx := context.Background()
	base := config.Jobs{Lease: config.Duration(time.Second)}
	tests := []struct {
		name  string
		cfg   func(c *config.Jobs)
		clean func(t *testing.T, c config.Jobs) // skips without the server; cleans up after
	}{
		{"embedded", func(c *config.Jobs) { c.Store, c.Files = config.JobsEmbedded, config.FilesDir }, nil},
		{"redis, files dir", func(c *config.Jobs) {
			c.Store, c.Files = config.JobsRedisStore, config.FilesDir
			c.Redis = config.JobsRedis{Addr: redisAddr(), Prefix: testPrefix(t), PasswordEnv: "TEST_REDIS_PASSWORD"}
		}, func(t *testing.T, c config.Jobs) { cleanRedis(t, c.Redis.Prefix) }},
		{"nats, files dir", func(c *config.Jobs) {
			c.Store, c.Files = config.JobsNATSStore, config.FilesDir
			c.NATS = config.JobsNATS{URL: natsURL(), Prefix: testPrefix(t)}
		}, func(t *testing.T, c config.Jobs) { cleanNATS(t, c.NATS.Prefix) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			cfg.Dir = filepath.Join(t.TempDir(), "data")
			tt.cfg(&cfg)
			if tt.clean != nil {
				tt.clean(t, cfg)
			}
			getenv := func(name string) string { return map[string]string{"TEST_REDIS_PASSWORD": ""}[name] }
			b, err := Open(ctx, cfg, getenv)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if _, err := b.Files.Put(ctx, "file-x", strings.NewReader("x")); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(cfg.FilesPath(), "file-x")); err != nil {
				t.Errorf("files dir: %v", err)
			}
		})
	}
	t.Run("nats credentials env empty", func(t *testing.T) {
		cfg := base
		cfg.Store, cfg.Files = config.JobsNATSStore, config.JobsNATSStore
		cfg.NATS = config.JobsNATS{URL: natsURL(), Prefix: "unused", CredentialsEnv: "TEST_NATS_CREDS"}
		if _, err := Open(ctx, cfg, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "TEST_NATS_CREDS") {
			t.Errorf("Open: %v, want an error naming TEST_NATS_CREDS", err)
		}
	})
}
