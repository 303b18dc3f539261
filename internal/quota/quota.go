// Package quota enforces the API keys' rate limits and token budgets:
// requests and tokens per minute as GCRA (a request spends its share of
// the minute, which comes back steadily), tokens per day and month as
// totals over the calendar window (UTC). A request reserves its prompt's
// estimate up front; its answer's usage corrects the charge.
//
// The counters live in one Store: Memory for one process, Redis for a
// fleet of replicas (one atomic script per request, so a limit holds for
// the fleet, not per replica).
package quota

import (
	"context"
	"time"

	"github.com/omnigate/omnigate/internal/config"
)

// Subject is whose counters an Ask spends: a key's, or one user's of a
// key (User set).
type Subject struct {
	Key, User string
}

// Ask is one subject's part of a request: the limits it is held to.
type Ask struct {
	Subject
	Limits config.KeyLimits
}

// Dimensions of a limit, in the order a denial names them.
const (
	Requests = iota + 1 // requests per minute
	Tokens              // tokens per minute
	Day                 // tokens per day
	Month               // tokens per month
)

// Minute is the period of the per-minute limits.
const Minute = time.Minute

// Level is what one subject has spent, as a Store reads it: for the
// minute limits how far their theoretical arrival time runs ahead of now
// (zero: the full limit is available), for the budgets what the current
// window has used.
type Level struct {
	RequestsAhead, TokensAhead time.Duration
	DayUsed, MonthUsed         int64
}

// Verdict is a Store's answer to Take: the levels of the asks (after the
// charge when allowed, as they were when not) and, when refused, which
// ask and dimension refused it and how long until it would pass.
type Verdict struct {
	Levels [MaxAsks]Level
	// Denied is 0 when allowed, else the dimension that refused.
	Denied int
	// Ask is the index of the ask that refused.
	Ask int
	// RetryAfter is how long until the request would pass; 0: it never
	// will (it asks more than the limit).
	RetryAfter time.Duration
}

// MaxAsks is the most asks of one request: its key's and its user's.
const MaxAsks = 2

// Store keeps the counters. Take charges every ask one request and tokens
// when every limit allows it, and nothing otherwise (all or none, in one
// step for every replica sharing the store); Adjust adds delta tokens
// (negative: a refund) to the asks' token counters once the usage is
// known. now is the caller's clock: a shared store may use its own.
type Store interface {
	Take(ctx context.Context, now time.Time, asks []Ask, tokens int64) (Verdict, error)
	Adjust(ctx context.Context, now time.Time, asks []Ask, delta int64) error
}

// Windows are the calendar windows of the budgets at now: their ids and
// when they end.
type Windows struct {
	Day, Month       int64
	DayEnd, MonthEnd time.Time
}

// WindowsAt returns the budget windows at now (UTC).
func WindowsAt(now time.Time) Windows {
	u := now.UTC()
	y, m, d := u.Date()
	dayStart := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	monthStart := time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
	return Windows{
		Day:      dayStart.Unix() / 86400,
		Month:    int64(y)*12 + int64(m) - 1,
		DayEnd:   dayStart.AddDate(0, 0, 1),
		MonthEnd: monthStart.AddDate(0, 1, 0),
	}
}

// interval is how much of the minute one unit of a limit of n per minute
// takes.
func interval(n int64) float64 { return float64(Minute) / float64(n) }
