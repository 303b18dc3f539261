package admin

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

// finalFamilies registers the families status.json reads, with the
// labels it expects, and fills them.
func finalFamilies(t *testing.T) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: familyRequests, Help: "h"}, []string{"model", "deployment", "code", "stream"})
	tokens := prometheus.NewCounterVec(prometheus.CounterOpts{Name: familyTokens, Help: "h"}, []string{"model", "deployment", "kind"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: familyLatency, Help: "h", Buckets: []float64{0.1, 1, 10}}, []string{"model", "deployment"})
	other := prometheus.NewCounter(prometheus.CounterOpts{Name: "omnigate_other_total", Help: "h"})
	reg.MustRegister(requests, tokens, latency, other)
	requests.WithLabelValues("m", "a", "200", "false").Add(5)
	requests.WithLabelValues("m", "a", "200", "true").Add(2)
	requests.WithLabelValues("m", "a", "502", "false").Add(1)
	requests.WithLabelValues("m", "b", "200", "false").Add(3)
	requests.WithLabelValues("m", "", "429", "false").Add(4) // turned away before any deployment
	requests.WithLabelValues("n", "c", "200", "false").Add(9)
	tokens.WithLabelValues("m", "a", "prompt").Add(100)
	tokens.WithLabelValues("m", "a", "completion").Add(40)
	tokens.WithLabelValues("m", "b", "completion").Add(60)
	for _, v := range []float64{0.0625, 0.5, 0.5, 20} {
		latency.WithLabelValues("m", "a").Observe(v)
	}
	latency.WithLabelValues("m", "b").Observe(5)
	other.Inc()
	return reg
}

func TestIndexMetrics(t *testing.T) {
	mfs, err := finalFamilies(t).Gather()
	if err != nil {
		t.Fatal(err)
	}
	ix := indexMetrics(mfs)
	tests := []struct {
		name string
		got  series
		want series
	}{
		{"deployment a", ix.deployment("m", "a"), series{
			Requests: []requestCount{{"200", "false", 5}, {"200", "true", 2}, {"502", "false", 1}},
			Tokens:   map[string]float64{"prompt": 100, "completion": 40},
			Latency:  &histogram{Bounds: []float64{0.1, 1, 10}, Counts: []float64{1, 3, 3}, Count: 4, Sum: 21.0625},
		}},
		{"deployment b", ix.deployment("m", "b"), series{
			Requests: []requestCount{{"200", "false", 3}},
			Tokens:   map[string]float64{"completion": 60},
			Latency:  &histogram{Bounds: []float64{0.1, 1, 10}, Counts: []float64{0, 0, 1}, Count: 1, Sum: 5},
		}},
		{"model m: its deployments and what reached none", ix.model("m"), series{
			Requests: []requestCount{{"200", "false", 8}, {"200", "true", 2}, {"429", "false", 4}, {"502", "false", 1}},
			Tokens:   map[string]float64{"prompt": 100, "completion": 100},
			Latency:  &histogram{Bounds: []float64{0.1, 1, 10}, Counts: []float64{1, 3, 4}, Count: 5, Sum: 26.0625},
		}},
		{"a deployment with no traffic yet", ix.deployment("n", "d"), series{
			Requests: []requestCount{}, Tokens: map[string]float64{},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestIndexMetricsMissingFamilies: a registry without the families (or
// with the older ones, without a deployment label) gives nulls where they
// lack and model figures where they have them.
func TestIndexMetricsMissingFamilies(t *testing.T) {
	reg := prometheus.NewRegistry()
	old := prometheus.NewCounterVec(prometheus.CounterOpts{Name: familyRequests, Help: "h"}, []string{"model", "code"})
	reg.MustRegister(old, prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "model_latency_seconds", Help: "h"}, []string{"model_version"}))
	old.WithLabelValues("m", "200").Add(3)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	ix := indexMetrics(mfs)
	if diff := cmp.Diff(series{Requests: []requestCount{{Code: "200", Count: 3}}}, ix.model("m")); diff != "" {
		t.Errorf("model (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(series{}, ix.deployment("m", "a")); diff != "" {
		t.Errorf("deployment (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(series{}, indexMetrics(nil).model("m")); diff != "" {
		t.Errorf("no families (-want +got):\n%s", diff)
	}
}

func TestAddHistograms(t *testing.T) {
	a := &histogram{Bounds: []float64{1, 10}, Counts: []float64{2, 3}, Count: 4, Sum: 12}
	b := &histogram{Bounds: []float64{1, 5}, Counts: []float64{1, 1}, Count: 2, Sum: 8}
	want := &histogram{Bounds: []float64{1, 5, 10}, Counts: []float64{3, 3, 4}, Count: 6, Sum: 20}
	if diff := cmp.Diff(want, addHistograms(a, b)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(a, addHistograms(nil, a)); diff != "" {
		t.Errorf("nil + a (-want +got):\n%s", diff)
	}
}
