package quota

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/omnigate/omnigate/internal/auth"
	"github.com/omnigate/omnigate/internal/catalog"
	"github.com/omnigate/omnigate/internal/config"
)

// BenchmarkAuthAndLimits is what a limited key's request pays on the hot
// path with the in-process store: the key checked by hash among 1,000,
// its model allowed, its rates and budgets taken, its headers formatted
// and its tokens corrected.
func BenchmarkAuthAndLimits(b *testing.B) {
	cfg := config.Default()
	cfg.ApplyDefaults()
	cat, _ := catalog.New(cfg)
	var keys []config.APIKey
	for i := range 1000 {
		keys = append(keys, config.APIKey{Name: "k" + string(rune('a'+i%26)) + string(rune('0'+i/26%10)) + string(rune('0'+i/260)), Hash: auth.Hash("sk-" + string(rune(i)))})
	}
	lim := config.KeyLimits{RequestsPerMinute: 1 << 40, TokensPerMinute: 1 << 50, TokensPerDay: 1 << 60, TokensPerMonth: 1 << 61}
	keys = append(keys, config.APIKey{Name: "mine", Hash: auth.Hash("sk-mine-0123456789abcdef"), Models: []string{"small"}, Limits: lim})
	ks := auth.New(config.Auth{Keys: keys}, cat, func(string) bool { return false })
	l := New(Options{})
	h := http.Header{"Authorization": {"Bearer sk-mine-0123456789abcdef"}}
	now := time.Now()
	ctx := context.Background()
	var t Ticket
	set := func(name, key, value string) {}
	b.ReportAllocs()
	for b.Loop() {
		k, err := ks.Authenticate(h, now)
		if err != nil || k.Allows("qwen3-omni-7b", false) != nil {
			b.Fatal(err)
		}
		if err := l.Take(ctx, now, &t, k.Name, k.Limits, "", k.UserLimits, true, 12); err != nil {
			b.Fatal(err)
		}
		t.Describe(set)
		l.Settle(ctx, now, &t, 40)
	}
}

// BenchmarkRedisTake is one Take on the Redis store: a round trip to the
// server and the script (with a Redis at 127.0.0.1:6379).
func BenchmarkRedisTake(b *testing.B) {
	r := testRedis(b)
	asks := ask("bench", config.KeyLimits{RequestsPerMinute: 1 << 40, TokensPerMinute: 1 << 50, TokensPerDay: 1 << 60})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Take(ctx, time.Now(), asks, 12); err != nil {
			b.Fatal(err)
		}
	}
}
