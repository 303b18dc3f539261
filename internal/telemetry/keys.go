package telemetry

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// keyMetrics are the usage by API key: the key names are the config's, so
// the labels are bounded; the secrets never appear.
type keyMetrics struct {
	requests *prometheus.CounterVec // {key, model, code}
	tokens   *prometheus.CounterVec // {key, model, kind}
	limited  *prometheus.CounterVec // {key, limit}
	// limitStoreErrors counts the failures of the shared limit store.
	limitStoreErrors prometheus.Counter

	// The series resolved so far: key names and models are bounded, so
	// these are too, and a keyed request does not hash its labels.
	mu   sync.RWMutex
	reqs map[keyReq]prometheus.Counter
	toks map[keyTok][2]prometheus.Counter // prompt, completion
	// storeErrors counts the key store's failed reads.
	storeErrors prometheus.Counter
}

type keyReq struct {
	key, model string
	code       int
}

type keyTok struct{ key, model string }

func newKeyMetrics(reg *prometheus.Registry) *keyMetrics {
	k := &keyMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "omnigate_key_requests_total",
			Help: "Requests by API key name, the model asked for and the status sent (with auth.keys or auth.store configured).",
		}, []string{"key", "model", "code"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "omnigate_key_tokens_total",
			Help: "Tokens the engines reported, by API key name, the model that answered and kind (prompt, completion).",
		}, []string{"key", "model", "kind"}),
	}
	k.limited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "omnigate_key_limited_total",
		Help: "Requests refused by their API key's limits, by key name and the limit that refused (requests_per_minute, tokens_per_minute, tokens_per_day, tokens_per_month, store_down).",
	}, []string{"key", "limit"})
	k.limitStoreErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "omnigate_limit_store_errors_total",
		Help: "Failures of the shared rate-limit store (auth.limits.store redis); meanwhile auth.limits.on_store_down holds.",
	})
	k.reqs, k.toks = map[keyReq]prometheus.Counter{}, map[keyTok][2]prometheus.Counter{}
	k.storeErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "omnigate_key_store_errors_total",
		Help: "Reads of the API key store (auth.store) that failed; the keys read last stay in force meanwhile.",
	})
	reg.MustRegister(k.requests, k.tokens, k.limited, k.storeErrors, k.limitStoreErrors)
	return k
}

// KeyStoreErrors is the counter of the key store's failed reads.
func (m *Metrics) KeyStoreErrors() prometheus.Counter { return m.keys.storeErrors }

// keyed counts a request of an API key (rec.Key set).
func (m *Metrics) keyed(rec *Record) {
	k := m.keys
	r := keyReq{rec.Key, rec.Model, rec.Status}
	k.mu.RLock()
	c, ok := k.reqs[r]
	k.mu.RUnlock()
	if !ok {
		c = k.requests.WithLabelValues(rec.Key, rec.Model, strconv.Itoa(rec.Status))
		k.mu.Lock()
		k.reqs[r] = c
		k.mu.Unlock()
	}
	c.Inc()
	if !rec.HasUsage || rec.Served == "" || rec.PromptTokens <= 0 && rec.CompletionTokens <= 0 {
		return
	}
	tk := keyTok{rec.Key, rec.Served}
	k.mu.RLock()
	t, ok := k.toks[tk]
	k.mu.RUnlock()
	if !ok {
		t = [2]prometheus.Counter{k.tokens.WithLabelValues(rec.Key, rec.Served, "prompt"), k.tokens.WithLabelValues(rec.Key, rec.Served, "completion")}
		k.mu.Lock()
		k.toks[tk] = t
		k.mu.Unlock()
	}
	if rec.PromptTokens > 0 {
		t[0].Add(float64(rec.PromptTokens))
	}
	if rec.CompletionTokens > 0 {
		t[1].Add(float64(rec.CompletionTokens))
	}
}

// limitNames name the quota dimensions in omnigate_key_limited_total;
// index 0: the limit store was down.
var limitNames = [...]string{"store_down", "requests_per_minute", "tokens_per_minute", "tokens_per_day", "tokens_per_month"}

// Limited counts a request of key refused by its limit dim (a
// quota dimension; 0: the limit store was down).
func (m *Metrics) Limited(key string, dim int) {
	if dim < 0 || dim >= len(limitNames) {
		dim = 0
	}
	m.keys.limited.WithLabelValues(key, limitNames[dim]).Inc()
}

// LimitStoreFailed counts a failure of the shared limit store.
func (m *Metrics) LimitStoreFailed() { m.keys.limitStoreErrors.Inc() }
