package backend

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/config"
)

// TestOpenAIStaleConnRetried: an engine that closes a kept-alive
// connection just as the next request goes out (its keep-alive ended; the
// connection looked alive when it was reused) costs no error, over either
// transport: the request is sent again on a new connection.
func TestOpenAIStaleConnRetried(t *testing.T) {
	for _, kind := range transportKinds {
		t.Run(kind.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var accepted atomic.Int64
			var wg sync.WaitGroup
			t.Cleanup(func() { ln.Close(); wg.Wait() }) // after the client's idle connections are closed
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					first := accepted.Add(1) == 1
					wg.Add(1)
					go func() {
						defer wg.Done()
						defer c.Close()
						br := bufio.NewReader(c)
						for k := 0; ; k++ {
							req, err := http.ReadRequest(br)
							if err != nil {
								return
							}
							io.Copy(io.Discard, req.Body)
							if first && k == 1 {
								return // closes on the second request, unanswered
							}
							body := `{"object":"chat.completion","model":"m"}`
							fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
						}
					}()
				}
			}()
			d := config.Deployment{URL: "http://" + ln.Addr().String() + "/v1"}
			o := newBackendOn(t, d, kind.make(d))
			for i := range 3 {
				resp, err := o.Do(context.Background(), chatRequest(t, `{"model":"m"}`, "m", false))
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			if n := accepted.Load(); n != 2 {
				t.Errorf("server accepted %d connections, want 2", n)
			}
		})
	}
}

// TestOpenAITraceContext: a request's trace context goes upstream as the
// W3C traceparent and tracestate headers, over either transport, and
// neither header is sent when it has no value.
func TestOpenAITraceContext(t *testing.T) {
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	type headers struct{ Parent, State []string }
	got := make(chan headers, 1)
	srv := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		got <- headers{r.Header["Traceparent"], r.Header["Tracestate"]}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"object":"chat.completion","model":"m"}`)
	})
	tests := []struct {
		name          string
		parent, state string
		want          headers
	}{
		{"none", "", "", headers{}},
		{"traceparent", parent, "", headers{Parent: []string{parent}}},
		{"both", parent, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", headers{[]string{parent}, []string{"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"}}},
	}
	for _, kind := range transportKinds {
		for _, tt := range tests {
			t.Run(kind.name+"/"+tt.name, func(t *testing.T) {
				d := config.Deployment{URL: srv.URL + "/v1"}
				o := newBackendOn(t, d, kind.make(d))
				r := chatRequest(t, `{"model":"m"}`, "m", false)
				if tt.parent != "" {
					r.Trace = &TraceContext{Parent: tt.parent, State: tt.state}
				}
				resp, err := o.Do(context.Background(), r)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if diff := cmp.Diff(tt.want, <-got); diff != "" {
					t.Errorf("upstream saw (-want +got):\n%s", diff)
				}
			})
		}
	}
}
