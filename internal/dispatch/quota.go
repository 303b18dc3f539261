package dispatch

import (
	"context"
	"time"

	"github.com/omnigate/omnigate/internal/quota"
	"github.com/omnigate/omnigate/internal/telemetry"
)

// takeQuota charges the call's key (and its user, when the key limits
// users) one request and the prompt's estimated tokens; interactive says
// whether the per-minute rates apply (a background job's runs spend only
// the budgets). A refusal is counted and returned.
func (c *Core) takeQuota(ctx context.Context, call *Call, l *quota.Limiter, interactive bool) error {
	k := call.Key
	var user string
	if k.UserLimits.Any() {
		if sp := call.Req.UserSpan; sp[1]-sp[0] > 2 && sp[1] <= len(call.Body) {
			user = string(call.Body[sp[0]+1 : sp[1]-1]) // the JSON string's content, escapes kept
		}
	}
	err := l.Take(ctx, call.st.start, &call.st.quota, k.Name, k.Limits, user, k.UserLimits, interactive, promptTokens(call))
	if err != nil {
		c.metrics.Limited(k.Name, call.st.quota.Verdict.Denied)
	}
	return err
}

// promptTokens estimates a request's prompt: 4 characters a token.
func promptTokens(call *Call) int64 { return int64(max(call.Req.PromptChars/4, 1)) }

// settleQuota corrects what the call reserved to what it spent: the
// usage its answer reported (nothing for a cache hit or a request no
// engine answered; the reservation stands for an answer without usage).
func (c *Core) settleQuota(call *Call, a *Answer, rec *telemetry.Record, now time.Time) {
	t := &call.st.quota
	used := int64(0)
	if a != nil && a.Deployment != nil {
		if !rec.HasUsage {
			return
		}
		used = int64(rec.PromptTokens + rec.CompletionTokens)
	}
	call.st.snap.Limits.Settle(context.Background(), now, t, used)
}

// DescribeLimits passes the call's rate-limit headers (OpenAI's
// x-ratelimit-*) to set, for an answer or an error alike; none when its
// key has no per-minute limits.
func (call *Call) DescribeLimits(set func(name, key, value string)) {
	if call.st != nil {
		call.st.quota.Describe(set)
	}
}
