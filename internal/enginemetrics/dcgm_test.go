package enginemetrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/omnigate/omnigate/internal/backend"
	"github.com/omnigate/omnigate/internal/clock"
	"github.com/omnigate/omnigate/internal/config"
)

// gpu is a GPU whose fields are all unexported but the id.
func gpu(id string) GPU {
	n := math.NaN()
	return GPU{ID: id, MemUsed: n, MemFree: n, MemReserved: n, Utilization: n, NVLinkTX: n, NVLinkRX: n, NVLinkBandwidth: n}
}

func TestParseDCGMFixture(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "dcgm_exporter.txt"))
	if err != nil {
		t.Fatal(err)
	}
	h100 := func(id string, used, free, util, tx, rx, bw float64) GPU {
		return GPU{ID: id, MemUsed: used * mib, MemFree: free * mib, MemReserved: 594 * mib, Utilization: util,
			NVLinkTX: tx, NVLinkRX: rx, NVLinkBandwidth: bw}
	}
	g0 := h100("0", 73512, 7453, 0.87, 19388211456, 19391086592, 31846)
	g1 := h100("1", 73704, 7261, 0.84, 19102443008, 19098935296, 30911)
	g2 := h100("2", 0, 80965, 0, 0, 0, 0)
	tests := []struct {
		name string
		keep []string
		want []GPU
	}{
		{"all GPUs, the MIG instance's lines skipped", nil, []GPU{g0, g1, g2}},
		{"the deployment's two", []string{"0", "1"}, []GPU{g0, g1}},
		{"one", []string{"1"}, []GPU{g1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDCGM(b, tt.keep, at)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(GPUs{At: at, List: tt.want}, got, cmp.Comparer(approx)); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
		})
	}
	if _, err := ParseDCGM(b, []string{"7"}, at); !errors.Is(err, ErrNoGPUMetrics) {
		t.Errorf("a GPU the exporter does not have: err %v, want ErrNoGPUMetrics", err)
	}
}

func TestParseDCGMLines(t *testing.T) {
	used := func(id string, v float64) GPU { g := gpu(id); g.MemUsed = v * mib; return g }
	tests := []struct {
		name string
		body string
		want []GPU
	}{
		{"the old label set, no HELP", `DCGM_FI_DEV_FB_USED{gpu="0", UUID="GPU-1"} 4845` + "\n", []GPU{used("0", 4845)}},
		{"sorted by index", "DCGM_FI_DEV_FB_USED{gpu=\"10\"} 1\nDCGM_FI_DEV_FB_USED{gpu=\"2\"} 2\n", []GPU{used("2", 2), used("10", 1)}},
		{"the first of a repeated pair (one line per pod)",
			"DCGM_FI_DEV_FB_USED{gpu=\"0\",pod=\"a\"} 5\nDCGM_FI_DEV_FB_USED{gpu=\"0\",pod=\"b\"} 5\nDCGM_FI_DEV_FB_USED{gpu=\"0\",pod=\"c\"} 6\n",
			[]GPU{used("0", 5)}},
		{"blank, negative and NaN values skipped",
			"DCGM_FI_DEV_FB_USED{gpu=\"0\"} 9223372036854775794\nDCGM_FI_DEV_FB_USED{gpu=\"1\"} 140737488355328\n" +
				"DCGM_FI_DEV_FB_USED{gpu=\"2\"} -1\nDCGM_FI_DEV_FB_USED{gpu=\"3\"} NaN\nDCGM_FI_DEV_FB_USED{gpu=\"4\"} 1\n",
			[]GPU{used("4", 1)}},
		{"labels that are no device index are never kept",
			"DCGM_FI_DEV_FB_USED{gpu=\"GPU-abc\"} 1\nDCGM_FI_DEV_FB_USED{UUID=\"x\"} 1\nDCGM_FI_DEV_FB_USED{gpu=\"12345\"} 1\nDCGM_FI_DEV_FB_USED{gpu=\"1\"} 3\n",
			[]GPU{used("1", 3)}},
		{"escaped label values read", `DCGM_FI_DEV_FB_USED{Hostname="a\"b,gpu=\"9",gpu="1"} 3` + "\n", []GPU{used("1", 3)}},
		{"utilization over 100 is 1", "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\"} 101\n", []GPU{func() GPU { g := gpu("0"); g.Utilization = 1; return g }()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDCGM([]byte(tt.body), nil, at)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got.List, cmpopts.EquateNaNs()); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
		})
	}
	var many strings.Builder
	for i := range config.MaxGPUs + 10 {
		many.WriteString("DCGM_FI_DEV_FB_USED{gpu=\"" + string(rune('0'+i/100)) + string(rune('0'+i/10%10)) + string(rune('0'+i%10)) + "\"} 1\n")
	}
	if g, err := ParseDCGM([]byte(many.String()), nil, at); err != nil || len(g.List) != config.MaxGPUs {
		t.Errorf("an exporter with %d GPUs: %d kept (%v), want %d", config.MaxGPUs+10, len(g.List), err, config.MaxGPUs)
	}
	for _, body := range []string{"", "node_load1 0.5\n", "vllm:num_requests_running 1\n", `DCGM_FI_DEV_SM_CLOCK{gpu="0"} 1980` + "\n"} {
		if _, err := ParseDCGM([]byte(body), nil, at); !errors.Is(err, ErrNoGPUMetrics) {
			t.Errorf("%q: err %v, want ErrNoGPUMetrics", body, err)
		}
	}
}

// TestGPUCollector: the collector scrapes a loopback exporter serving the
// fixture into the store, whose entry ages out three intervals after the
// last good scrape.
func TestGPUCollector(t *testing.T) {
	fixture, err := os.ReadFile(filepath.Join("testdata", "dcgm_exporter.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var failing atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() || r.URL.Path != "/metrics" {
			http.Error(w, "no", http.StatusServiceUnavailable)
			return
		}
		w.Write(fixture)
	}))
	defer srv.Close()
	g, err := backend.NewGetter(config.Deployment{Name: "d", URL: srv.URL}, srv.Client().Transport, "/metrics", "text/plain")
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(at)
	gc := config.GPUMetrics{URL: srv.URL + "/metrics", GPUs: []string{"1"}, Interval: config.Duration(5 * time.Second), Timeout: config.Duration(time.Second)}
	var store GPUStore
	logs := &logBuffer{}
	c := StartGPU([]GPUTarget{{Model: "m", Deployment: "d", Key: "m/d", Get: g.Get, Config: gc}}, &store, clk, slog.New(slog.NewTextHandler(logs, nil)))
	defer c.Stop()
	waitScrape(t, clk)
	got := store.Fresh("m/d", clk.Now())
	if got == nil || len(got.List) != 1 || got.List[0].ID != "1" || !got.At.Equal(at) || !got.Until.Equal(at.Add(15*time.Second)) {
		t.Fatalf("after the first scrape: %+v", got)
	}
	failing.Store(true)
	for range 3 {
		clk.Advance(5 * time.Second)
		waitScrape(t, clk)
	}
	if got := store.Fresh("m/d", clk.Now()); got != nil {
		t.Errorf("three intervals of failures later the scrape still counts: %+v", got)
	}
	if n := logs.count("GPU metrics scrape failing"); n != 1 {
		t.Errorf("%d warnings, want 1:\n%s", n, logs.b.String())
	}
	if store.Fresh("other/d", clk.Now()) != nil {
		t.Error("a deployment never scraped has a scrape")
	}
}

// TestGPUCollectorRefusesLongPages: a page past MaxBody stores nothing.
func TestGPUCollectorRefusesLongPages(t *testing.T) {
	get := func(ctx context.Context) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(`DCGM_FI_DEV_FB_USED{gpu="0"} 1` + "\n" + strings.Repeat("# pad\n", MaxBody/6+1))), nil
	}
	clk := clock.NewFake(at)
	var store GPUStore
	c := StartGPU([]GPUTarget{{Model: "m", Deployment: "d", Key: "m/d", Get: get,
		Config: config.GPUMetrics{URL: "http://x/metrics", Interval: config.Duration(time.Second), Timeout: config.Duration(time.Second)}}},
		&store, clk, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer c.Stop()
	waitScrape(t, clk)
	if got := store.Fresh("m/d", clk.Now()); got != nil {
		t.Errorf("stored %+v", got)
	}
}
