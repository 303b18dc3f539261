package loadtest

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// UpstreamConfig configures the fixed-payload upstream helper: an
// OpenAI-shaped endpoint that does no work, so what the harness measures is
// the cost of the hop in front of it.
type UpstreamConfig struct {
	Addr          string
	Payload       int           // non-streaming response body size in bytes
	Chunks        int           // SSE chunks per streaming response
	ChunkInterval time.Duration // pause before each chunk after the first
}

// UpstreamMain runs `omnigate bench upstream [--addr A] [--payload N]
// [--chunks N] [--chunk-interval D]` until ctx ends.
func UpstreamMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench upstream", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c UpstreamConfig
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:0", "listen address")
	fs.IntVar(&c.Payload, "payload", 256, "non-streaming response size in bytes")
	fs.IntVar(&c.Chunks, "chunks", 20, "chunks per streaming response")
	fs.DurationVar(&c.ChunkInterval, "chunk-interval", 0, "pause between streaming chunks")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return serve(ctx, "omnigate bench upstream", c.Addr, NewUpstream(c), stdout)
}

// NewUpstream returns the fixed-payload upstream handler.
func NewUpstream(c UpstreamConfig) http.Handler {
	body := completionBody(c.Payload)
	bodyLen := strconv.Itoa(len(body))
	chunk := []byte(`data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"bench-model","choices":[{"index":0,"delta":{"content":"tok "},"finish_reason":null}]}` + "\n\n")
	last := []byte(`data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"bench-model","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\ndata: [DONE]\n\n")
	models := []byte(`{"object":"list","data":[{"id":"bench-model","object":"model","created":1700000000,"owned_by":"omnigate-bench"}]}`)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(models)
	})
	completion := func(w http.ResponseWriter, r *http.Request) {
		req, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		if !isStream(req) {
			h := w.Header()
			h["Content-Type"] = []string{"application/json"}
			h["Content-Length"] = []string{bodyLen}
			_, _ = w.Write(body)
			return
		}
		h := w.Header()
		h["Content-Type"] = []string{"text/event-stream"}
		h["Cache-Control"] = []string{"no-cache"}
		fl, _ := w.(http.Flusher)
		var tick *time.Ticker
		if c.ChunkInterval > 0 {
			tick = time.NewTicker(c.ChunkInterval)
			defer tick.Stop()
		}
		for i := range c.Chunks {
			if i > 0 && tick != nil {
				select {
				case <-tick.C:
				case <-r.Context().Done():
					return
				}
			}
			if _, err := w.Write(chunk); err != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
		}
		_, _ = w.Write(last)
	}
	mux.HandleFunc("POST /v1/chat/completions", completion)
	mux.HandleFunc("POST /chat/completions", completion)
	return mux
}

// isStream reports whether a request body asks for "stream": true.
func isStream(body []byte) bool {
	i := bytes.Index(body, []byte(`"stream"`))
	if i < 0 {
		return false
	}
	rest := bytes.TrimLeft(body[i+len(`"stream"`):], " \t\r\n:")
	return bytes.HasPrefix(rest, []byte("true"))
}

// completionBody builds a chat.completion whose JSON is exactly size bytes
// (or the smallest valid one when size is smaller than that).
func completionBody(size int) []byte {
	const head = `{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"bench-model","choices":[{"index":0,"message":{"role":"assistant","content":"`
	const tail = `"},"finish_reason":"stop"}],"usage":{"prompt_tokens":8,"completion_tokens":16,"total_tokens":24}}`
	n := max(size-len(head)-len(tail), 2)
	filler := strings.Repeat("lorem ipsum dolor sit amet ", n/27+1)[:n]
	return []byte(head + filler + tail)
}

// ProxyMain runs `omnigate bench proxy --upstream URL [--addr A]`: a bare
// httputil reverse proxy with a tuned transport, the baseline every gateway
// is compared with.
func ProxyMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	upstream := fs.String("upstream", "", "upstream origin, e.g. http://127.0.0.1:9000")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(*upstream)
	if err != nil || u.Host == "" {
		return fmt.Errorf("bench proxy: --upstream must be an absolute URL, got %q", *upstream)
	}
	return serve(ctx, "omnigate bench proxy", *addr, NewProxy(u), stdout)
}

// NewProxy returns httputil.NewSingleHostReverseProxy to target with a
// keep-alive transport sized for load tests and immediate flushing for SSE.
func NewProxy(target *url.URL) http.Handler {
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: 4096,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	rp.FlushInterval = -1
	rp.ErrorLog = log.New(io.Discard, "", 0)
	return rp
}

// serve listens on addr, prints "NAME: serving on http://ADDR" once
// listening, and serves until ctx ends.
func serve(ctx context.Context, name, addr string, h http.Handler, stdout io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	fmt.Fprintf(stdout, "%s: serving on http://%s\n", name, ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
		}
		if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}
