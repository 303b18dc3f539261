package backend

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/jsonscan"
)

// upstream starts a real HTTP server for one test.
func upstream(t testing.TB, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// newBackend builds an OpenAI backend for d on its own transport.
func newBackend(t testing.TB, d config.Deployment) *OpenAI {
	t.Helper()
	return newBackendOn(t, d, mustTransport(t, d))
}

// mustTransport is NewTransport(d), which fails the test on an error.
func mustTransport(t testing.TB, d config.Deployment) http.RoundTripper {
	t.Helper()
	tr, err := NewTransport(d)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// transportKinds are the two transports an http:// upstream may get: the
// lean h1 one NewTransport picks, and net/http's (used for https, and
// through a proxy), where the timeouts are contexts and timers.
var transportKinds = []struct {
	name string
	make func(config.Deployment) http.RoundTripper
}{
	{"h1", func(d config.Deployment) http.RoundTripper { tr, _ := NewTransport(d); return tr }},
	{"net-http", func(d config.Deployment) http.RoundTripper { return newHTTPTransport(keyOf(d), nil) }},
}

// newBackendOn builds an OpenAI backend for d on tr.
func newBackendOn(t testing.TB, d config.Deployment, tr http.RoundTripper) *OpenAI {
	t.Helper()
	t.Cleanup(tr.(interface{ CloseIdleConnections() }).CloseIdleConnections)
	o, err := NewOpenAI(d, tr)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// chatRequest builds a Request for body, with the spans of its top-level
// model, stream and stream_options as the parser records them.
func chatRequest(t testing.TB, body, public string, stream bool) *Request {
	t.Helper()
	r := &Request{Endpoint: "chat/completions", Body: []byte(body), PublicModel: public, Stream: stream, RequestID: "req-1"}
	err := jsonscan.ObjectEach([]byte(body), func(k, v []byte, off int) error {
		span := [2]int{off, off + len(v)}
		switch {
		case jsonscan.Equal(k, "model"):
			r.ModelSpan = span
		case jsonscan.Equal(k, "stream"):
			r.StreamSpan = span
		case jsonscan.Equal(k, "stream_options"):
			r.StreamOptionsSpan = span
		}
		return nil
	})
	if err != nil || r.ModelSpan == ([2]int{}) {
		t.Fatalf("no model in %s (%v)", body, err)
	}
	return r
}

type seen struct {
	Method, Path, Auth, Accept, ContentType, RequestID, Static, Body string
}

func TestOpenAIRequestForwarding(t *testing.T) {
	t.Setenv("OMNIGATE_TEST_KEY", "sk-test")
	got := make(chan seen, 1)
	srv := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Accept"), r.Header.Get("Content-Type"),
			r.Header.Get("X-Request-Id"), r.Header.Get("X-Tenant"), string(b)}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"c","object":"chat.completion","model":"up"}`)
	})
	tests := []struct {
		name     string
		upstream string
		stream   bool
		want     seen
	}{
		{"model spliced", "Qwen/Qwen2.5-Omni-7B", false, seen{Accept: "application/json",
			Body: `{"model":"Qwen/Qwen2.5-Omni-7B","messages":[{"role":"user","content":"hi"}]}`}},
		{"no upstream name keeps the body", "", false, seen{Accept: "application/json",
			Body: `{"model":"small","messages":[{"role":"user","content":"hi"}]}`}},
		{"same name keeps the body", "small", true, seen{Accept: "text/event-stream",
			Body: `{"model":"small","messages":[{"role":"user","content":"hi"}]}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := config.Deployment{Name: "d", Kind: "openai", URL: srv.URL + "/v1/", UpstreamModel: tt.upstream,
				APIKeyEnv: "OMNIGATE_TEST_KEY", Headers: map[string]string{"X-Tenant": "t1"}}
			o := newBackend(t, d)
			resp, err := o.Do(context.Background(), chatRequest(t, `{"model":"small","messages":[{"role":"user","content":"hi"}]}`, "small", tt.stream))
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			want := tt.want
			want.Method, want.Path, want.Auth, want.ContentType, want.RequestID, want.Static = "POST", "/v1/chat/completions", "Bearer sk-test", "application/json", "req-1", "t1"
			if diff := cmp.Diff(want, <-got); diff != "" {
				t.Errorf("upstream saw (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewOpenAIRejects(t *testing.T) {
	t.Setenv("OMNIGATE_EMPTY_KEY", "")
	tests := []struct {
		name string
		d    config.Deployment
	}{
		{"relative url", config.Deployment{URL: "/v1"}},
		{"bad scheme", config.Deployment{URL: "ftp://h/v1"}},
		{"unknown dialect", config.Deployment{URL: "http://h/v1", Dialect: "tgi"}},
		{"empty key", config.Deployment{URL: "http://h/v1", APIKeyEnv: "OMNIGATE_EMPTY_KEY"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewOpenAI(tt.d, http.DefaultTransport); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

// asAPIError checks err is an *apierror.Error with the status and code.
func asAPIError(t *testing.T, err error, status int, code string) *apierror.Error {
	t.Helper()
	var ae *apierror.Error
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v (%T), want *apierror.Error", err, err)
	}
	if ae.Status != status || ae.Code != code {
		t.Fatalf("err = %d %q (%v), want %d %q", ae.Status, ae.Code, ae, status, code)
	}
	return ae
}

func TestOpenAIUpstreamError(t *testing.T) {
	srv := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"object":"error","message":"This model's maximum context length is 10 tokens.","type":"BadRequestError","param":null,"code":400}`)
	})
	o := newBackend(t, config.Deployment{URL: srv.URL + "/v1", Dialect: DialectVLLM})
	_, err := o.Do(context.Background(), chatRequest(t, `{"model":"m"}`, "m", false))
	ae := asAPIError(t, err, 400, CodeContextLength)
	if !ae.Upstream || ae.Type != apierror.TypeInvalidRequest {
		t.Errorf("Upstream=%v Type=%q", ae.Upstream, ae.Type)
	}
}

func TestOpenAIDialError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	o := newBackend(t, config.Deployment{URL: "http://" + addr + "/v1"})
	_, err = o.Do(context.Background(), chatRequest(t, `{"model":"m"}`, "m", false))
	asAPIError(t, err, http.StatusBadGateway, CodeUpstreamUnavailable)
	var de *DialError
	if !errors.As(err, &de) {
		t.Errorf("cause %v is not a *DialError", err)
	}
}

// blocker is an upstream handler that blocks until its request is cancelled,
// reporting that on done; before blocking it may send a header and events,
// then closes started (when not nil).
func blocker(started, done chan<- struct{}, events ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// net/http notices a closed client connection only once the
		// request body has been read, as engines do first.
		io.Copy(io.Discard, r.Body)
		if len(events) > 0 {
			w.Header().Set("Content-Type", "text/event-stream")
			for _, ev := range events {
				io.WriteString(w, ev)
			}
			w.(http.Flusher).Flush()
		}
		if started != nil {
			close(started)
		}
		<-r.Context().Done()
		close(done)
	}
}

func TestOpenAITimeouts(t *testing.T) {
	ms := func(n int) config.Duration { return config.Duration(time.Duration(n) * time.Millisecond) }
	tests := []struct {
		name     string
		timeouts config.Timeouts
		events   []string // sent before blocking; empty: block before the header
		phase    string
	}{
		{"first token", config.Timeouts{FirstToken: ms(50)}, nil, PhaseFirstToken},
		{"total before header", config.Timeouts{Total: ms(50)}, nil, PhaseTotal},
		{"first token after the headers", config.Timeouts{FirstToken: ms(50), Idle: ms(5000)}, []string{""}, PhaseFirstToken},
		{"idle while streaming", config.Timeouts{FirstToken: ms(5000), Idle: ms(50)}, []string{"data: {\"a\":1}\n\n"}, PhaseIdle},
		{"total while streaming", config.Timeouts{Total: ms(80)}, []string{"data: {\"a\":1}\n\n"}, PhaseTotal},
	}
	for _, kind := range transportKinds {
		for _, tt := range tests {
			t.Run(kind.name+"/"+tt.name, func(t *testing.T) {
				done := make(chan struct{})
				srv := upstream(t, blocker(nil, done, tt.events...))
				d := config.Deployment{URL: srv.URL + "/v1", Timeouts: tt.timeouts}
				o := newBackendOn(t, d, kind.make(d))
				resp, err := o.Do(context.Background(), chatRequest(t, `{"model":"m","stream":true}`, "m", true))
				if err == nil { // a stream started: the limit ends it
					defer resp.Body.Close()
					_, err = io.ReadAll(resp.Body)
				}
				ae := asAPIError(t, err, http.StatusGatewayTimeout, CodeUpstreamTimeout)
				var te *TimeoutError
				if !errors.As(ae, &te) || te.Phase != tt.phase {
					t.Fatalf("cause %v, want a *TimeoutError of phase %s", ae.Err, tt.phase)
				}
				<-done // the upstream saw the cancellation
			})
		}
	}
}

// A non-streaming answer comes whole: first_token bounds all of it.
func TestOpenAIFirstTokenBoundsNonStreaming(t *testing.T) {
	for _, kind := range transportKinds {
		t.Run(kind.name, func(t *testing.T) {
			srv := upstream(t, func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				select {
				case <-time.After(2 * time.Second):
				case <-r.Context().Done():
				}
				io.WriteString(w, `{"model":"m"}`)
			})
			d := config.Deployment{URL: srv.URL + "/v1", Timeouts: config.Timeouts{FirstToken: config.Duration(30 * time.Millisecond)}}
			o := newBackendOn(t, d, kind.make(d))
			_, err := o.Do(context.Background(), chatRequest(t, `{"model":"m"}`, "m", false))
			ae := asAPIError(t, err, http.StatusGatewayTimeout, CodeUpstreamTimeout)
			var te *TimeoutError
			if !errors.As(ae, &te) || te.Phase != PhaseFirstToken {
				t.Fatalf("cause %v, want a first_token *TimeoutError", ae.Err)
			}
		})
	}
}

func TestOpenAIClientCancel(t *testing.T) {
	for _, kind := range transportKinds {
		for _, streaming := range []bool{false, true} {
			name := map[bool]string{false: "before header", true: "mid stream"}[streaming]
			t.Run(kind.name+"/"+name, func(t *testing.T) {
				done := make(chan struct{})
				var events []string
				if streaming {
					events = []string{"data: {\"a\":1}\n\n"}
				}
				started := make(chan struct{})
				srv := upstream(t, blocker(started, done, events...))
				d := config.Deployment{URL: srv.URL + "/v1"}
				o := newBackendOn(t, d, kind.make(d))
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				errc := make(chan error, 1)
				go func() {
					resp, err := o.Do(ctx, chatRequest(t, `{"model":"m"}`, "m", streaming))
					if err == nil {
						defer resp.Body.Close()
						buf := make([]byte, 64)
						if _, err = resp.Body.Read(buf); err != nil {
							errc <- err
							return
						}
						cancel() // after the first event
						_, err = io.ReadAll(resp.Body)
					}
					errc <- err
				}()
				if !streaming {
					<-started
					cancel()
				}
				<-done // the upstream handler's context was cancelled
				asAPIError(t, <-errc, apierror.StatusClientClosed, CodeClientClosed)
			})
		}
	}
}

func TestOpenAIModelRewrite(t *testing.T) {
	tests := []struct {
		name, ct, body, public, want string
		stream                       bool
	}{
		{"json", "application/json", `{"id":"c","model":"Qwen/Qwen2.5-Omni-7B","choices":[]}`, "qwen3-omni-7b",
			`{"id":"c","model":"qwen3-omni-7b","choices":[]}`, false},
		{"sse", "text/event-stream", "data: {\"model\":\"Qwen/Qwen2.5-Omni-7B\"}\n\ndata: [DONE]\n\n", "qwen3-omni-7b",
			"data: {\"model\":\"qwen3-omni-7b\"}\n\ndata: [DONE]\n\n", true},
		{"same name untouched", "application/json", `{"model":"Qwen/Qwen2.5-Omni-7B"}`, "Qwen/Qwen2.5-Omni-7B",
			`{"model":"Qwen/Qwen2.5-Omni-7B"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := upstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.ct)
				io.WriteString(w, tt.body)
			})
			o := newBackend(t, config.Deployment{URL: srv.URL + "/v1", UpstreamModel: "Qwen/Qwen2.5-Omni-7B"})
			resp, err := o.Do(context.Background(), chatRequest(t, `{"model":"x"}`, tt.public, tt.stream))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if tt.public != "Qwen/Qwen2.5-Omni-7B" && (resp.ContentLength != -1 || resp.Header.Get("Content-Length") != "") {
				t.Errorf("stale length kept: %d %q", resp.ContentLength, resp.Header.Get("Content-Length"))
			}
		})
	}
}

func TestOpenAIMidStreamCut(t *testing.T) {
	srv := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"a\":1}\n\n")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // cuts the connection
	})
	o := newBackend(t, config.Deployment{URL: srv.URL + "/v1"})
	resp, err := o.Do(context.Background(), chatRequest(t, `{"model":"m"}`, "m", true))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, err = io.ReadAll(resp.Body)
	asAPIError(t, err, http.StatusBadGateway, CodeUpstreamUnavailable)
	var ce *ConnError
	if !errors.As(err, &ce) {
		t.Errorf("cause %v is not a *ConnError", err)
	}
}

func BenchmarkOpenAIDo(b *testing.B) {
	answer := []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"Qwen/Qwen2.5-Omni-7B","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}`)
	srv := upstream(b, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(answer)
	})
	body := `{"model":"qwen3-omni-7b","messages":[{"role":"user","content":"hello"}]}`
	for _, bc := range []struct{ name, upstream string }{{"same-name", ""}, {"rewrite", "Qwen/Qwen2.5-Omni-7B"}} {
		b.Run(bc.name, func(b *testing.B) {
			o := newBackend(b, config.Deployment{URL: srv.URL + "/v1", UpstreamModel: bc.upstream,
				Timeouts: config.Timeouts{FirstToken: config.Duration(time.Minute), Idle: config.Duration(time.Minute), Total: config.Duration(time.Minute)}})
			req := chatRequest(b, body, "qwen3-omni-7b", false)
			buf := make([]byte, 4096)
			b.ReportAllocs()
			for b.Loop() {
				resp, err := o.Do(context.Background(), req)
				if err != nil {
					b.Fatal(err)
				}
				for {
					if _, err := resp.Body.Read(buf); err != nil {
						break
					}
				}
				resp.Body.Close()
			}
		})
	}
}

func TestOpenAIResponseNamesRequest(t *testing.T) {
	srv := upstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"model":"m"}`) })
	for _, kind := range transportKinds {
		t.Run(kind.name, func(t *testing.T) {
			d := config.Deployment{URL: srv.URL + "/v1"}
			o := newBackendOn(t, d, kind.make(d))
			if _, fast := o.send.(*h1Sender); fast != (kind.name == "h1") {
				t.Errorf("fast path %v for %s", fast, kind.name)
			}
			resp, err := o.Do(context.Background(), chatRequest(t, `{"model":"m"}`, "m", false))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.Request == nil || resp.Request.Method != http.MethodPost || resp.Request.URL.String() != srv.URL+"/v1/chat/completions" {
				t.Errorf("resp.Request = %+v, want POST %s/v1/chat/completions", resp.Request, srv.URL)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		v    string
		want time.Duration
	}{
		{"", 0}, {"7", 7 * time.Second}, {" 2 ", 2 * time.Second}, {"-3", 0}, {"soon", 0},
		{"999999", time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	} {
		if got := retryAfter(tc.v, now); got != tc.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tc.v, got, tc.want)
		}
	}
}

// TestOpenAIRetryAfterPassedOn: an engine's Retry-After on an error reaches
// the error the client gets.
func TestOpenAIRetryAfterPassedOn(t *testing.T) {
	srv := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, `{"code":"Throttling","message":"Requests rate limit exceeded"}`)
	})
	o := newBackend(t, config.Deployment{URL: srv.URL + "/v1", Dialect: DialectModelStudio})
	_, err := o.Do(context.Background(), chatRequest(t, `{"model":"m"}`, "m", false))
	var ae *apierror.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusTooManyRequests || ae.RetryAfter != 7*time.Second {
		t.Fatalf("err = %#v, want a 429 with RetryAfter 7 s", err)
	}
}

// TestOpenAIEngineErrorsForClients: an engine's error reaches the client
// without the deployment's internals, and one that blames the gateway's own
// configuration as the gateway's error; the engine's answer stays in the
// cause, for the logs.
func TestOpenAIEngineErrorsForClients(t *testing.T) {
	const internal = "Qwen/Secret-Internal-Model-v7"
	tests := []struct {
		name       string
		status     int
		body       string
		wantStatus int
		wantCode   string
		wantMsg    string
	}{
		{"message sanitised", 400,
			`{"object":"error","message":"The model ` + "`" + internal + "`" + ` does not support tools (engine http://10.0.0.5:8000, key=sk-live-4f9a8b7c6d)","type":"BadRequestError","param":"tools","code":400}`,
			400, "", "The model `qwen3-omni-7b` does not support tools (engine [url], key=[redacted])"},
		{"wrong upstream_model", 404,
			`{"object":"error","message":"The model ` + "`" + internal + "`" + ` does not exist.","type":"NotFoundError","param":"model","code":404}`,
			502, CodeDeploymentMisconfigured, "The gateway could not use a deployment of qwen3-omni-7b: it is misconfigured."},
		{"wrong engine key", 401, `{"error":{"message":"Incorrect API key provided: sk-live-abcd****wxyz.","type":"invalid_request_error","code":"invalid_api_key"}}`,
			502, CodeDeploymentMisconfigured, "The gateway could not use a deployment of qwen3-omni-7b: it is misconfigured."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := upstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			})
			o := newBackend(t, config.Deployment{Name: "gpu-a", URL: srv.URL + "/v1", UpstreamModel: internal, Dialect: DialectVLLM})
			_, err := o.Do(context.Background(), chatRequest(t, `{"model":"qwen3-omni-7b"}`, "qwen3-omni-7b", false))
			ae := asAPIError(t, err, tt.wantStatus, tt.wantCode)
			if ae.Message != tt.wantMsg {
				t.Errorf("message %q, want %q", ae.Message, tt.wantMsg)
			}
			if !strings.Contains(ae.Err.Error(), tt.body) {
				t.Errorf("cause %q lost the engine's answer", ae.Err)
			}
			var me *MisconfiguredError
			if errors.As(err, &me) != (tt.wantCode == CodeDeploymentMisconfigured) {
				t.Fatalf("*MisconfiguredError in the cause: %v", me != nil)
			}
			if me != nil && (me.Deployment != "gpu-a" || me.Status != tt.status) {
				t.Errorf("marker %+v, want deployment gpu-a, status %d", me, tt.status)
			}
		})
	}
}

// TestOpenAIStreamOpeningWithAnError: an engine that fails after its 200
// and says so in its first event (vLLM, out of memory) has failed the
// attempt, as if it had answered with the event's code.
func TestOpenAIStreamOpeningWithAnError(t *testing.T) {
	tests := []struct {
		name   string
		events []string
		status int
	}{
		{"vllm engine dead", []string{`data: {"error":{"message":"EngineCore encountered an issue. See stack trace (above) for the root cause.","type":"InternalServerError","param":null,"code":500}}` + "\n\n", "data: [DONE]\n\n"}, 500},
		{"split across writes", []string{`data: {"error": {"message":"busy",`, `"type":"ServiceUnavailableError","code":503}}` + "\n\n"}, 503},
		{"no code", []string{`data: {"error":{"message":"boom"}}` + "\n\n"}, 502},
	}
	for _, kind := range transportKinds {
		for _, tt := range tests {
			t.Run(kind.name+"/"+tt.name, func(t *testing.T) {
				srv := upstream(t, func(w http.ResponseWriter, r *http.Request) {
					io.Copy(io.Discard, r.Body)
					w.Header().Set("Content-Type", "text/event-stream")
					for _, ev := range tt.events {
						io.WriteString(w, ev)
						w.(http.Flusher).Flush()
						time.Sleep(5 * time.Millisecond)
					}
				})
				d := config.Deployment{URL: srv.URL + "/v1"}
				o := newBackendOn(t, d, kind.make(d))
				resp, err := o.Do(context.Background(), chatRequest(t, `{"model":"m","stream":true}`, "m", true))
				if err == nil {
					resp.Body.Close()
					t.Fatal("the stream's error event was passed on as an answer")
				}
				if ae := apierror.From(err); ae.Status != tt.status || !ae.Upstream {
					t.Errorf("err %v (status %d), want the engine's %d", err, ae.Status, tt.status)
				}
			})
		}
	}
}

func TestErrorEvent(t *testing.T) {
	for in, want := range map[string]bool{
		`data: {"error":{"message":"x"}}`:         true,
		`data:{"error":"x"}`:                      true,
		"event: error\ndata: {\"message\":\"x\"}": true,
		`data: {"id":"chatcmpl-1","choices":[]}`:  false,
		`data: {"id":"1","error":null}`:           false,
		": keep-alive\n\ndata: {\"error\":{}}":    false, // a comment first: not the engine's first event
		`data: [DONE]`:                            false,
		"":                                        false,
	} {
		if got := ErrorEvent([]byte(in)); got != want {
			t.Errorf("ErrorEvent(%q) = %v, want %v", in, got, want)
		}
	}
}

// TestOpenAIWholeAnswerBeforeReturning: a non-streaming answer is read
// before Do returns, so one cut or stalled after its head, or one that is
// no JSON object, fails the attempt (and can go elsewhere) instead of
// reaching the client broken.
func TestOpenAIWholeAnswerBeforeReturning(t *testing.T) {
	const answer = `{"id":"x","object":"chat.completion","choices":[]}`
	tests := []struct {
		name  string
		serve func(w http.ResponseWriter)
		code  string
	}{
		{"cut halfway", func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
			io.WriteString(w, answer[:10])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}, CodeUpstreamUnavailable},
		{"stalled after the head", func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			time.Sleep(time.Second)
		}, CodeUpstreamTimeout},
		{"not a JSON object", func(w http.ResponseWriter) { io.WriteString(w, "<html>proxy</html>") }, CodeInvalidResponse},
	}
	for _, kind := range transportKinds {
		for _, tt := range tests {
			t.Run(kind.name+"/"+tt.name, func(t *testing.T) {
				srv := upstream(t, func(w http.ResponseWriter, r *http.Request) {
					io.Copy(io.Discard, r.Body)
					w.Header().Set("Content-Type", "application/json")
					tt.serve(w)
				})
				d := config.Deployment{URL: srv.URL + "/v1", Timeouts: config.Timeouts{FirstToken: config.Duration(100 * time.Millisecond)}}
				o := newBackendOn(t, d, kind.make(d))
				resp, err := o.Do(context.Background(), chatRequest(t, `{"model":"m"}`, "m", false))
				if err == nil {
					resp.Body.Close()
					t.Fatal("a broken answer was returned as one")
				}
				if got := apierror.From(err).Code; got != tt.code {
					t.Errorf("err %v: code %q, want %q", err, got, tt.code)
				}
			})
		}
	}
}
