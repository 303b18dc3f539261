package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPrometheusScrapesGateway: a real Prometheus server (Debian's
// prometheus binary) scrapes a gateway process every second, and what it
// stores of the request histograms and counters, read back through its
// HTTP API, is the traffic the gateway served.
func TestPrometheusScrapesGateway(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("prometheus is not installed; .ci/run installs it (apt-get install prometheus)")
		}
		t.Skip("prometheus is not installed (apt-get install prometheus); CI runs this test")
	}
	gw := start(t, "serve", "--config", writeConfig(t, `
server: {addr: "127.0.0.1:0", admin_addr: off}
models:
  - name: qwen3-omni-7b
    deployments: [{name: sim-7b, kind: sim, profile: instant}]
`))
	prom := startPrometheus(t, bin, strings.TrimPrefix(gw.URL, "http://"))

	const whole, streams = 5, 3
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range whole + streams {
		stream := ""
		if i >= whole {
			stream = `"stream":true,`
		}
		resp, err := chat(ctx, gw.URL, `{"model":"qwen3-omni-7b",`+stream+`"max_tokens":8,"messages":[{"role":"user","content":"hello"}]}`)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
	}

	for _, q := range []struct {
		query string
		want  float64
	}{
		{`sum(model_latency_seconds_count{model_version="qwen3-omni-7b",deployment="sim-7b"})`, whole + streams},
		{`sum(omnigate_requests_total{model="qwen3-omni-7b",deployment="sim-7b",code="200",stream="true"})`, streams},
		{`sum(omnigate_time_to_first_token_seconds_count{model="qwen3-omni-7b"})`, streams},
		{`omnigate_deployment_healthy{model="qwen3-omni-7b",deployment="sim-7b"}`, 1},
	} {
		got, err := waitQuery(prom, q.query, q.want, 30*time.Second)
		if err != nil {
			t.Errorf("%s: %v", q.query, err)
		} else if got != q.want {
			t.Errorf("%s = %v, want %v", q.query, got, q.want)
		}
	}
}

// startPrometheus runs Prometheus on a free loopback port, scraping target
// every second into a temporary TSDB, until the test ends; it returns the
// server's base URL once it is ready.
func startPrometheus(t *testing.T, bin, target string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: omnigate
    static_configs: [{targets: [%q]}]
`, target)), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+addr, "--log.level=warn")
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", stderr.String())
		}
	})
	base := "http://" + addr
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(base + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base
			}
		}
		if time.Now().After(end) {
			t.Fatalf("prometheus not ready within 30 s:\n%s", stderr.String())
		}
	}
}

// waitQuery asks Prometheus for an instant query's single value until it
// is want or timeout passes; it returns the last value seen.
func waitQuery(base, query string, want float64, timeout time.Duration) (float64, error) {
	var last float64
	var lastErr error = fmt.Errorf("no result within %s", timeout)
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		v, err := instantQuery(base, query)
		if err != nil {
			lastErr = err
			continue
		}
		last, lastErr = v, nil
		if v == want {
			break
		}
	}
	return last, lastErr
}

// instantQuery runs query through /api/v1/query and returns its one
// sample's value.
func instantQuery(base, query string) (float64, error) {
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return 0, err
	}
	if out.Status != "success" {
		return 0, fmt.Errorf("query failed: %s", out.Error)
	}
	if len(out.Data.Result) != 1 {
		return 0, fmt.Errorf("%d series, want 1", len(out.Data.Result))
	}
	s, ok := out.Data.Result[0].Value[1].(string)
	if !ok {
		return 0, fmt.Errorf("value %v is not a string", out.Data.Result[0].Value[1])
	}
	return strconv.ParseFloat(s, 64)
}
