package app

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestMetricsOnAPI: the API listener serves GET /metrics by default on
// loopback only, where server.metrics_on_api does not say otherwise;
// where it does not, /metrics is the 404 of any unknown URL, and the
// admin listener still serves it. serve says where metrics are.
func TestMetricsOnAPI(t *testing.T) {
	tests := []struct {
		name, server string
		admin        bool
		onAPI        bool
		line         string
	}{
		{"loopback", `addr: "127.0.0.1:0"`, true, true, "omnigate: metrics on http://ADDR/metrics and http://ADDR/metrics"},
		{"loopback, off", `addr: "127.0.0.1:0", metrics_on_api: false`, true, false, "omnigate: metrics on http://ADDR/metrics"},
		{"every interface", `addr: "0.0.0.0:0"`, true, false, "omnigate: metrics on http://ADDR/metrics"},
		{"every interface, on", `addr: "0.0.0.0:0", metrics_on_api: true`, true, true, "omnigate: metrics on http://ADDR/metrics and http://ADDR/metrics"},
		{"nowhere", `addr: "127.0.0.1:0", metrics_on_api: false`, false, false,
			"omnigate: metrics not served (the admin listener is off and server.metrics_on_api is false)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			cfg := writeFile(t, t.TempDir(), "server: {"+tt.server+"}\nauth: {open: true}\n"+adminTestModels)
			adminAddr := "127.0.0.1:0"
			if !tt.admin {
				adminAddr = "off"
			}
			s := serveArgs(t, "--config", cfg, "--admin-addr", adminAddr)
			if got := addrRE.ReplaceAllString(s.lines[len(s.lines)-2], "ADDR"); got != tt.line {
				t.Errorf("printed %q, want %q", got, tt.line)
			}
			api := strings.Replace(strings.Replace(s.api, "0.0.0.0", "127.0.0.1", 1), "[::]", "127.0.0.1", 1)
			status, body := getBody(t, api+"/metrics")
			switch {
			case tt.onAPI && (status != 200 || !strings.Contains(body, "go_goroutines")):
				t.Errorf("API /metrics: %d %.80s", status, body)
			case !tt.onAPI:
				var e struct {
					Error struct{ Type, Code, Message string }
				}
				if err := json.Unmarshal([]byte(body), &e); err != nil || status != 404 {
					t.Fatalf("API /metrics: %d %s", status, body)
				}
				want := struct{ Type, Code, Message string }{"not_found_error", "unknown_url", "Unknown request URL: GET /metrics."}
				if diff := cmp.Diff(want, e.Error); diff != "" {
					t.Errorf("API /metrics error (-want +got):\n%s", diff)
				}
			}
			if tt.admin {
				if status, body := getBody(t, s.admin+"/metrics"); status != 200 || !strings.Contains(body, "go_goroutines") {
					t.Errorf("admin /metrics: %d", status)
				}
			}
		})
	}
}

func getBody(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b)
}
