package telemetry

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// routeMetrics count automatic routing's decisions and escalations.
type routeMetrics struct {
	decisions   *prometheus.CounterVec // {name, model, reason}
	escalations *prometheus.CounterVec // {from, to, reason}
	shadow      *prometheus.CounterVec // {model, candidate, result}
}

func newRouteMetrics(reg *prometheus.Registry) *routeMetrics {
	r := &routeMetrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "omnigate_route_decisions_total",
			Help: "Requests to an auto name, by the name, the model chosen and why: constraint:<what>, rule:<n>, latency:realtime, score, default.",
		}, []string{"name", "model", "reason"}),
		escalations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "omnigate_escalations_total",
			Help: "Auto-routed requests whose small-tier answer was weak and were answered by the large tier instead, by why (length, refusal, invalid_json, low_logprob).",
		}, []string{"from", "to", "reason"}),
	}
	r.shadow = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "omnigate_shadow_requests_total",
		Help: "Requests mirrored to a model's shadow candidate (models[].shadow), by model, candidate and result: agree, differ, error, dropped.",
	}, []string{"model", "candidate", "result"})
	reg.MustRegister(r.decisions, r.escalations, r.shadow)
	return r
}

// Routed counts an automatic routing decision: the auto name asked,
// the model chosen and why (a score's value is dropped from the label).
func (m *Metrics) Routed(name, model, why string) {
	if strings.HasPrefix(why, "score:") {
		why = "score"
	}
	m.route.decisions.WithLabelValues(name, model, why).Inc()
}

// Escalated counts an escalation from one model to another.
func (m *Metrics) Escalated(from, to, reason string) {
	m.route.escalations.WithLabelValues(from, to, reason).Inc()
}

// Shadowed counts a request mirrored from model to candidate, by result.
func (m *Metrics) Shadowed(model, candidate, result string) {
	m.route.shadow.WithLabelValues(model, candidate, result).Inc()
}
