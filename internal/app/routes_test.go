package app

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/omnigate/omnigate/internal/config"
)

// do sends method path with body (as JSON) to the server at base and
// returns the answer.
func do(t *testing.T, base, method, path, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	if body != "" {
		hdr = append([]string{"Content-Type", "application/json"}, hdr...)
	}
	return send(t, method, base+path, body, hdr...)
}

// send sends method url with body and the header pairs in hdr, and returns
// the answer with its body read.
func send(t *testing.T, method, url, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, b
}

// TestOnlyExactPathsRoute: a path is routed as the client spelled it; a
// percent-encoded spelling of a known path is an unknown URL.
func TestOnlyExactPathsRoute(t *testing.T) {
	srv := startDefault(t)
	chat := `{"model":"small","max_tokens":4,"messages":[{"role":"user","content":"hi"}]}`
	for _, tc := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"POST", "/v1/chat/completions", 200, ""},
		{"POST", "/v1/chat%2Fcompletions", 404, "unknown_url"},
		{"POST", "/v1/chat%2fcompletions", 404, "unknown_url"},
		{"POST", "/v1%2Fchat/completions", 404, "unknown_url"},
		{"POST", "/v1/chat/%63ompletions", 404, "unknown_url"},
		{"POST", "/v1/completions%2F", 404, "unknown_url"},
		{"POST", "/v1/embeddings%00", 404, "unknown_url"},
		{"GET", "/v1/models", 200, ""},
		{"GET", "/v1%2Fmodels", 404, "unknown_url"},
		{"GET", "/v1/models%2Fsmall", 404, "unknown_url"},
		{"GET", "/v1/models/small", 200, ""},
		{"GET", "/healthz", 200, ""},
		{"GET", "/health%7A", 404, "unknown_url"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			body := ""
			if tc.method == "POST" {
				body = chat
			}
			resp, b := do(t, srv.URL, tc.method, tc.path, body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			if tc.status != 200 {
				if code := errorCode(t, b); code != tc.code {
					t.Errorf("code %q, want %q", code, tc.code)
				}
			}
		})
	}
}

// TestModelIDMayBeEscaped: a model name with a slash can be asked for
// with the slash percent-encoded, as clients that escape path segments do.
func TestModelIDMayBeEscaped(t *testing.T) {
	srv := startGateway(t, &config.Config{Models: []config.Model{{Name: "org/model",
		Deployments: []config.Deployment{{Name: "s", Kind: "sim", Profile: "instant"}}}}})
	for _, path := range []string{"/v1/models/org/model", "/v1/models/org%2Fmodel"} {
		resp, b := do(t, srv.URL, "GET", path, "")
		if resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"id":"org/model"`)) {
			t.Errorf("%s: %d %s", path, resp.StatusCode, b)
		}
	}
}

// TestInfoEndpointsTakeOnlyGet: the health, readiness, metrics and model
// endpoints answer GET and HEAD; any other method is 405 with Allow, in the
// OpenAI error shape.
func TestInfoEndpointsTakeOnlyGet(t *testing.T) {
	srv := startDefault(t)
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/v1/models", "/v1/models/small"} {
		for _, method := range []string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"} {
			t.Run(method+" "+path, func(t *testing.T) {
				resp, b := do(t, srv.URL, method, path, "")
				switch method {
				case "GET", "HEAD":
					if resp.StatusCode != 200 {
						t.Errorf("status %d: %s", resp.StatusCode, b)
					}
				default:
					if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" {
						t.Fatalf("status %d, Allow %q: %s; want 405 and GET, HEAD", resp.StatusCode, resp.Header.Get("Allow"), b)
					}
					if code := errorCode(t, b); code != "method_not_allowed" {
						t.Errorf("code %q", code)
					}
				}
			})
		}
	}
}

// TestEveryAnswerHasRequestID: every answer carries X-Request-Id, echoing a
// valid one from the client.
func TestEveryAnswerHasRequestID(t *testing.T) {
	srv := startDefault(t)
	chat := `{"model":"small","max_tokens":4,"messages":[{"role":"user","content":"hi"}]}`
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/v1/chat/completions", chat},
		{"POST", "/v1/chat/completions", `{"model":"nope","messages":[]}`},
		{"GET", "/v1/chat/completions", ""},
		{"GET", "/v1/models", ""},
		{"GET", "/v1/models/small", ""},
		{"GET", "/v1/models/nope", ""},
		{"POST", "/v1/models", ""},
		{"GET", "/no/such/path", ""},
		{"GET", "/healthz", ""},
		{"GET", "/readyz", ""},
		{"GET", "/metrics", ""},
		{"DELETE", "/healthz", ""},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			resp, _ := do(t, srv.URL, tc.method, tc.path, tc.body)
			if id := resp.Header.Get("X-Request-Id"); !strings.HasPrefix(id, "og-") {
				t.Errorf("%d: X-Request-Id %q, want a generated one", resp.StatusCode, id)
			}
			resp, _ = do(t, srv.URL, tc.method, tc.path, tc.body, "X-Request-Id", "client-id-7")
			if id := resp.Header.Get("X-Request-Id"); id != "client-id-7" {
				t.Errorf("%d: X-Request-Id %q, want the client's", resp.StatusCode, id)
			}
		})
	}
}
