package telemetry

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// deploymentMetrics are the handles of one (model, deployment) pair: the
// model that answered and the deployment it answered from.
type deploymentMetrics struct {
	latency, ttft, perToken, upstream prometheus.Observer
	prompt, completion                prometheus.Counter
}

// deployment returns the handles of the model's deployment name, resolved
// on first use. After the first request of each deployment this is a read
// lock and a map lookup: no allocation.
func (mm *ModelMetrics) deployment(name string) *deploymentMetrics {
	mm.mu.RLock()
	d, ok := mm.deps[name]
	mm.mu.RUnlock()
	if ok {
		return d
	}
	mm.mu.Lock()
	defer mm.mu.Unlock()
	if d, ok = mm.deps[name]; ok {
		return d
	}
	m := mm.m
	d = &deploymentMetrics{
		latency:    m.latency.WithLabelValues(mm.name, name),
		ttft:       m.ttft.WithLabelValues(mm.name, name),
		perToken:   m.perToken.WithLabelValues(mm.name, name),
		upstream:   m.upstreamT.WithLabelValues(mm.name, name),
		prompt:     m.tokens.WithLabelValues(mm.name, name, "prompt"),
		completion: m.tokens.WithLabelValues(mm.name, name, "completion"),
	}
	mm.deps[name] = d
	return d
}

// Finished records one finished request: asked is the metric handles of
// the model it was routed to first (nil when routing failed), served
// those of the model that answered (nil when none did), rec what it did.
func (m *Metrics) Finished(asked, served *ModelMetrics, rec *Record) {
	model := ""
	if asked != nil {
		model = asked.name
	}
	m.request(reqKey{model: model, deployment: rec.Deployment, code: rec.Status, stream: rec.Stream}).Inc()
	if rec.Key != "" {
		m.keyed(rec)
	}
	if asked != nil {
		if rec.Cache != "" {
			if c := asked.cacheResult(rec.Cache); c != nil {
				c.Inc()
			}
			if rec.Similarity > 0 {
				m.similarity.WithLabelValues(asked.name).Observe(float64(rec.Similarity))
			}
		}
		if rec.Admission {
			asked.queueWait.Observe(rec.Queued.Seconds())
		}
		asked.overhead.Observe(rec.Overhead.Seconds())
	}
	if served == nil {
		return
	}
	d := served.deployment(rec.Deployment)
	if rec.Status < 400 {
		d.latency.Observe(rec.Total.Seconds())
	}
	if rec.Deployment == "" {
		return // answered by the cache: no upstream time, tokens or first token to count
	}
	d.upstream.Observe(rec.Upstream.Seconds())
	if rec.Stream && rec.FirstByte > 0 {
		d.ttft.Observe(rec.FirstByte.Seconds())
	}
	if rec.PerToken > 0 {
		d.perToken.Observe(rec.PerToken.Seconds())
	}
	if rec.HasUsage {
		if rec.PromptTokens > 0 {
			d.prompt.Add(float64(rec.PromptTokens))
		}
		if rec.CompletionTokens > 0 {
			d.completion.Add(float64(rec.CompletionTokens))
		}
	}
}

// reqKey is one omnigate_requests_total series.
type reqKey struct {
	model, deployment string
	code              int
	stream            bool
}

// request returns k's counter, resolved once per label set. The label
// values are bounded (configured names, the statuses the gateway
// answers with), so the cache is too.
func (m *Metrics) request(k reqKey) prometheus.Counter {
	m.mu.RLock()
	c, ok := m.byKey[k]
	m.mu.RUnlock()
	if ok {
		return c
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok = m.byKey[k]; !ok {
		c = m.requests.WithLabelValues(k.model, k.deployment, strconv.Itoa(k.code), strconv.FormatBool(k.stream))
		m.byKey[k] = c
	}
	return c
}

// Tokens counts the usage of an answer the client did not get (an
// escalated small-tier answer) against the deployment that gave it: its
// engine did the work.
func (mm *ModelMetrics) Tokens(deployment string, prompt, completion int64) {
	d := mm.deployment(deployment)
	if prompt > 0 {
		d.prompt.Add(float64(prompt))
	}
	if completion > 0 {
		d.completion.Add(float64(completion))
	}
}
