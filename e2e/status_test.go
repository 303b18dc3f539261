package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// deploymentRow is what the test reads of GET /admin/deployments.
type deploymentRow struct {
	Model      string `json:"model"`
	Deployment string `json:"deployment"`
	InFlight   int64  `json:"in_flight"`
	Breaker    struct {
		State    string     `json:"state"`
		Failures int        `json:"consecutive_failures"`
		Changed  *time.Time `json:"changed_at"`
	} `json:"breaker"`
	LastFailure *struct {
		Reason  string `json:"reason"`
		Message string `json:"message"`
	} `json:"last_failure"`
}

func deployments(t *testing.T, base string) map[string]deploymentRow {
	t.Helper()
	resp, err := http.Get(base + "/admin/deployments")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out struct{ Data []deploymentRow }
	if resp.StatusCode != 200 || json.Unmarshal(b, &out) != nil {
		t.Fatalf("/admin/deployments: %d %s", resp.StatusCode, b)
	}
	rows := map[string]deploymentRow{}
	for _, r := range out.Data {
		rows[r.Deployment] = r
	}
	return rows
}

// TestDeploymentStatus: GET /admin/deployments shows a killed engine's
// breaker opening, with its last failure and when the state changed, and
// never its address.
func TestDeploymentStatus(t *testing.T) {
	large := start(t, "sim", "--profile", "instant", "--model", "qwen3-omni-30b", "--addr", "127.0.0.1:0")
	small := start(t, "sim", "--profile", "instant", "--model", "qwen3-omni-7b", "--addr", "127.0.0.1:0")
	gw := start(t, "serve", "--config", tiersConfig(t, large.URL, small.URL, "{}"))

	rows := deployments(t, gw.URL)
	if len(rows) != 2 || rows["large-1"].Breaker.State != "closed" || rows["large-1"].LastFailure != nil || rows["large-1"].Breaker.Changed != nil {
		t.Fatalf("at start: %+v", rows)
	}
	large.cmd.Process.Kill()
	large.cmd.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 3 { // each fails on large-1 and falls back to the small tier
		resp, err := chat(ctx, gw.URL, `{"model":"qwen3-omni-30b","max_tokens":4,"messages":[{"role":"user","content":"hi"}]}`)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("fallback answered %d", resp.StatusCode)
		}
	}
	r := deployments(t, gw.URL)["large-1"]
	if r.Breaker.State != "open" || r.Breaker.Changed == nil || r.LastFailure == nil || r.LastFailure.Reason != "unreachable" {
		t.Fatalf("after the engine died: %+v (last failure %+v)", r, r.LastFailure)
	}
	resp, _ := http.Get(gw.URL + "/admin/deployments")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if host := strings.TrimPrefix(large.URL, "http://"); strings.Contains(string(b), host) {
		t.Errorf("the status shows the engine's address %s: %s", host, b)
	}
	if s := deployments(t, gw.URL)["small-1"]; s.Breaker.State != "closed" || s.InFlight != 0 {
		t.Errorf("small-1: %+v", s)
	}
}
