package quota

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/omnigate/omnigate/internal/redisclient"
)

// Redis is the Store shared by every replica that points at one server
// and prefix: a subject's counters are one hash, PREFIX:k:KEY or
// PREFIX:u:LEN:KEY:USER, and each Take or Adjust is one script, atomic
// on the server, timed by the server's clock (replicas' clocks may
// differ; the server's is one).
type Redis struct {
	client *redis.Client
	prefix string
	// clock, when set, times the script instead of the server (tests).
	clock bool
}

// RedisOptions configure a Redis store.
type RedisOptions struct {
	Addr     string // host:port
	Password string
	DB       int
	Prefix   string        // key prefix; default "omnigate:limits"
	Timeout  time.Duration // per command; default 100ms
	// CallerClock times the counters by the now passed to Take and
	// Adjust instead of the server's clock (tests with a fake clock).
	CallerClock bool
}

// NewRedis returns a store on the server at o.Addr; it connects on first
// use.
func NewRedis(o RedisOptions) *Redis {
	if o.Prefix == "" {
		o.Prefix = "omnigate:limits"
	}
	if o.Timeout <= 0 {
		o.Timeout = 100 * time.Millisecond
	}
	c := redisclient.New(o.Addr, o.Password, o.DB, o.Timeout)
	return &Redis{client: c, prefix: o.Prefix, clock: o.CallerClock}
}

// Close closes the connections.
func (r *Redis) Close() error { return r.client.Close() }

// key is the hash of subject s.
func (r *Redis) key(s Subject) string {
	if s.User == "" {
		return r.prefix + ":k:" + s.Key
	}
	return r.prefix + ":u:" + strconv.Itoa(len(s.Key)) + ":" + s.Key + ":" + s.User
}

// Take implements Store.
func (r *Redis) Take(ctx context.Context, now time.Time, asks []Ask, tokens int64) (Verdict, error) {
	res, err := r.run(ctx, now, asks, "take", tokens)
	if err != nil {
		return Verdict{}, err
	}
	if len(res) != 3+4*len(asks) {
		return Verdict{}, fmt.Errorf("quota: the limits script answered %d values", len(res))
	}
	v := Verdict{Denied: int(res[0]), Ask: int(max(res[1]-1, 0)), RetryAfter: time.Duration(res[2]) * time.Microsecond}
	for i := range asks {
		o := 3 + 4*i
		v.Levels[i] = Level{
			RequestsAhead: time.Duration(res[o]) * time.Microsecond, TokensAhead: time.Duration(res[o+1]) * time.Microsecond,
			DayUsed: res[o+2], MonthUsed: res[o+3],
		}
	}
	return v, nil
}

// Adjust implements Store.
func (r *Redis) Adjust(ctx context.Context, now time.Time, asks []Ask, delta int64) error {
	if delta == 0 {
		return nil
	}
	_, err := r.run(ctx, now, asks, "adjust", delta)
	return err
}

func (r *Redis) run(ctx context.Context, now time.Time, asks []Ask, mode string, tokens int64) ([]int64, error) {
	w := WindowsAt(now)
	var keys [MaxAsks]string
	args := make([]any, 0, 7+4*len(asks))
	t := int64(0)
	if r.clock {
		t = now.UnixMicro()
	}
	args = append(args, t, tokens, w.Day, w.Month, w.DayEnd.UnixMicro(), w.MonthEnd.UnixMicro(), mode)
	for i, a := range asks {
		keys[i] = r.key(a.Subject)
		l := a.Limits
		args = append(args, l.RequestsPerMinute, l.TokensPerMinute, l.TokensPerDay, l.TokensPerMonth)
	}
	return limitsScript.Run(ctx, r.client, keys[:len(asks)], args...).Int64Slice()
}

// limitsScript is charge and adjust (memory.go) for a shared store, in
// microseconds. ARGV: now (0: the server's clock), tokens (take) or delta
// (adjust), the day and month window ids and ends, the mode, then four
// limits per key: requests and tokens per minute, tokens per day and
// month. It answers the denied dimension (0: none), the 1-based key that
// denied, the retry wait (0: never), then per key the requests' and
// tokens' time ahead of now and the day's and month's use.
var limitsScript = redis.NewScript(`
local P = 60000000
local now = tonumber(ARGV[1])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local toks = tonumber(ARGV[2])
local day, mon = tonumber(ARGV[3]), tonumber(ARGV[4])
local dayEnd, monEnd = tonumber(ARGV[5]), tonumber(ARGV[6])
local mode = ARGV[7]
local st = {}
local denied, who, retry = 0, 0, 0
for i = 1, #KEYS do
  local b = 8 + (i - 1) * 4
  local rl, tl, dl, ml = tonumber(ARGV[b]), tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  local v = redis.call('HMGET', KEYS[i], 'r', 't', 'd', 'du', 'm', 'mu')
  local s = {r = tonumber(v[1]) or 0, t = tonumber(v[2]) or 0, du = 0, mu = 0, rl = rl, tl = tl, dl = dl, ml = ml}
  if tonumber(v[3]) == day then s.du = tonumber(v[4]) or 0 end
  if tonumber(v[5]) == mon then s.mu = tonumber(v[6]) or 0 end
  st[i] = s
  if mode == 'adjust' then
    if tl > 0 then s.t = math.max(math.max(s.t, now) + toks * P / tl, now) end
    s.du = math.max(s.du + toks, 0)
    s.mu = math.max(s.mu + toks, 0)
  elseif denied == 0 then
    local nr, nt = s.r, s.t
    if rl > 0 then
      nr = math.max(s.r, now) + P / rl
      if nr - now > P then
        denied, who, retry = 1, i, (1 > rl) and 0 or (nr - now - P)
      end
    end
    if denied == 0 and tl > 0 then
      nt = math.max(s.t, now) + toks * P / tl
      if nt - now > P then
        denied, who, retry = 2, i, (toks > tl) and 0 or (nt - now - P)
      end
    end
    if denied == 0 and dl > 0 and (s.du >= dl or s.du + toks > dl) then
      denied, who, retry = 3, i, (toks > dl) and 0 or (dayEnd - now)
    end
    if denied == 0 and ml > 0 and (s.mu >= ml or s.mu + toks > ml) then
      denied, who, retry = 4, i, (toks > ml) and 0 or (monEnd - now)
    end
    s.nr, s.nt = nr, nt
  end
end
if mode == 'adjust' or denied == 0 then
  for i = 1, #KEYS do
    local s = st[i]
    if mode ~= 'adjust' then
      if s.rl > 0 then s.r = s.nr end
      if s.tl > 0 then s.t = s.nt end
      s.du = s.du + toks
      s.mu = s.mu + toks
    end
    redis.call('HSET', KEYS[i], 'r', s.r, 't', s.t, 'd', day, 'du', s.du, 'm', mon, 'mu', s.mu)
    local ttl = P
    if s.ml > 0 then ttl = monEnd - now elseif s.dl > 0 then ttl = dayEnd - now end
    redis.call('PEXPIRE', KEYS[i], math.floor(math.max(ttl, P) / 1000) + 60000)
  end
end
local out = {denied, who, math.floor(retry)}
for i = 1, #KEYS do
  local s = st[i]
  out[#out + 1] = math.floor(math.max(s.r - now, 0))
  out[#out + 1] = math.floor(math.max(s.t - now, 0))
  out[#out + 1] = s.du
  out[#out + 1] = s.mu
end
return out
`)
