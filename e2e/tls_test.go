package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/omnigate/omnigate/internal/certs/certstest"
)

// TestTLSCertificateReload: a gateway serving https takes a new
// certificate written over its files at its next handshakes, without a
// restart, while a connection made before keeps working with the old one;
// files that do not load leave the new certificate in use, are logged
// once and counted in omnigate_tls_reloads_total.
func TestTLSCertificateReload(t *testing.T) {
	dir := t.TempDir()
	ca := certstest.NewCA(t, dir, "ca")
	first, certFile, keyFile := ca.IssueFiles(t, dir, "gateway")
	cfg := writeConfig(t, fmt.Sprintf(`
server:
  addr: "127.0.0.1:0"
  tls: {cert_file: %q, key_file: %q}
  admin_tls: {cert_file: %q, key_file: %q}
models:
  - name: m
    deployments: [{name: d, kind: sim, profile: instant}]
`, certFile, keyFile, certFile, keyFile))
	gw := start(t, "serve", "--config", cfg)
	if !strings.HasPrefix(gw.URL, "https://") || !strings.HasPrefix(gw.Admin, "https://") {
		t.Fatalf("serving on %s, admin on %s", gw.URL, gw.Admin)
	}
	roots := ca.Pool()
	// kept is a client whose connection, made now, outlives the change.
	kept := tlsClient(roots, false)
	if got := servedCert(t, kept, gw.URL); !got.Equal(first.Cert) {
		t.Fatal("not the first certificate")
	}

	second := ca.Issue(t, "gateway-after-the-rotation")
	replaceFile(t, certFile, second.CertPEM)
	replaceFile(t, keyFile, second.KeyPEM)
	waitFor(t, "a new handshake to get the new certificate", func() bool {
		return servedCert(t, tlsClient(roots, true), gw.URL).Equal(second.Cert)
	})
	if got := servedCert(t, kept, gw.URL); !got.Equal(first.Cert) {
		t.Error("the connection made before the change was not kept (or did not keep its certificate)")
	}
	resp, err := kept.Post(gw.URL+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"m","max_tokens":4,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("a chat on the kept connection: %d", resp.StatusCode)
	}

	replaceFile(t, keyFile, []byte("not a key"))
	admin := tlsClient(roots, false)
	waitFor(t, "the broken key to be counted", func() bool {
		servedCert(t, tlsClient(roots, true), gw.URL) // a handshake looks at the files
		return strings.Contains(getText(t, admin, gw.Admin+"/metrics"), `omnigate_tls_reloads_total{config="server.tls",result="error"} 1`)
	})
	if got := servedCert(t, tlsClient(roots, true), gw.URL); !got.Equal(second.Cert) {
		t.Error("broken files replaced the certificate in use")
	}
	metrics := getText(t, admin, gw.Admin+"/metrics")
	if !strings.Contains(metrics, `omnigate_tls_reloads_total{config="server.tls",result="ok"} 1`) {
		t.Errorf("the reload is not counted:\n%s", linesWith(metrics, "omnigate_tls_"))
	}
	admin.CloseIdleConnections()
	kept.CloseIdleConnections()
	gw.cmd.Process.Kill()
	gw.cmd.Wait() // stderr is complete
	log := linesWith(gw.stderr.String(), "config=server.tls ")
	if n := strings.Count(log, "certificate files changed but do not load"); n != 1 {
		t.Errorf("broken files logged %d times for server.tls, want once:\n%s", n, log)
	}
}

// tlsClient is an HTTP client over TLS trusting roots; fresh: a connection
// for each request.
func tlsClient(roots *x509.CertPool, fresh bool) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true, DisableKeepAlives: fresh}}
}

// servedCert is the certificate the gateway presented on the connection c's
// request to GET /healthz went over.
func servedCert(t *testing.T, c *http.Client, url string) *x509.Certificate {
	t.Helper()
	resp, err := c.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.TLS.PeerCertificates[0]
}

func getText(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return string(b)
}

// replaceFile writes b to a new file renamed over path, as a certificate
// manager does.
func replaceFile(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".new-"+filepath.Base(path))
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func linesWith(s, substr string) string {
	var b strings.Builder
	for l := range strings.Lines(s) {
		if strings.Contains(l, substr) {
			b.WriteString(l)
		}
	}
	return b.String()
}
