package app

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/omnigate/omnigate/internal/certs/certstest"
	pb "github.com/omnigate/omnigate/proto/omnigate/v1"
)

// tlsFixture is a CA and the gateway's certificate for 127.0.0.1 it
// signed, and a CA of clients with one client's certificate.
type tlsFixture struct {
	ca, clients       *certstest.CA
	server, client    certstest.Leaf
	certFile, keyFile string
}

func newTLSFixture(t *testing.T, dir string) *tlsFixture {
	t.Helper()
	f := &tlsFixture{ca: certstest.NewCA(t, dir, "ca"), clients: certstest.NewCA(t, dir, "clients")}
	f.server, f.certFile, f.keyFile = f.ca.IssueFiles(t, dir, "gateway")
	f.client = f.clients.Issue(t, "client")
	return f
}

// listener is the YAML of a listener's tls with the gateway's certificate,
// requiring client certificates of the clients' CA when mutual.
func (f *tlsFixture) listener(mutual bool) string {
	if mutual {
		return fmt.Sprintf(`{cert_file: %q, key_file: %q, client_ca_file: %q}`, f.certFile, f.keyFile, f.clients.File)
	}
	return fmt.Sprintf(`{cert_file: %q, key_file: %q}`, f.certFile, f.keyFile)
}

// tlsConfig trusts the CA and presents the client's certificate when
// withCert.
func (f *tlsFixture) tlsConfig(t *testing.T, withCert bool) *tls.Config {
	c := &tls.Config{RootCAs: f.ca.Pool()}
	if withCert {
		c.Certificates = []tls.Certificate{f.client.TLS(t)}
	}
	return c
}

// httpClient speaks HTTP/2 only (h2) or HTTP/1.1 only over TLS, trusting
// the CA.
func (f *tlsFixture) httpClient(t *testing.T, h2, withCert bool) *http.Client {
	tr := &http.Transport{TLSClientConfig: f.tlsConfig(t, withCert), Protocols: new(http.Protocols)}
	tr.Protocols.SetHTTP2(h2)
	tr.Protocols.SetHTTP1(!h2)
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// addrRE is a listener's address with its port, which changes every run.
var addrRE = regexp.MustCompile(`(127\.0\.0\.1|0\.0\.0\.0|\[::\]):\d+`)

// TestServeTLS: with server.tls, server.admin_tls and server.grpc_tls,
// every listener serves TLS and says so (mTLS where it requires client
// certificates); the API speaks HTTP/2 and HTTP/1.1, streams included,
// and answers a plaintext request with a 400; the listeners with a client
// CA refuse a client without a certificate.
func TestServeTLS(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	f := newTLSFixture(t, dir)
	cfg := writeFile(t, dir, `server: {addr: "127.0.0.1:0", tls: `+f.listener(false)+`, admin_tls: `+f.listener(true)+
		`, grpc_tls: `+f.listener(true)+`}`+adminTestModels)
	s := serveArgs(t, "--config", cfg, "--admin-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0")
	var lines []string
	for _, l := range s.lines {
		lines = append(lines, addrRE.ReplaceAllString(l, "ADDR"))
	}
	want := []string{
		"omnigate: admin on https://ADDR (mTLS)",
		"omnigate: gRPC on ADDR (mTLS)",
		"omnigate: metrics on https://ADDR/metrics and https://ADDR/metrics",
		"omnigate: serving on https://ADDR (TLS)",
	}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("startup lines (-want +got):\n%s", diff)
	}

	for _, h2 := range []bool{true, false} {
		c := f.httpClient(t, h2, false)
		resp, err := c.Get(s.api + "/v1/models")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if wantMajor := map[bool]int{true: 2, false: 1}[h2]; resp.StatusCode != 200 || resp.ProtoMajor != wantMajor {
			t.Errorf("h2 %v: %d over %s", h2, resp.StatusCode, resp.Proto)
		}
		if !resp.TLS.PeerCertificates[0].Equal(f.server.Cert) {
			t.Error("not the configured certificate")
		}
		chatOverTLS(t, c, s.api)
	}

	resp, err := http.Get(strings.Replace(s.api, "https://", "http://", 1) + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("plaintext to the TLS listener: %d, want 400", resp.StatusCode)
	}

	if _, err := f.httpClient(t, true, false).Get(s.admin + "/metrics"); err == nil {
		t.Error("the admin listener let in a client without a certificate")
	}
	resp, err = f.httpClient(t, true, true).Get(s.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, series := range []string{`omnigate_tls_reloads_total{config="server.tls",result="error"} 0`,
		`omnigate_tls_reloads_total{config="server.grpc_tls",result="ok"} 0`} {
		if !strings.Contains(string(metrics), series) {
			t.Errorf("admin /metrics lacks %s", series)
		}
	}

	grpcList := func(withCert bool) error {
		conn, err := grpc.NewClient(s.grpc, grpc.WithTransportCredentials(credentials.NewTLS(f.tlsConfig(t, withCert))))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, err = pb.NewOmnigateClient(conn).ListModels(context.Background(), &pb.ListModelsRequest{})
		return err
	}
	if err := grpcList(true); err != nil {
		t.Errorf("gRPC with a client certificate: %v", err)
	}
	if err := grpcList(false); status.Code(err) != codes.Unavailable {
		t.Errorf("gRPC without a client certificate: %v, want Unavailable", err)
	}
}

// chatOverTLS sends a chat completion and a streamed one through c.
func chatOverTLS(t *testing.T, c *http.Client, api string) {
	t.Helper()
	for _, stream := range []bool{false, true} {
		resp, err := c.Post(api+"/v1/chat/completions", "application/json",
			strings.NewReader(fmt.Sprintf(`{"model":"m","stream":%v,"max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`, stream)))
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Fatalf("stream %v: %d %s", stream, resp.StatusCode, b)
		}
		if !stream {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			continue
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
			t.Errorf("stream over %s: Content-Type %q", resp.Proto, ct)
		}
		events, done := 0, false
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				events++
				done = d == "[DONE]"
			}
		}
		resp.Body.Close()
		if events < 3 || !done {
			t.Errorf("stream over %s: %d events, ended with [DONE] %v", resp.Proto, events, done)
		}
	}
}

// TestSDKOverTLS: the OpenAI SDK, trusting the gateway's private CA,
// completes a chat and streams one over https.
func TestSDKOverTLS(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	f := newTLSFixture(t, dir)
	cfg := writeFile(t, dir, `server: {addr: "127.0.0.1:0", tls: `+f.listener(false)+`}`+adminTestModels)
	s := serveArgs(t, "--config", cfg, "--admin-addr", "off", "--grpc-addr", "off")
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: f.tlsConfig(t, false), ForceAttemptHTTP2: true}}
	t.Cleanup(hc.CloseIdleConnections) // before serve's shutdown, which would wait a second for an open HTTP/2 connection
	c := openai.NewClient(option.WithBaseURL(s.api+"/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0), option.WithHTTPClient(hc))
	ctx := context.Background()
	params := openai.ChatCompletionNewParams{
		Model: "m", MaxTokens: openai.Int(8),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello.")},
	}
	res, err := c.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Choices) != 1 || res.Choices[0].Message.Content == "" {
		t.Fatalf("no answer: %+v", res)
	}
	stream := c.Chat.Completions.NewStreaming(ctx, params)
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if got, want := acc.Choices[0].Message.Content, res.Choices[0].Message.Content; got != want {
		t.Errorf("streamed %q, answered %q", got, want)
	}
}
