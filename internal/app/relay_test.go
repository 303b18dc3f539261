package app

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestRelayDecidesFromTheAnswer: what the engine sends decides how it is
// relayed, and a 2xx that is not JSON never reaches the client as one.
func TestRelayDecidesFromTheAnswer(t *testing.T) {
	tests := []struct {
		name       string
		ct, answer string
		req        string
		wantStatus int
		wantBody   string
	}{
		{"stream asked, JSON answered", "application/json", `{"id":"a","object":"chat.completion","model":"upstream/m","choices":[]}`,
			`"stream":true,`, 200, `{"id":"a","object":"chat.completion","model":"m","choices":[]}`},
		{"invalid JSON", "application/json", `{"id":"a","choices":[`, ``, 502, `"code":"upstream_invalid_response"`},
		{"HTML page", "text/html", `<html>oops</html>`, ``, 502, `"code":"upstream_invalid_response"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startWithUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", tt.ct)
				io.WriteString(w, tt.answer)
			}), nil)
			resp, b := post(t, srv.URL+"/v1/chat/completions", "application/json",
				`{"model":"m",`+tt.req+`"messages":[{"role":"user","content":"hi"}]}`)
			if resp.StatusCode != tt.wantStatus || !strings.Contains(string(b), tt.wantBody) {
				t.Errorf("got %d %s, want %d with %s", resp.StatusCode, b, tt.wantStatus, tt.wantBody)
			}
			if tt.wantStatus == 200 && resp.Header.Get("Content-Type") != tt.ct {
				t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
			}
		})
	}
}
