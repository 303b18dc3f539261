package config

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestGPUMetricsDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   GPUMetrics
		want GPUMetrics
	}{
		{"off stays off", GPUMetrics{}, GPUMetrics{}},
		{"on", GPUMetrics{URL: "http://10.0.0.5:9400/metrics"},
			GPUMetrics{URL: "http://10.0.0.5:9400/metrics", Interval: Duration(5 * time.Second), Timeout: Duration(time.Second)}},
		{"a short interval bounds the timeout", GPUMetrics{URL: "http://h:9400/metrics", Interval: Duration(500 * time.Millisecond)},
			GPUMetrics{URL: "http://h:9400/metrics", Interval: Duration(500 * time.Millisecond), Timeout: Duration(500 * time.Millisecond)}},
		{"set values stand", GPUMetrics{URL: "http://h:9400/metrics", GPUs: []string{"1"}, Interval: Duration(time.Minute), Timeout: Duration(3 * time.Second)},
			GPUMetrics{URL: "http://h:9400/metrics", GPUs: []string{"1"}, Interval: Duration(time.Minute), Timeout: Duration(3 * time.Second)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := validConfig()
			cfg.Models[1].Deployments[0].GPUMetrics = tt.in
			cfg.ApplyDefaults()
			if d := cmp.Diff(tt.want, cfg.Models[1].Deployments[0].GPUMetrics); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
		})
	}
}

func TestGPUMetricsValidate(t *testing.T) {
	const p = "models[1].deployments[0].gpu_metrics"
	tests := []struct {
		name  string
		g     GPUMetrics
		paths []string
		msg   string // a fragment of the first message
	}{
		{"off", GPUMetrics{}, nil, ""},
		{"on, all GPUs", GPUMetrics{URL: "http://10.0.0.5:9400/metrics"}, nil, ""},
		{"on, two GPUs", GPUMetrics{URL: "https://dcgm.example/metrics", GPUs: []string{"0", "1"}}, nil, ""},
		{"keys without a url", GPUMetrics{GPUs: []string{"0"}}, []string{p + ".url"}, "is required"},
		{"not a URL", GPUMetrics{URL: "10.0.0.5:9400"}, []string{p + ".url"}, "absolute http"},
		{"credentials", GPUMetrics{URL: "http://u:p@h:9400/metrics"}, []string{p + ".url"}, "credentials"},
		{"timeout over the interval", GPUMetrics{URL: "http://h:9400/metrics", Interval: Duration(time.Second), Timeout: Duration(2 * time.Second)},
			[]string{p + ".timeout"}, "at most the interval"},
		{"negative interval", GPUMetrics{URL: "http://h:9400/metrics", Interval: -1, Timeout: Duration(time.Second)},
			[]string{p + ".interval", p + ".timeout"}, "must be > 0"},
		{"a UUID is not an index", GPUMetrics{URL: "http://h:9400/metrics", GPUs: []string{"GPU-34319582-d595"}},
			[]string{p + ".gpus[0]"}, "not a GPU index"},
		{"repeated GPU", GPUMetrics{URL: "http://h:9400/metrics", GPUs: []string{"0", "1", "0"}},
			[]string{p + ".gpus[2]"}, "listed twice"},
		{"empty GPU", GPUMetrics{URL: "http://h:9400/metrics", GPUs: []string{""}},
			[]string{p + ".gpus[0]"}, "not a GPU index"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := validConfig()
			cfg.Models[1].Deployments[0].GPUMetrics = tt.g
			cfg.ApplyDefaults()
			ps := cfg.Validate()
			var paths []string
			for _, p := range ps {
				paths = append(paths, p.Path)
			}
			if d := cmp.Diff(tt.paths, paths); d != "" {
				t.Fatalf("problem paths (-want +got):\n%s\nproblems: %v", d, ps)
			}
			if len(ps) > 0 && !strings.Contains(ps[0].Message, tt.msg) {
				t.Errorf("message %q does not contain %q", ps[0].Message, tt.msg)
			}
		})
	}
}

func TestGPUMetricsYAML(t *testing.T) {
	cfg, err := Parse([]byte(`
models:
  - name: m
    deployments:
      - name: gpu-a
        url: http://10.0.0.5:8000/v1
        gpu_metrics: {url: "http://10.0.0.5:9400/metrics", gpus: ["0", "1"], interval: 2s, timeout: 500ms}
`), "gpu.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := GPUMetrics{URL: "http://10.0.0.5:9400/metrics", GPUs: []string{"0", "1"}, Interval: Duration(2 * time.Second), Timeout: Duration(500 * time.Millisecond)}
	if d := cmp.Diff(want, cfg.Models[0].Deployments[0].GPUMetrics); d != "" {
		t.Errorf("(-want +got)\n%s", d)
	}
	if _, err := Parse([]byte("models: [{name: m, deployments: [{name: d, url: \"http://h/v1\", gpu_metrics: {url: \"http://h:9400/metrics\", gpu: [\"0\"]}}]}]"), "typo.yaml"); err == nil {
		t.Error("an unknown gpu_metrics key parsed")
	}
}
