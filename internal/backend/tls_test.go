package backend

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/certs/certstest"
	"github.com/omnigate/omnigate/internal/config"
)

// mtlsEngine is an https engine with a certificate of a CA of its own,
// which takes only clients with a certificate of that CA. It returns the
// engine and the CA.
func mtlsEngine(t *testing.T, dir string, h http.Handler) (*httptest.Server, *certstest.CA) {
	t.Helper()
	ca := certstest.NewCA(t, dir, "engine-ca")
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "engine").TLS(t)},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, ca
}

// TestUpstreamTLS: a deployment trusting the engine's CA and presenting a
// certificate of it is served; one that does not trust the engine, or
// presents no certificate or another CA's, gets a 502
// deployment_misconfigured whose cause (for the logs) says what TLS said.
func TestUpstreamTLS(t *testing.T) {
	dir := t.TempDir()
	var sawCert string
	engine, ca := mtlsEngine(t, dir, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		sawCert = r.TLS.PeerCertificates[0].Subject.CommonName
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"c","object":"chat.completion","model":"m","choices":[]}`)
	}))
	_, certFile, keyFile := ca.IssueFiles(t, dir, "gateway")
	others := certstest.NewCA(t, dir, "others")
	_, otherCert, otherKey := others.IssueFiles(t, dir, "stranger")
	tests := []struct {
		name  string
		tls   config.UpstreamTLS
		cause string // "": served
	}{
		{"CA and client certificate", config.UpstreamTLS{CAFile: ca.File, CertFile: certFile, KeyFile: keyFile}, ""},
		{"by its name", config.UpstreamTLS{CAFile: ca.File, CertFile: certFile, KeyFile: keyFile, ServerName: "localhost"}, ""},
		{"without a client certificate", config.UpstreamTLS{CAFile: ca.File}, "certificate required"},
		{"another CA's client certificate", config.UpstreamTLS{CAFile: ca.File, CertFile: otherCert, KeyFile: otherKey}, "unknown certificate authority"},
		{"the system roots", config.UpstreamTLS{CertFile: certFile, KeyFile: keyFile}, "certificate signed by unknown authority"},
		{"another CA", config.UpstreamTLS{CAFile: others.File, CertFile: certFile, KeyFile: keyFile}, "certificate signed by unknown authority"},
		{"another name", config.UpstreamTLS{CAFile: ca.File, CertFile: certFile, KeyFile: keyFile, ServerName: "engine.example"}, "not engine.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sawCert = ""
			d := config.Deployment{Name: "gpu-a", URL: engine.URL + "/v1", TLS: tt.tls}
			o := newBackend(t, d)
			resp, err := o.Do(context.Background(), chatRequest(t, `{"model":"m"}`, "m", false))
			if tt.cause == "" {
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if sawCert != "gateway" {
					t.Errorf("the engine saw client certificate %q", sawCert)
				}
				return
			}
			if err == nil {
				resp.Body.Close()
				t.Fatal("served")
			}
			var ae *apierror.Error
			var me *MisconfiguredError
			if !errors.As(err, &ae) || ae.Status != http.StatusBadGateway || ae.Code != CodeDeploymentMisconfigured || !errors.As(err, &me) {
				t.Fatalf("got %v (%T), want a 502 deployment_misconfigured", err, err)
			}
			if me.Deployment != "gpu-a" || !strings.Contains(me.Error(), tt.cause) || !strings.Contains(me.Error(), "TLS with the engine failed") {
				t.Errorf("cause %q, want one naming the deployment and containing %q", me.Error(), tt.cause)
			}
			if strings.Contains(ae.Message, "127.0.0.1") || strings.Contains(ae.Message, "x509") {
				t.Errorf("the client is told %q", ae.Message)
			}
		})
	}
}

// TestUpstreamTLSFilesMissing: a transport is not made from files that do
// not load, and says which.
func TestUpstreamTLSFilesMissing(t *testing.T) {
	var ts Transports
	_, err := ts.For(config.Deployment{URL: "https://engine:8443/v1", TLS: config.UpstreamTLS{CAFile: "/nonexistent/ca.pem"}})
	if err == nil || !strings.Contains(err.Error(), "ca_file /nonexistent/ca.pem does not exist") {
		t.Errorf("got %v", err)
	}
}
