package app

import (
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/config"
)

// TestWhatIsValidatedIsWhatIsForwarded: integers in other JSON forms reach
// the engine as plain integers, and a null token limit is replaced where it
// stands, so the engine never reads a value the gateway did not check.
func TestWhatIsValidatedIsWhatIsForwarded(t *testing.T) {
	var got atomic.Value
	srv := startWithUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Store(string(b))
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"x","object":"chat.completion","model":"upstream/m","choices":[]}`)
	}), func(cfg *config.Config) { cfg.Models[0].Limits.MaxTokens = 100 })
	msgs := `"messages":[{"role":"user","content":"hi"}]`
	tests := []struct{ body, want string }{
		{`{"model":"m",` + msgs + `,"max_tokens":1e1,"n":1.0,"seed":-2E+1}`, `{"model":"upstream/m",` + msgs + `,"max_tokens":10,"n":1,"seed":-20}`},
		{`{"model":"m",` + msgs + `,"max_tokens":null}`, `{"model":"upstream/m",` + msgs + `,"max_tokens":100}`},
	}
	for _, tt := range tests {
		resp, b := post(t, srv.URL+"/v1/chat/completions", "application/json", tt.body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", tt.body, resp.StatusCode, b)
		}
		if diff := cmp.Diff(tt.want, got.Load()); diff != "" {
			t.Errorf("%s: upstream body (-want +got):\n%s", tt.body, diff)
		}
	}
}
