package h1

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

// BenchmarkRoundTrip compares h1 with net/http's Transport against the same
// server, for a small JSON request and answer as the gateway sends them.
func BenchmarkRoundTrip(b *testing.B) {
	answer := `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}]}`
	srv := newCountingServer(b, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, answer)
	})
	body := `{"model":"m","messages":[{"role":"user","content":"hello"}]}`
	addr := strings.TrimPrefix(srv.URL, "http://")
	hdr, _ := AppendHeader(nil, http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json"}})
	buf := make([]byte, 4096)
	drain := func(b *testing.B, resp *http.Response, err error) {
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
	roundTrip := func(rt http.RoundTripper) func(b *testing.B) {
		return func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req, _ := http.NewRequestWithContext(context.Background(), "POST", srv.URL+"/v1/chat/completions", strings.NewReader(body))
				req.Header = http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json"}}
				resp, err := rt.RoundTrip(req)
				drain(b, resp, err)
			}
		}
	}
	ht := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	defer ht.CloseIdleConnections()
	h := &Transport{}
	defer h.CloseIdleConnections()
	b.Run("net-http", roundTrip(ht))
	b.Run("h1", roundTrip(h))
	b.Run("h1-send", func(b *testing.B) {
		ctx, cancel := context.WithCancel(context.Background()) // a cancellable context, as a server request's
		defer cancel()
		b.ReportAllocs()
		for b.Loop() {
			resp, err := h.Send(ctx, &Request{Method: "POST", Addr: addr, Host: addr, Target: "/v1/chat/completions",
				Header: hdr, Fields: []string{"X-Request-Id", "r1"}, Body: []byte(body)})
			drain(b, resp, err)
		}
	})
}
