package app

import (
	"bytes"
	"math"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"

	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/telemetry"
)

// series is one sample's family and labels, as "name{a=x,b=y}".
func seriesOf(mfs map[string]*dto.MetricFamily) []string {
	var out []string
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			out = append(out, name+"{"+strings.Join(ls, ",")+"}")
		}
	}
	sort.Strings(out)
	return out
}

// value is the sample of family name whose labels include want, and
// whether there is one (the first, when several match).
func value(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// TestMetricsEveryFamily: after richTraffic every family has samples, and
// the ones each scenario is for count it.
func TestMetricsEveryFamily(t *testing.T) {
	gw, _, _ := richGateway(t)
	mfs := families(t, gw)
	atLeast := []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"model_latency_seconds", map[string]string{"model_version": "qwen3-omni-7b", "deployment": "small-1"}, 1},
		{"omnigate_time_to_first_token_seconds", map[string]string{"model": "qwen3-omni-7b", "deployment": "small-1"}, 1},
		{"omnigate_requests_total", map[string]string{"model": "qwen3-omni-30b", "deployment": "small-1", "code": "200", "stream": "false"}, 1},
		{"omnigate_requests_total", map[string]string{"model": "qwen3-omni-7b", "deployment": "", "code": "400"}, 1},
		{"omnigate_requests_total", map[string]string{"model": "", "deployment": "", "code": "404"}, 1},
		{"omnigate_requests_total", map[string]string{"model": "qwen3-omni-7b", "stream": "true", "code": "200"}, 4},
		{"omnigate_fallbacks_total", map[string]string{"from": "qwen3-omni-30b", "to": "qwen3-omni-7b"}, 4},
		{"omnigate_breaker_transitions_total", map[string]string{"model": "qwen3-omni-30b", "deployment": "large-1", "to": "open"}, 1},
		{"omnigate_continuations_total", map[string]string{"model": "qwen3-omni-7b"}, 1},
		{"omnigate_hedges_total", map[string]string{"model": "hedged"}, 1},
		{"omnigate_retries_total", map[string]string{"model": "retried"}, 1},
		{"omnigate_admission_rejected_total", map[string]string{"model": "hedged", "reason": "overloaded"}, 1},
		{"omnigate_clamped_params_total", map[string]string{"model": "qwen3-omni-7b", "param": "max_tokens"}, 1},
		{"omnigate_breaker_state", map[string]string{"model": "qwen3-omni-30b", "deployment": "large-1"}, 1},
		{"omnigate_admission_limit", map[string]string{"model": "hedged"}, 1},
		{"omnigate_deployment_healthy", map[string]string{"model": "qwen3-omni-7b", "deployment": "small-1"}, 1},
	}
	for _, c := range atLeast {
		if v, ok := value(mfs, c.name, c.labels); !ok || v < c.min {
			t.Errorf("%s%v = %v (found %v), want at least %v", c.name, c.labels, v, ok, c.min)
		}
	}
	if v, _ := value(mfs, "omnigate_deployment_healthy", map[string]string{"deployment": "large-1"}); v != 0 {
		t.Errorf("large-1, whose breaker is open, reads healthy (%v)", v)
	}
}

// TestGPUMetricsEndToEnd: a deployment's gpu_metrics exporter (a loopback
// server serving a dcgm-exporter page) is scraped on its interval, and
// the gateway's /metrics passes on its GPUs' memory (MiB as bytes),
// utilization (percent as a ratio) and NVLink gauges, for the GPUs listed
// only; when the exporter stops answering they go away three intervals
// later.
func TestGPUMetricsEndToEnd(t *testing.T) {
	dcgm, fail := dcgmExporter(t)
	d := vllmDeployment(t, "gpu-a", "qwen3-omni-30b", nil)
	d.GPUMetrics = config.GPUMetrics{URL: dcgm.URL, GPUs: []string{"0", "1"}, // no path: /metrics
		Interval: config.Duration(50 * time.Millisecond), Timeout: config.Duration(50 * time.Millisecond)}
	_, srv := newTestGateway(t, &config.Config{Models: []config.Model{{Name: "qwen3-omni-30b", Deployments: []config.Deployment{d}}}})

	var body string
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if body = scrapeText(t, srv.URL); strings.Contains(body, "omnigate_gpu_") || time.Now().After(end) {
			break
		}
	}
	var got []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "omnigate_gpu_") {
			got = append(got, l)
		}
	}
	sort.Strings(got)
	lbl := func(gpu string) string { return `{deployment="gpu-a",gpu="` + gpu + `",model="qwen3-omni-30b"}` }
	want := []string{
		"omnigate_gpu_memory_free_bytes" + lbl("0") + " 7.815036928e+09",
		"omnigate_gpu_memory_free_bytes" + lbl("1") + " 7.613710336e+09",
		"omnigate_gpu_memory_reserved_bytes" + lbl("0") + " 6.22854144e+08",
		"omnigate_gpu_memory_reserved_bytes" + lbl("1") + " 6.22854144e+08",
		"omnigate_gpu_memory_used_bytes" + lbl("0") + " 7.7082918912e+10",
		"omnigate_gpu_memory_used_bytes" + lbl("1") + " 7.7284245504e+10",
		"omnigate_gpu_nvlink_bandwidth" + lbl("0") + " 31846",
		"omnigate_gpu_nvlink_bandwidth" + lbl("1") + " 30911",
		"omnigate_gpu_nvlink_rx_bytes_per_second" + lbl("0") + " 1.9391086592e+10",
		"omnigate_gpu_nvlink_rx_bytes_per_second" + lbl("1") + " 1.9098935296e+10",
		"omnigate_gpu_nvlink_tx_bytes_per_second" + lbl("0") + " 1.9388211456e+10",
		"omnigate_gpu_nvlink_tx_bytes_per_second" + lbl("1") + " 1.9102443008e+10",
		"omnigate_gpu_utilization_ratio" + lbl("0") + " 0.87",
		"omnigate_gpu_utilization_ratio" + lbl("1") + " 0.84",
	}
	if d := cmp.Diff(want, got, cmp.Comparer(sameSample)); d != "" {
		t.Errorf("GPU series (-want +got):\n%s", d)
	}

	fail.Store(true)
	for end := time.Now().Add(5 * time.Second); strings.Contains(scrapeText(t, srv.URL), "omnigate_gpu_"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the GPU series outlived the exporter by 5 s (stale after 150 ms)")
		}
	}
}

// sameSample compares exposition lines by series and value, the value
// as a number (the exposition may spell it differently).
func sameSample(a, b string) bool {
	ia, ib := strings.LastIndexByte(a, ' '), strings.LastIndexByte(b, ' ')
	if ia < 0 || ib < 0 || a[:ia] != b[:ib] {
		return a == b
	}
	x, err1 := strconv.ParseFloat(a[ia+1:], 64)
	y, err2 := strconv.ParseFloat(b[ib+1:], 64)
	return err1 == nil && err2 == nil && math.Abs(x-y) <= 1e-9*math.Abs(x)
}

// TestMetricLabelsBounded: after varied traffic full of client values
// (request ids, users, API keys, sticky keys), every label value is a
// configured name or one of a small closed set, none is a client's, and
// more such traffic adds no series.
func TestMetricLabelsBounded(t *testing.T) {
	gw, srv, sent := richGateway(t)
	cfg := gw.core.Snapshot()
	models, deployments := map[string]bool{"": true}, map[string]bool{"": true}
	for _, m := range cfg.Models {
		models[m.Name] = true
		for _, d := range m.Pool {
			deployments[d.Config.Name] = true
		}
	}
	status := regexp.MustCompile(`^[1-5][0-9][0-9]$`)
	word := regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`) // an outcome class, a reason, a parameter
	allowed := map[string]func(string) bool{
		"model":         func(v string) bool { return models[v] },
		"model_version": func(v string) bool { return models[v] && v != "" },
		"from":          func(v string) bool { return models[v] && v != "" },
		"to": func(v string) bool {
			return models[v] && v != "" || slices.Contains([]string{"closed", "half_open", "open"}, v)
		},
		"deployment": func(v string) bool { return deployments[v] },
		"code":       status.MatchString,
		"stream":     func(v string) bool { return v == "true" || v == "false" },
		"kind":       func(v string) bool { return v == "prompt" || v == "completion" },
		"outcome":    func(v string) bool { return status.MatchString(v) || word.MatchString(v) },
		"reason":     func(v string) bool { return v == "overloaded" || v == "rate_limited" },
		"param":      word.MatchString,
		"priority":   func(v string) bool { return v == "interactive" || v == "batch" },
		"result":     func(v string) bool { return slices.Contains(telemetry.CacheResults[:], v) },
		"gpu":        config.IsGPUIndex,
		"le":         func(string) bool { return true }, // the buckets, fixed in code
	}
	before := seriesOf(families(t, gw))
	for _, s := range before {
		name, labels, _ := strings.Cut(strings.TrimSuffix(s, "}"), "{")
		if !strings.HasPrefix(name, "omnigate_") && !strings.HasPrefix(name, "model_") {
			continue // the Go runtime's and the process's: no labels from requests
		}
		for _, kv := range strings.Split(labels, ",") {
			if kv == "" {
				continue
			}
			k, v, _ := strings.Cut(kv, "=")
			ok, known := allowed[k]
			if !known || !ok(v) {
				t.Errorf("%s: label %s=%q is not from the config or a closed set", name, k, v)
			}
			for _, c := range sent {
				if strings.Contains(v, c) {
					t.Errorf("%s: label %s=%q holds a client's value %q", name, k, v, c)
				}
			}
		}
	}
	richTraffic(t, srv.URL) // new ids, users, keys
	after := seriesOf(families(t, gw))
	// A breaker's later changes (retry-bad opening on its third failure)
	// are new series whatever the clients send.
	after = slices.DeleteFunc(after, func(s string) bool { return strings.HasPrefix(s, "omnigate_breaker_transitions_total{") })
	if added := difference(after, before); len(added) > 0 {
		t.Errorf("the same traffic with new client values added series: %v", added)
	}
}

// difference is what a has that b has not.
func difference(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

// TestPromtoolCheckMetrics: Prometheus's own linter accepts a real scrape
// of a gateway that has served every kind of traffic.
func TestPromtoolCheckMetrics(t *testing.T) {
	tool := promtool(t)
	_, srv, _ := richGateway(t)
	body := scrapeText(t, srv.URL)
	cmd := exec.Command(tool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil || out.Len() > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out.String())
	}
}
