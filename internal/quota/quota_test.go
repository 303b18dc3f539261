package quota

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/config"
)

// stores runs f on the memory store and, when a Redis server is reachable
// (127.0.0.1:6379; OMNIGATE_REDIS overrides), on a Redis store timed by
// the test's clock: the script must do what memory.go does.
func stores(t *testing.T, f func(t *testing.T, s Store)) {
	t.Run("memory", func(t *testing.T) { f(t, NewMemory()) })
	t.Run("redis", func(t *testing.T) { f(t, testRedis(t)) })
}

func testRedis(t testing.TB) *Redis {
	t.Helper()
	addr := os.Getenv("OMNIGATE_REDIS")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	prefix := fmt.Sprintf("omnigate-test:%s:%d", t.Name(), time.Now().UnixNano())
	r := NewRedis(RedisOptions{Addr: addr, Prefix: prefix, Timeout: time.Second, CallerClock: true})
	if err := r.client.Ping(context.Background()).Err(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no Redis at %s: %v", addr, err)
		}
		t.Skipf("no Redis at %s: %v", addr, err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		keys, _ := r.client.Keys(ctx, prefix+"*").Result()
		if len(keys) > 0 {
			r.client.Del(ctx, keys...)
		}
		r.Close()
	})
	return r
}

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func ask(key string, l config.KeyLimits) []Ask { return []Ask{{Subject: Subject{Key: key}, Limits: l}} }

func take(t *testing.T, s Store, now time.Time, asks []Ask, tokens int64) Verdict {
	t.Helper()
	v, err := s.Take(context.Background(), now, asks, tokens)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestRequestsPerMinute(t *testing.T) {
	stores(t, func(t *testing.T, s Store) {
		a := ask("k", config.KeyLimits{RequestsPerMinute: 3})
		for i := range 3 {
			if v := take(t, s, t0, a, 0); v.Denied != 0 {
				t.Fatalf("request %d of 3 refused: %+v", i+1, v)
			}
		}
		v := take(t, s, t0, a, 0)
		if v.Denied != Requests || v.RetryAfter != 20*time.Second {
			t.Fatalf("4th request at once: %+v, want refused by requests, retry in 20s", v)
		}
		if got := remaining(v.Levels[0].RequestsAhead, 3); got != 0 {
			t.Errorf("remaining after 3 of 3 = %d", got)
		}
		// A third of the minute later, one place has come back, no more.
		if v := take(t, s, t0.Add(20*time.Second), a, 0); v.Denied != 0 {
			t.Fatalf("after 20s: %+v", v)
		}
		if v := take(t, s, t0.Add(20*time.Second), a, 0); v.Denied != Requests {
			t.Fatalf("second after 20s: %+v", v)
		}
		// A full minute idle: all three again, and the levels say so.
		v = take(t, s, t0.Add(2*time.Minute), a, 0)
		if v.Denied != 0 || remaining(v.Levels[0].RequestsAhead, 3) != 2 || v.Levels[0].RequestsAhead != 20*time.Second {
			t.Fatalf("after an idle minute: %+v", v)
		}
	})
}

func TestTokensPerMinuteReserveAndCorrect(t *testing.T) {
	stores(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		a := ask("k", config.KeyLimits{TokensPerMinute: 1000})
		if v := take(t, s, t0, a, 600); v.Denied != 0 {
			t.Fatalf("600 of 1000: %+v", v)
		}
		v := take(t, s, t0, a, 600)
		if v.Denied != Tokens || v.RetryAfter != 12*time.Second {
			t.Fatalf("1200 of 1000: %+v, want tokens, retry in 12s", v)
		}
		// The first answer used 300: the other 300 come back.
		if err := s.Adjust(ctx, t0, a, -300); err != nil {
			t.Fatal(err)
		}
		if v := take(t, s, t0, a, 600); v.Denied != 0 || remaining(v.Levels[0].TokensAhead, 1000) != 100 {
			t.Fatalf("after the refund: %+v", v)
		}
		// An answer longer than its prompt overdraws: nothing passes until
		// the debt is paid.
		if err := s.Adjust(ctx, t0, a, 500); err != nil {
			t.Fatal(err)
		}
		if v := take(t, s, t0.Add(10*time.Second), a, 1); v.Denied != Tokens {
			t.Fatalf("overdrawn: %+v", v)
		}
		// More than the whole limit never passes.
		if v := take(t, s, t0.Add(time.Hour), a, 1001); v.Denied != Tokens || v.RetryAfter != 0 {
			t.Fatalf("1001 of 1000: %+v, want refused for good", v)
		}
	})
}

func TestBudgets(t *testing.T) {
	stores(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		a := ask("k", config.KeyLimits{TokensPerDay: 1000, TokensPerMonth: 1500})
		if v := take(t, s, t0, a, 500); v.Denied != 0 {
			t.Fatalf("500 of 1000: %+v", v)
		}
		if err := s.Adjust(ctx, t0, a, 400); err != nil { // the answer took 900
			t.Fatal(err)
		}
		v := take(t, s, t0, a, 200)
		if v.Denied != Day || v.RetryAfter != 14*time.Hour || v.Levels[0].DayUsed != 900 {
			t.Fatalf("1100 of 1000: %+v, want day, retry at midnight (14h), used 900", v)
		}
		if v := take(t, s, t0, a, 100); v.Denied != 0 || v.Levels[0].DayUsed != 1000 {
			t.Fatalf("1000 of 1000: %+v", v)
		}
		if v := take(t, s, t0, a, 0); v.Denied != Day {
			t.Fatalf("a spent budget still passes an empty prompt: %+v", v)
		}
		// The next day the day budget starts again; the month's is 1000
		// of 1500 spent.
		next := t0.Add(24 * time.Hour)
		if v := take(t, s, next, a, 400); v.Denied != 0 || v.Levels[0].DayUsed != 400 || v.Levels[0].MonthUsed != 1400 {
			t.Fatalf("next day: %+v", v)
		}
		v = take(t, s, next, a, 200)
		if v.Denied != Month || v.RetryAfter != 14*time.Hour+29*24*time.Hour {
			t.Fatalf("month spent: %+v, want month, retry on the 1st (29d14h)", v)
		}
		if v := take(t, s, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), a, 200); v.Denied != 0 || v.Levels[0].MonthUsed != 200 {
			t.Fatalf("new month: %+v", v)
		}
	})
}

// TestAllOrNone: a request its user's limit refuses spends nothing of its
// key's.
func TestAllOrNone(t *testing.T) {
	stores(t, func(t *testing.T, s Store) {
		asks := []Ask{
			{Subject: Subject{Key: "k"}, Limits: config.KeyLimits{RequestsPerMinute: 10}},
			{Subject: Subject{Key: "k", User: "alice"}, Limits: config.KeyLimits{RequestsPerMinute: 1}},
		}
		if v := take(t, s, t0, asks, 0); v.Denied != 0 {
			t.Fatalf("first: %+v", v)
		}
		v := take(t, s, t0, asks, 0)
		if v.Denied != Requests || v.Ask != 1 {
			t.Fatalf("alice's second: %+v, want refused by ask 1", v)
		}
		if got := remaining(v.Levels[0].RequestsAhead, 10); got != 9 {
			t.Errorf("the key's remaining after a refusal = %d, want 9", got)
		}
		bob := []Ask{asks[0], {Subject: Subject{Key: "k", User: "bob"}, Limits: asks[1].Limits}}
		if v := take(t, s, t0, bob, 0); v.Denied != 0 {
			t.Fatalf("bob: %+v", v)
		}
	})
}

// failing is a shared store that is down.
type failing struct{ takes int }

func (f *failing) Take(context.Context, time.Time, []Ask, int64) (Verdict, error) {
	f.takes++
	return Verdict{}, errors.New("connection refused")
}
func (f *failing) Adjust(context.Context, time.Time, []Ask, int64) error {
	return errors.New("connection refused")
}

func TestStoreDownPolicy(t *testing.T) {
	kl := config.KeyLimits{RequestsPerMinute: 2}
	for _, tc := range []struct {
		policy string
		want   []int // statuses of three requests
	}{
		{config.OnStoreDownLocal, []int{0, 0, http.StatusTooManyRequests}},
		{config.OnStoreDownClosed, []int{503, 503, 503}},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			f := &failing{}
			failures := 0
			l := New(Options{Store: f, Shared: true, OnDown: tc.policy, Failed: func() { failures++ }})
			var tk Ticket
			for i, want := range tc.want {
				err := l.Take(context.Background(), t0, &tk, "k", kl, "", config.KeyLimits{}, true, 0)
				if got := status(err); got != want {
					t.Errorf("request %d: %d (%v), want %d", i+1, got, err, want)
				}
			}
			// The store is asked once, then left alone for a second.
			if f.takes != 1 || failures != 1 {
				t.Errorf("store asked %d times, %d failures counted; want 1, 1", f.takes, failures)
			}
			l.Take(context.Background(), t0.Add(retryShared), &tk, "k", kl, "", config.KeyLimits{}, true, 0)
			if f.takes != 2 {
				t.Errorf("after a second the store was not asked again")
			}
		})
	}
}

func status(err error) int {
	if err == nil {
		return 0
	}
	return apierror.From(err).Status
}

func TestRefusalsAndHeaders(t *testing.T) {
	l := New(Options{})
	kl := config.KeyLimits{RequestsPerMinute: 2, TokensPerMinute: 100}
	var tk Ticket
	ctx := context.Background()
	if err := l.Take(ctx, t0, &tk, "team-a", kl, "", config.KeyLimits{}, true, 30); err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	tk.Describe(func(name, _, v string) { h.Set(name, v) })
	want := map[string]string{
		"X-Ratelimit-Limit-Requests": "2", "X-Ratelimit-Remaining-Requests": "1", "X-Ratelimit-Reset-Requests": "30s",
		"X-Ratelimit-Limit-Tokens": "100", "X-Ratelimit-Remaining-Tokens": "70", "X-Ratelimit-Reset-Tokens": "18s",
	}
	for k, v := range want {
		if h.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, h.Get(k), v)
		}
	}
	l.Settle(ctx, t0, &tk, 50)
	l.Take(ctx, t0, &tk, "team-a", kl, "", config.KeyLimits{}, true, 10)
	err := l.Take(ctx, t0, &tk, "team-a", kl, "", config.KeyLimits{}, true, 10)
	e := apierror.From(err)
	if e.Status != 429 || e.Code != CodeRateLimited || e.Type != apierror.TypeRateLimit || e.RetryAfter != 30*time.Second {
		t.Fatalf("third request: %+v", e)
	}
	if want := "Rate limit reached for requests per minute (RPM) of key team-a: limit 2, used 2, requested 1. Please try again in 30s."; e.Message != want {
		t.Errorf("message %q\nwant    %q", e.Message, want)
	}
	// Jobs spend only the budgets: the rates do not hold them.
	if err := l.Take(ctx, t0, &tk, "team-a", kl, "", config.KeyLimits{}, false, 10); err != nil || tk.Taken() {
		t.Errorf("a job's run with only rates: %v, taken %v", err, tk.Taken())
	}
	err = l.Take(ctx, t0, &tk, "team-a", config.KeyLimits{TokensPerDay: 5}, "", config.KeyLimits{}, false, 10)
	if e := apierror.From(err); e.Status != 429 || e.Code != CodeBudget || e.RetryAfter != 0 {
		t.Errorf("10 tokens of a 5-token day: %+v", e)
	}
}

func TestReset(t *testing.T) {
	for d, want := range map[time.Duration]string{
		20 * time.Millisecond: "20ms", time.Second: "1s", 6 * time.Minute: "6m0s", 1500 * time.Microsecond: "1ms", 0: "0ms",
	} {
		if got := Reset(d); got != want {
			t.Errorf("Reset(%v) = %q, want %q", d, got, want)
		}
	}
}
