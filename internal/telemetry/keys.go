package telemetry

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// keyMetrics are the usage by API key: the key names are the config's, so
// the labels are bounded; the secrets never appear.
type keyMetrics struct {
	requests *prometheus.CounterVec // {key, model, code}
	tokens   *prometheus.CounterVec // {key, model, kind}
	// storeErrors counts the key store's failed reads.
	storeErrors prometheus.Counter
}

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
	k.storeErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "omnigate_key_store_errors_total",
		Help: "Reads of the API key store (auth.store) that failed; the keys read last stay in force meanwhile.",
	})
	reg.MustRegister(k.requests, k.tokens, k.storeErrors)
	return k
}

// KeyStoreErrors is the counter of the key store's failed reads.
func (m *Metrics) KeyStoreErrors() prometheus.Counter { return m.keys.storeErrors }

// keyed counts a request of an API key (rec.Key set).
func (m *Metrics) keyed(rec *Record) {
	m.keys.requests.WithLabelValues(rec.Key, rec.Model, strconv.Itoa(rec.Status)).Inc()
	if rec.HasUsage && rec.Served != "" {
		if rec.PromptTokens > 0 {
			m.keys.tokens.WithLabelValues(rec.Key, rec.Served, "prompt").Add(float64(rec.PromptTokens))
		}
		if rec.CompletionTokens > 0 {
			m.keys.tokens.WithLabelValues(rec.Key, rec.Served, "completion").Add(float64(rec.CompletionTokens))
		}
	}
}
