package admin

import (
	"slices"
	"sort"

	dto "github.com/prometheus/client_model/go"
)

// The metric families status.json reads. Each is optional: a family the
// registry lacks comes out as null, and the page shows "–".
const (
	familyRequests = "omnigate_requests_total"           // {model, deployment, code, stream}
	familyTokens   = "omnigate_tokens_total"             // {model, deployment, kind}
	familyLatency  = "omnigate_upstream_latency_seconds" // histogram {model, deployment}
)

// series is one model's or one deployment's cumulative counters, as the
// page needs them to compute rates and quantiles over its own window.
type series struct {
	// Requests by status code and stream ("true", "false"); null when
	// the registry has no such family.
	Requests []requestCount `json:"requests"`
	// Tokens by kind (prompt, completion); null as Requests.
	Tokens map[string]float64 `json:"tokens"`
	// Latency is the upstream latency histogram; null when the family is
	// missing or has no series here yet.
	Latency *histogram `json:"latency"`
}

type requestCount struct {
	Code   string  `json:"code"`
	Stream string  `json:"stream,omitempty"`
	Count  float64 `json:"count"`
}

// histogram is a Prometheus histogram's cumulative buckets: Counts[i]
// observations were at most Bounds[i]; Count is all of them (the +Inf
// bucket, which JSON has no number for).
type histogram struct {
	Bounds []float64 `json:"le"`
	Counts []float64 `json:"counts"`
	Count  float64   `json:"count"`
	Sum    float64   `json:"sum"`
}

// seriesKey is who a series belongs to; deployment "" is a model's
// requests that reached no deployment (or a family without the label).
type seriesKey struct{ model, deployment string }

// metricIndex is one gather of the families, by model and deployment.
type metricIndex struct {
	hasRequests, hasTokens bool
	// byDeployment: the family has a deployment label (an older one
	// counts by model only, which says nothing of a deployment).
	requestsByDeployment, tokensByDeployment bool
	requests                                 map[seriesKey]map[[2]string]float64 // by {code, stream}
	tokens                                   map[seriesKey]map[string]float64    // by kind
	latency                                  map[seriesKey]*histogram
}

// indexMetrics picks the status page's families out of a gather.
func indexMetrics(mfs []*dto.MetricFamily) *metricIndex {
	ix := &metricIndex{requests: map[seriesKey]map[[2]string]float64{}, tokens: map[seriesKey]map[string]float64{}, latency: map[seriesKey]*histogram{}}
	for _, mf := range mfs {
		switch mf.GetName() {
		case familyRequests:
			ix.hasRequests = true
			for _, m := range mf.GetMetric() {
				k, l := keyOf(m)
				_, ok := l["deployment"]
				ix.requestsByDeployment = ix.requestsByDeployment || ok
				if ix.requests[k] == nil {
					ix.requests[k] = map[[2]string]float64{}
				}
				ix.requests[k][[2]string{l["code"], l["stream"]}] += m.GetCounter().GetValue()
			}
		case familyTokens:
			ix.hasTokens = true
			for _, m := range mf.GetMetric() {
				k, l := keyOf(m)
				_, ok := l["deployment"]
				ix.tokensByDeployment = ix.tokensByDeployment || ok
				if ix.tokens[k] == nil {
					ix.tokens[k] = map[string]float64{}
				}
				ix.tokens[k][l["kind"]] += m.GetCounter().GetValue()
			}
		case familyLatency:
			for _, m := range mf.GetMetric() {
				h := m.GetHistogram()
				if h == nil {
					continue
				}
				k, _ := keyOf(m)
				one := &histogram{Count: float64(h.GetSampleCount()), Sum: h.GetSampleSum()}
				for _, b := range h.GetBucket() {
					one.Bounds = append(one.Bounds, b.GetUpperBound())
					one.Counts = append(one.Counts, float64(b.GetCumulativeCount()))
				}
				ix.latency[k] = addHistograms(ix.latency[k], one)
			}
		}
	}
	return ix
}

// keyOf returns a metric's model and deployment and all its labels.
func keyOf(m *dto.Metric) (seriesKey, map[string]string) {
	l := make(map[string]string, len(m.GetLabel()))
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return seriesKey{l["model"], l["deployment"]}, l
}

// deployment returns one deployment's series.
func (ix *metricIndex) deployment(model, deployment string) series {
	k := seriesKey{model, deployment}
	s := ix.collect(func(x seriesKey) bool { return x == k })
	if !ix.requestsByDeployment {
		s.Requests = nil
	}
	if !ix.tokensByDeployment {
		s.Tokens = nil
	}
	return s
}

// model returns a model's series: the sum over its deployments and the
// requests that reached none.
func (ix *metricIndex) model(model string) series {
	return ix.collect(func(x seriesKey) bool { return x.model == model })
}

func (ix *metricIndex) collect(match func(seriesKey) bool) series {
	var s series
	if ix.hasRequests {
		by := map[[2]string]float64{}
		for k, m := range ix.requests {
			if match(k) {
				for cs, v := range m {
					by[cs] += v
				}
			}
		}
		s.Requests = []requestCount{}
		for cs, v := range by {
			s.Requests = append(s.Requests, requestCount{Code: cs[0], Stream: cs[1], Count: v})
		}
		sort.Slice(s.Requests, func(i, j int) bool {
			a, b := s.Requests[i], s.Requests[j]
			return a.Code < b.Code || (a.Code == b.Code && a.Stream < b.Stream)
		})
	}
	if ix.hasTokens {
		s.Tokens = map[string]float64{}
		for k, m := range ix.tokens {
			if match(k) {
				for kind, v := range m {
					s.Tokens[kind] += v
				}
			}
		}
	}
	// Sum in a fixed order: float addition is not associative, and two
	// polls must not differ by rounding alone.
	keys := make([]seriesKey, 0, len(ix.latency))
	for k := range ix.latency {
		if match(k) {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].deployment < keys[j].deployment })
	for _, k := range keys {
		s.Latency = addHistograms(s.Latency, ix.latency[k])
	}
	return s
}

// addHistograms sums two cumulative histograms. Buckets of the same family
// share bounds; should they not, the sum takes the union of the bounds,
// each side's count at a bound it lacks being its count at the next lower
// one it has (exact for the bounds both share, a lower bound otherwise).
func addHistograms(a, b *histogram) *histogram {
	if a == nil {
		return cloneHistogram(b)
	}
	if b == nil {
		return cloneHistogram(a)
	}
	out := &histogram{Count: a.Count + b.Count, Sum: a.Sum + b.Sum}
	if slices.Equal(a.Bounds, b.Bounds) {
		out.Bounds = slices.Clone(a.Bounds)
		out.Counts = make([]float64, len(a.Counts))
		for i := range a.Counts {
			out.Counts[i] = a.Counts[i] + b.Counts[i]
		}
		return out
	}
	out.Bounds = slices.Clone(a.Bounds)
	for _, x := range b.Bounds {
		if !slices.Contains(out.Bounds, x) {
			out.Bounds = append(out.Bounds, x)
		}
	}
	slices.Sort(out.Bounds)
	for _, x := range out.Bounds {
		out.Counts = append(out.Counts, countAt(a, x)+countAt(b, x))
	}
	return out
}

// countAt is h's cumulative count at the highest bound not above x.
func countAt(h *histogram, x float64) float64 {
	c := 0.0
	for i, b := range h.Bounds {
		if b > x {
			break
		}
		c = h.Counts[i]
	}
	return c
}

func cloneHistogram(h *histogram) *histogram {
	if h == nil {
		return nil
	}
	return &histogram{Bounds: slices.Clone(h.Bounds), Counts: slices.Clone(h.Counts), Count: h.Count, Sum: h.Sum}
}
