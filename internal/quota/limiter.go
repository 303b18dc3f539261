package quota

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/config"
)

// Limiter holds requests to their keys' limits over a Store. A shared
// store that fails is given a second before it is asked again; meanwhile
// the policy holds: the local counters (Memory) enforce the same limits
// for this process alone, or the request is refused (closed).
type Limiter struct {
	store Store
	// local is the fallback while a shared store is down; nil: refuse.
	local  Store
	shared bool // store is shared (Redis): it may fail
	log    *slog.Logger
	// Failed counts the shared store's failures; nil: not counted.
	failed    func()
	downUntil atomic.Int64 // unix nanoseconds; 0: up
	downSince atomic.Int64 // when the current failure streak began; 0: none
}

// Options build a Limiter.
type Options struct {
	// Store keeps the counters; nil: a new Memory.
	Store Store
	// Shared marks Store as one that may fail (Redis); OnDown then says
	// what happens meanwhile: config.OnStoreDownLocal or Closed.
	Shared bool
	OnDown string
	Log    *slog.Logger
	// Failed is called at each failure of the shared store (a metric).
	Failed func()
}

// New returns a limiter.
func New(o Options) *Limiter {
	l := &Limiter{store: o.Store, shared: o.Shared, log: o.Log, failed: o.Failed}
	if l.store == nil {
		l.store = NewMemory()
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if o.Shared && o.OnDown != config.OnStoreDownClosed {
		l.local = NewMemory()
	}
	return l
}

// retryShared is how long a failed shared store is left alone.
const retryShared = time.Second

// Ticket is what a request took: its asks, the tokens it reserved and the
// store that holds them, and what its answer's headers say.
type Ticket struct {
	asks     [MaxAsks]Ask
	n        int
	reserved int64
	store    Store // nil: nothing taken
	Verdict  Verdict
}

// Taken reports whether t holds a charge to settle.
func (t *Ticket) Taken() bool { return t.store != nil }

// Take charges one request of key (named name, limits kl) and its user's
// (limits ul, when user is not ""), reserving tokens; rates says whether
// the per-minute limits apply (a background job's runs spend only the
// budgets). It fills t, and returns a 429 in OpenAI's shape when a limit
// refuses (Retry-After set when waiting helps), or a 503 when the shared
// store is down and the policy is closed.
func (l *Limiter) Take(ctx context.Context, now time.Time, t *Ticket, name string, kl config.KeyLimits, user string, ul config.KeyLimits, rates bool, tokens int64) error {
	*t = Ticket{}
	if !rates {
		kl.RequestsPerMinute, kl.TokensPerMinute = 0, 0
		ul.RequestsPerMinute, ul.TokensPerMinute = 0, 0
	}
	if kl.Any() {
		t.asks[t.n] = Ask{Subject: Subject{Key: name}, Limits: kl}
		t.n++
	}
	if user != "" && ul.Any() {
		t.asks[t.n] = Ask{Subject: Subject{Key: name, User: user}, Limits: ul}
		t.n++
	}
	if t.n == 0 {
		return nil
	}
	st := l.pick(now)
	if st == nil {
		return unavailable()
	}
	v, err := st.Take(ctx, now, t.asks[:t.n], tokens)
	if err != nil && st == l.store && l.shared {
		l.fail(now, err)
		if st = l.local; st == nil {
			return unavailable()
		}
		v, err = st.Take(ctx, now, t.asks[:t.n], tokens)
	} else if err == nil && st == l.store {
		l.up(now)
	}
	if err != nil {
		return unavailable()
	}
	t.Verdict = v
	if v.Denied != 0 {
		return refusal(name, user, &t.asks[v.Ask], v, tokens)
	}
	t.store, t.reserved = st, tokens
	return nil
}

// Settle corrects t's reserved tokens to used, the tokens the request
// spent (prompt and completion, as its answer reported).
func (l *Limiter) Settle(ctx context.Context, now time.Time, t *Ticket, used int64) {
	st := t.store
	t.store = nil
	if st == nil || used == t.reserved {
		return
	}
	if st != l.store || !l.shared {
		st.Adjust(ctx, now, t.asks[:t.n], used-t.reserved) // memory: cannot fail
		return
	}
	delta := used - t.reserved
	if t.budgeted() {
		// A budget must see this answer's tokens before the key's next
		// request is checked: the round trip is paid here, after a
		// stream's last event but before a whole answer's handler ends.
		if err := st.Adjust(context.WithoutCancel(ctx), now, t.asks[:t.n], delta); err != nil {
			l.fail(now, err)
		}
		return
	}
	// Per-minute limits only: the correction does not hold up the
	// request's goroutine for a round trip to the store.
	asks, n := t.asks, t.n
	go func() {
		if err := st.Adjust(context.WithoutCancel(ctx), now, asks[:n], delta); err != nil {
			l.fail(now, err)
		}
	}()
}

// budgeted reports whether one of t's asks has a day or month budget.
func (t *Ticket) budgeted() bool {
	for i := range t.n {
		if l := t.asks[i].Limits; l.TokensPerDay > 0 || l.TokensPerMonth > 0 {
			return true
		}
	}
	return false
}

// pick is the store to ask at now: the shared one unless it failed in
// the last second, then the policy's (nil: refuse).
func (l *Limiter) pick(now time.Time) Store {
	if d := l.downUntil.Load(); d != 0 && now.UnixNano() < d {
		return l.local
	}
	return l.store
}

// fail notes a failure of the shared store at now: logged once per
// streak, counted each time.
func (l *Limiter) fail(now time.Time, err error) {
	l.downUntil.Store(now.Add(retryShared).UnixNano())
	if l.failed != nil {
		l.failed()
	}
	if l.downSince.CompareAndSwap(0, now.UnixNano()) {
		policy := "refusing limited requests (on_store_down: closed)"
		if l.local != nil {
			policy = "each replica enforces the limits alone (on_store_down: local)"
		}
		l.log.Error("limit store unreachable; "+policy, "err", err)
	}
}

// up notes the shared store answering at now, ending a failure streak.
func (l *Limiter) up(now time.Time) {
	if s := l.downSince.Load(); s != 0 && l.downSince.CompareAndSwap(s, 0) {
		l.downUntil.Store(0)
		l.log.Info("limit store reachable again", "down_for", now.Sub(time.Unix(0, s)).Round(time.Millisecond).String())
	}
}

// Codes of the limits' errors.
const (
	CodeRateLimited = "rate_limit_exceeded"
	CodeBudget      = "insufficient_quota"
	CodeStoreDown   = "rate_limit_store_unavailable"
)

func unavailable() *apierror.Error {
	e := apierror.New(http.StatusServiceUnavailable, CodeStoreDown, "The rate-limit store is unreachable and this gateway refuses limited requests meanwhile; try again shortly.")
	e.RetryAfter = retryShared
	return e
}

// refusal is the 429 of a request a's limits refused with v.
func refusal(name, user string, a *Ask, v Verdict, tokens int64) *apierror.Error {
	who := "key " + name
	if a.User != "" {
		who = "user " + user + " of key " + name
	}
	var what string
	var limit, used int64
	ask := tokens
	code := CodeRateLimited
	lv := v.Levels[v.Ask]
	switch v.Denied {
	case Requests:
		what, limit, ask = "requests per minute (RPM)", a.Limits.RequestsPerMinute, 1
		used = limit - remaining(lv.RequestsAhead, limit)
	case Tokens:
		what, limit = "tokens per minute (TPM)", a.Limits.TokensPerMinute
		used = limit - remaining(lv.TokensAhead, limit)
	case Day:
		what, limit, used, code = "tokens per day", a.Limits.TokensPerDay, lv.DayUsed, CodeBudget
	case Month:
		what, limit, used, code = "tokens per month", a.Limits.TokensPerMonth, lv.MonthUsed, CodeBudget
	}
	var e *apierror.Error
	if v.RetryAfter > 0 {
		e = apierror.New(http.StatusTooManyRequests, code, "Rate limit reached for %s of %s: limit %d, used %d, requested %d. Please try again in %s.",
			what, who, limit, used, ask, Reset(v.RetryAfter))
		e.RetryAfter = v.RetryAfter
	} else {
		e = apierror.New(http.StatusTooManyRequests, code, "Request too large for the %s of %s: limit %d, requested %d.", what, who, limit, ask)
	}
	e.Type = apierror.TypeRateLimit
	if code == CodeBudget {
		e.Type = CodeBudget // OpenAI's type for an exhausted quota
	}
	return e
}

// remaining is how many units of a limit of n per minute are left when
// its arrival time runs ahead by ahead.
func remaining(ahead time.Duration, n int64) int64 {
	left := int64(float64(Minute-ahead) / interval(n))
	return min(max(left, 0), n)
}

// Headers are OpenAI's rate-limit headers of an answer.
const (
	HeaderLimitRequests     = "X-Ratelimit-Limit-Requests"
	HeaderRemainingRequests = "X-Ratelimit-Remaining-Requests"
	HeaderResetRequests     = "X-Ratelimit-Reset-Requests"
	HeaderLimitTokens       = "X-Ratelimit-Limit-Tokens"
	HeaderRemainingTokens   = "X-Ratelimit-Remaining-Tokens"
	HeaderResetTokens       = "X-Ratelimit-Reset-Tokens"
)

// rateHeaders are the headers of the requests' and the tokens' limits:
// the limit, what remains, when it is whole again; each as its HTTP name
// and its gRPC metadata key.
var rateHeaders = [2][3][2]string{
	{{HeaderLimitRequests, "x-ratelimit-limit-requests"}, {HeaderRemainingRequests, "x-ratelimit-remaining-requests"}, {HeaderResetRequests, "x-ratelimit-reset-requests"}},
	{{HeaderLimitTokens, "x-ratelimit-limit-tokens"}, {HeaderRemainingTokens, "x-ratelimit-remaining-tokens"}, {HeaderResetTokens, "x-ratelimit-reset-tokens"}},
}

// window is the tightest per-minute limit of one kind among a ticket's
// asks.
type window struct {
	on          bool
	limit, left int64
	reset       time.Duration
}

// tighter keeps the limit of n per minute, ahead by ahead, when it has
// less left than w's.
func (w *window) tighter(n int64, ahead time.Duration) {
	if n <= 0 {
		return
	}
	if left := remaining(ahead, n); !w.on || left < w.left {
		*w = window{on: true, limit: n, left: left, reset: ahead}
	}
}

// Describe passes t's rate-limit headers to set (the HTTP name and the
// gRPC metadata key): the tightest of its asks' per-minute limits.
func (t *Ticket) Describe(set func(name, key, value string)) {
	if t.n == 0 {
		return
	}
	var ws [2]window // requests, tokens
	for i := range t.n {
		a, lv := &t.asks[i], &t.Verdict.Levels[i]
		ws[0].tighter(a.Limits.RequestsPerMinute, lv.RequestsAhead)
		ws[1].tighter(a.Limits.TokensPerMinute, lv.TokensAhead)
	}
	// The values are cut from one string: one allocation, not six.
	var buf [128]byte
	b := buf[:0]
	var ends [2][3]int
	for j := range ws {
		if ws[j].on {
			b = strconv.AppendInt(b, ws[j].limit, 10)
			ends[j][0] = len(b)
			b = strconv.AppendInt(b, ws[j].left, 10)
			ends[j][1] = len(b)
			b = appendReset(b, ws[j].reset)
			ends[j][2] = len(b)
		}
	}
	v, start := string(b), 0
	for j := range ws {
		if ws[j].on {
			for f, h := range rateHeaders[j] {
				set(h[0], h[1], v[start:ends[j][f]])
				start = ends[j][f]
			}
		}
	}
}

// Reset formats a wait as OpenAI's reset headers do: "1s", "6m0s", "20ms".
func Reset(d time.Duration) string { return string(appendReset(nil, d)) }

func appendReset(b []byte, d time.Duration) []byte {
	if d < time.Second {
		return append(strconv.AppendInt(b, d.Milliseconds(), 10), "ms"...)
	}
	return append(b, d.Round(time.Millisecond).String()...)
}
