package app

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestMisconfiguredDeploymentIsTheGatewaysError: an engine that does not
// know the deployment's upstream_model, or refuses the gateway's key, is
// the operator's mistake: the client gets a 502 that says so and never the
// engine's internal names.
func TestMisconfiguredDeploymentIsTheGatewaysError(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
	}{
		{"wrong upstream_model", 404, `{"object":"error","message":"The model ` + "`upstream/m`" + ` does not exist.","type":"NotFoundError","param":null,"code":404}`},
		{"wrong engine key", 401, `{"error":{"message":"Incorrect API key provided: sk-live-abc123.","type":"invalid_request_error","code":"invalid_api_key"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startWithUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}), nil)
			resp, b := post(t, srv.URL+"/v1/chat/completions", "application/json", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
			if resp.StatusCode != 502 || !strings.Contains(string(b), `"code":"deployment_misconfigured"`) {
				t.Errorf("got %d %s", resp.StatusCode, b)
			}
			for _, secret := range []string{"upstream/m", "sk-live", "Incorrect API key"} {
				if strings.Contains(string(b), secret) {
					t.Errorf("client body shows %q: %s", secret, b)
				}
			}
		})
	}
}
