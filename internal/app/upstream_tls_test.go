package app

import (
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/omnigate/omnigate/internal/config"
)

// TestHTTPSDeploymentBesideHTTPOnOneHost: deployments on one host:port, one
// over http and one over https, each get their own transport. (They once
// shared the first one's, and every request to the https one failed with
// 502 "unsupported protocol scheme".)
//
// The gateway trusts the test server's certificate the way an operator
// trusts a private CA: SSL_CERT_FILE. Go reads it once per process, when
// the first certificate is verified, so no other test of this package may
// verify one first.
func TestHTTPSDeploymentBesideHTTPOnOneHost(t *testing.T) {
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"c","object":"chat.completion","model":"m","choices":[]}`)
	}))
	defer up.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: up.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSL_CERT_FILE", ca)
	hostPort := strings.TrimPrefix(up.URL, "https://")
	cfg := &config.Config{Models: []config.Model{
		{Name: "plain", Deployments: []config.Deployment{{Name: "plain", Kind: "openai", URL: "http://" + hostPort + "/v1"}}},
		{Name: "secure", Deployments: []config.Deployment{{Name: "secure", Kind: "openai", URL: "https://" + hostPort + "/v1"}}},
	}}
	gw := startGateway(t, cfg)
	resp, body := post(t, gw.URL+"/v1/chat/completions", "application/json",
		`{"model":"secure","messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("https deployment: %d %s", resp.StatusCode, body)
	}
}
