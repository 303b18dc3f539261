package backend

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/sse"
)

func TestHandlerTransportStreams(t *testing.T) {
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("X-Echo", string(b))
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-release // the client must read the first event before this returns
		w.Header().Set("X-Late", "ignored")
		io.WriteString(w, "data: second\n\n")
	})
	req, _ := http.NewRequest(http.MethodPost, "http://sim/v1/chat/completions", strings.NewReader("ping"))
	resp, err := HandlerTransport(h).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Echo") != "ping" || resp.Header.Get("X-Late") != "" {
		t.Errorf("status %d, header %v", resp.StatusCode, resp.Header)
	}
	rd := sse.NewReader(resp.Body)
	ev, err := rd.Next()
	if err != nil || string(ev.Data) != "first" {
		t.Fatalf("first event %q, %v", ev.Data, err)
	}
	close(release)
	ev, err = rd.Next()
	if err != nil || string(ev.Data) != "second" {
		t.Fatalf("second event %q, %v", ev.Data, err)
	}
	if _, err := rd.Next(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
}

func TestHandlerTransportStatusAndSniffing(t *testing.T) {
	tests := []struct {
		name       string
		h          http.HandlerFunc
		wantStatus int
		wantCT     string
		wantBody   string
	}{
		{"explicit status", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"error":"busy"}`)
		}, 429, "application/json", `{"error":"busy"}`},
		{"implicit 200 sniffed", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "hello")
		}, 200, "text/plain; charset=utf-8", "hello"},
		{"empty handler", func(w http.ResponseWriter, r *http.Request) {}, 200, "", ""},
		{"informational ignored", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusCreated)
		}, 201, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, "http://sim/x", nil)
			resp, err := HandlerTransport(tt.h).RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			got := []any{resp.StatusCode, resp.Header.Get("Content-Type"), string(b)}
			if diff := cmp.Diff([]any{tt.wantStatus, tt.wantCT, tt.wantBody}, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestHandlerTransportAbort(t *testing.T) {
	t.Run("after header", func(t *testing.T) {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "data: a\n\n")
			panic(http.ErrAbortHandler)
		})
		req, _ := http.NewRequest(http.MethodGet, "http://sim/x", nil)
		resp, err := HandlerTransport(h).RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if !errors.Is(err, ErrHandlerAborted) || string(b) != "data: a\n\n" {
			t.Fatalf("read %q, %v; want the first event then ErrHandlerAborted", b, err)
		}
	})
	t.Run("before header", func(t *testing.T) {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
		req, _ := http.NewRequest(http.MethodGet, "http://sim/x", nil)
		if _, err := HandlerTransport(h).RoundTrip(req); !errors.Is(err, ErrHandlerAborted) {
			t.Fatalf("err = %v, want ErrHandlerAborted", err)
		}
	})
	t.Run("other panic", func(t *testing.T) {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic("boom") })
		req, _ := http.NewRequest(http.MethodGet, "http://sim/x", nil)
		if _, err := HandlerTransport(h).RoundTrip(req); err == nil || !strings.Contains(err.Error(), "boom") {
			t.Fatalf("err = %v, want the panic value", err)
		}
	})
}

func TestHandlerTransportCancel(t *testing.T) {
	for _, how := range []string{"ctx before header", "ctx mid body", "close body"} {
		t.Run(how, func(t *testing.T) {
			done := make(chan struct{})
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				defer close(done)
				io.WriteString(w, "data: a\n\n")
				// Keep writing until the client goes away, as a stream would.
				for r.Context().Err() == nil {
					if _, err := io.WriteString(w, "data: more\n\n"); err != nil {
						<-r.Context().Done()
						return
					}
				}
			})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://sim/x", nil)
			if how == "ctx before header" {
				started := make(chan struct{})
				go func() { <-started; cancel() }()
				h2 := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					close(started)
					<-r.Context().Done()
					close(done)
				})
				if _, err := HandlerTransport(h2).RoundTrip(req); !errors.Is(err, context.Canceled) {
					t.Fatalf("err = %v, want context.Canceled", err)
				}
				<-done
				return
			}
			resp, err := HandlerTransport(h).RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(resp.Body)
			if line, err := br.ReadString('\n'); err != nil || line != "data: a\n" {
				t.Fatalf("first line %q, %v", line, err)
			}
			if how == "close body" {
				resp.Body.Close()
			} else {
				cancel()
				if _, err := io.ReadAll(br); !errors.Is(err, context.Canceled) {
					t.Errorf("read after cancel: %v, want context.Canceled", err)
				}
				resp.Body.Close()
			}
			<-done // the handler saw its context done and returned
		})
	}
}

// TestOpenAIOverHandlerTransport runs the OpenAI backend against an
// in-process handler, as the simulator is served.
func TestOpenAIOverHandlerTransport(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/chat/completions" || r.Header.Get("X-Request-Id") != "req-1" {
			http.Error(w, `{"error":{"message":"wrong request","type":"BadRequestError","code":400}}`, 400)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, `data: {"model":"sim-7b","choices":[{"index":0,"delta":{"content":"hi"}}]}`+"\n\n")
		w.(http.Flusher).Flush()
		io.WriteString(w, "data: [DONE]\n\n")
	})
	o, err := NewOpenAI(config.Deployment{Name: "sim", URL: "http://sim/v1", UpstreamModel: "sim-7b"}, HandlerTransport(h))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := o.Do(context.Background(), chatRequest(t, `{"model":"qwen3-omni-7b","stream":true}`, "qwen3-omni-7b", true))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	want := `data: {"model":"qwen3-omni-7b","choices":[{"index":0,"delta":{"content":"hi"}}]}` + "\n\ndata: [DONE]\n\n"
	if diff := cmp.Diff(want, string(b)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
