package app

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/omnigate/omnigate/internal/config"
)

// TestReloadKeepsLiveState: a reload that keeps a deployment keeps its
// breaker (a dead deployment is not asked again after the swap), serves the
// new catalog at once, and releases the old snapshot's simulators.
func TestReloadKeepsLiveState(t *testing.T) {
	var upCalls atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upCalls.Add(1)
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"x","object":"chat.completion","model":"m","choices":[]}`)
	}))
	defer up.Close()
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadURL := "http://" + dead.Addr().String() + "/v1"
	dead.Close() // connections are refused from now on

	mk := func(aliases ...string) *config.Config {
		cfg := &config.Config{Models: []config.Model{{Name: "m", Aliases: aliases, Deployments: []config.Deployment{
			{Name: "dead", Kind: "openai", URL: deadURL},
			{Name: "up", Kind: "openai", URL: up.URL + "/v1"},
		}}}}
		cfg.ApplyDefaults()
		if p := cfg.Validate(); len(p) > 0 {
			t.Fatal(p)
		}
		return cfg
	}
	gw, err := NewGateway(mk(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	srv := httptest.NewServer(gw)
	defer srv.Close()
	chat := func(model string) int {
		resp, _ := post(t, srv.URL+"/v1/chat/completions", "application/json", `{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`)
		return resp.StatusCode
	}
	for i := 0; i < 20 && breakerOpen(gw) == false; i++ {
		if code := chat("m"); code != 200 {
			t.Fatalf("request %d: %d", i, code)
		}
	}
	if !breakerOpen(gw) {
		t.Fatal("the dead deployment's breaker never opened")
	}
	state := gw.core.Snapshot().Models[0].Pool[0].State

	if err := gw.Reload(mk("m-new"), time.Second); err != nil {
		t.Fatal(err)
	}
	if got := gw.core.Snapshot().Models[0].Pool[0].State; got != state {
		t.Error("the reloaded snapshot has new state for the same deployment")
	}
	if !breakerOpen(gw) {
		t.Error("breaker closed by the reload")
	}
	before := upCalls.Load()
	for range 5 {
		if code := chat("m-new"); code != 200 {
			t.Fatalf("new alias: %d", code)
		}
	}
	if got := upCalls.Load() - before; got != 5 {
		t.Errorf("upstream saw %d of 5 requests", got)
	}
	resp, b := get(t, srv.URL+"/v1/models")
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"m-new"`) {
		t.Errorf("/v1/models after reload: %d %s", resp.StatusCode, b)
	}
	// A reload with a broken deployment fails and changes nothing.
	bad := mk("other")
	bad.Models[0].Deployments[1].URL = "ftp://x"
	if err := gw.Reload(bad, time.Second); err == nil {
		t.Error("a config whose backend cannot be built was swapped in")
	}
	if code := chat("m-new"); code != 200 {
		t.Errorf("after a failed reload: %d", code)
	}
}

func breakerOpen(gw *Gateway) bool {
	st, _ := gw.core.Snapshot().Models[0].Pool[0].Breaker.State(time.Now())
	return st.String() == "open"
}

func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, b
}
