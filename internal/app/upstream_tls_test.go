package app

import (
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/certs/certstest"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/sim"
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

// TestDeploymentMTLS: a deployment with tls.ca_file and a client
// certificate reaches an engine of a private CA that requires client
// certificates: requests, health checks and metrics scrapes alike, all
// with the gateway's certificate. Without the certificate a request is a
// 502 deployment_misconfigured.
func TestDeploymentMTLS(t *testing.T) {
	dir := t.TempDir()
	ca := certstest.NewCA(t, dir, "engine-ca")
	p, err := sim.LoadProfile("instant")
	if err != nil {
		t.Fatal(err)
	}
	eng := sim.New(p, sim.Options{ModelName: "upstream/m"})
	t.Cleanup(eng.Close)
	var mu sync.Mutex
	seen := map[string]string{} // path → the client certificate's name
	h := eng.Handler()
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path] = r.TLS.PeerCertificates[0].Subject.CommonName
		mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	up.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "engine").TLS(t)},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()}
	up.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	up.StartTLS()
	t.Cleanup(up.Close)
	_, certFile, keyFile := ca.IssueFiles(t, dir, "gateway")
	deployment := func(tls config.UpstreamTLS, checks bool) *config.Config {
		return &config.Config{Models: []config.Model{{Name: "m", Deployments: []config.Deployment{{
			Name: "up", Kind: "openai", URL: up.URL + "/v1", UpstreamModel: "upstream/m", Dialect: config.DialectVLLM, TLS: tls,
			HealthCheck: config.HealthCheck{Enabled: &checks}, Metrics: config.EngineMetrics{Enabled: &checks},
		}}}}}
	}
	const chatBody = `{"model":"m","max_tokens":4,"messages":[{"role":"user","content":"hi"}]}`

	gw := startGateway(t, deployment(config.UpstreamTLS{CAFile: ca.File, CertFile: certFile, KeyFile: keyFile}, true))
	if resp, body := post(t, gw.URL+"/v1/chat/completions", "application/json", chatBody); resp.StatusCode != http.StatusOK {
		t.Fatalf("over mTLS: %d %s", resp.StatusCode, body)
	}
	eventually(t, "a health check and a metrics scrape", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return seen["/health"] == "gateway" && seen["/metrics"] == "gateway"
	})
	if seen["/v1/chat/completions"] != "gateway" {
		t.Errorf("the engine saw %v", seen)
	}

	bare := startGateway(t, deployment(config.UpstreamTLS{CAFile: ca.File}, false))
	resp, body := post(t, bare.URL+"/v1/chat/completions", "application/json", chatBody)
	var e struct {
		Error struct{ Message, Type, Code string }
	}
	if err := json.Unmarshal(body, &e); err != nil || resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("without a client certificate: %d %s", resp.StatusCode, body)
	}
	want := struct{ Message, Type, Code string }{"The gateway could not use a deployment of m: it is misconfigured.", "server_error", "deployment_misconfigured"}
	if diff := cmp.Diff(want, e.Error); diff != "" {
		t.Errorf("error (-want +got):\n%s", diff)
	}
}
