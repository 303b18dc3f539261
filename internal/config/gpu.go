package config

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// GPUMetrics names a deployment's DCGM exporter (NVIDIA's dcgm-exporter,
// Prometheus text on :9400/metrics by default), whose GPU memory,
// utilization and NVLink gauges the gateway scrapes and re-exports per
// deployment. Off unless URL is set.
type GPUMetrics struct {
	// URL is the exporter's metrics page, such as
	// http://10.0.0.5:9400/metrics.
	URL string `yaml:"url"`
	// GPUs keeps only the exporter's GPUs whose gpu label (the device
	// index: "0", "1"…) is listed: a node's exporter reports every GPU of
	// the node, and a deployment may run on a few. Empty: all of them.
	GPUs     []string `yaml:"gpus"`
	Interval Duration `yaml:"interval"` // default 5s
	Timeout  Duration `yaml:"timeout"`  // default 1s, or the interval when shorter
}

// On reports whether the deployment's GPUs are scraped.
func (g GPUMetrics) On() bool { return g.URL != "" }

// Defaults of gpu_metrics. dcgm-exporter refreshes its fields every 30 s
// by default (its -c flag); 5 s suits an exporter set to refresh faster
// without scraping a slower one much more often than it changes.
const (
	DefaultGPUMetricsInterval = 5 * time.Second
	DefaultGPUMetricsTimeout  = time.Second
	// MaxGPUs bounds the GPUs one deployment lists (and so the series
	// its exporter can add): more than any one node holds.
	MaxGPUs = 64
)

func (g *GPUMetrics) applyDefaults() {
	if !g.On() {
		return
	}
	setDefault(&g.Interval, Duration(DefaultGPUMetricsInterval))
	setDefault(&g.Timeout, min(Duration(DefaultGPUMetricsTimeout), g.Interval))
}

func (v *validator) gpuMetrics(p string, g *GPUMetrics) {
	if !g.On() {
		if len(g.GPUs) > 0 || g.Interval != 0 || g.Timeout != 0 {
			v.add(p+".url", "is required when gpu_metrics sets anything else")
		}
		return
	}
	v.upstreamURL(p+".url", g.URL) // an upstream's rules: http(s), a host, no credentials, no query
	if g.Interval <= 0 {
		v.add(p+".interval", "must be > 0, got %s", g.Interval)
	}
	if g.Timeout <= 0 || g.Timeout > g.Interval {
		v.add(p+".timeout", "must be > 0 and at most the interval (%s), got %s", g.Interval, g.Timeout)
	}
	if len(g.GPUs) > MaxGPUs {
		v.add(p+".gpus", "lists %d GPUs, more than %d", len(g.GPUs), MaxGPUs)
	}
	for i, id := range g.GPUs {
		switch {
		case !IsGPUIndex(id):
			v.add(fmt.Sprintf("%s.gpus[%d]", p, i), "%q is not a GPU index (the exporter's gpu label: 0, 1, …)", id)
		case slices.Index(g.GPUs, id) < i:
			v.add(fmt.Sprintf("%s.gpus[%d]", p, i), "%q is listed twice", id)
		}
	}
}

// IsGPUIndex reports whether s reads as a DCGM gpu label: a device index
// of at most four digits. Other values are never exported as labels.
func IsGPUIndex(s string) bool {
	return s != "" && len(s) <= 4 && strings.Trim(s, "0123456789") == ""
}
