package loadtest

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCompletionBodySize(t *testing.T) {
	for _, size := range []int{10240, 1000, 300} {
		b := completionBody(size)
		if len(b) != size {
			t.Errorf("completionBody(%d) is %d bytes", size, len(b))
		}
		var v struct {
			Choices []struct{ Message struct{ Content string } }
		}
		if err := json.Unmarshal(b, &v); err != nil || len(v.Choices) != 1 {
			t.Errorf("completionBody(%d) is not a chat.completion: %v", size, err)
		}
	}
	if b := completionBody(1); !json.Valid(b) {
		t.Error("a too-small size must still give valid JSON")
	}
}

func TestIsStream(t *testing.T) {
	tests := map[string]bool{
		`{"stream":true}`:                  true,
		`{"model":"m", "stream" : true }`:  true,
		`{"stream":false}`:                 false,
		`{"model":"m"}`:                    false,
		`{"stream_options":{},"x":"true"}`: false,
	}
	for in, want := range tests {
		if got := isStream([]byte(in)); got != want {
			t.Errorf("isStream(%s) = %v, want %v", in, got, want)
		}
	}
}

// The fixed upstream, through the bare proxy, measured by the harness's own
// request code: counts, chunks and TTFB come out as the upstream was told.
func TestUpstreamThroughProxy(t *testing.T) {
	up := httptest.NewServer(NewUpstream(UpstreamConfig{Payload: 2048, Chunks: 5}))
	defer up.Close()
	u, _ := url.Parse(up.URL)
	px := httptest.NewServer(NewProxy(u))
	defer px.Close()
	client := newClient(4)
	defer client.CloseIdleConnections()
	for _, base := range []string{up.URL, px.URL} {
		rec := newRecorder(100)
		c := &call{client: client, url: base + "/v1/chat/completions", body: bodySmall}
		c.do(context.Background(), time.Now(), rec)
		if rec.ok.Load() != 1 || rec.bytes.Load() != 2048 {
			t.Errorf("%s non-stream: ok %d bytes %d err %q", base, rec.ok.Load(), rec.bytes.Load(), rec.firstErr)
		}
		rec = newRecorder(100)
		c = &call{client: client, url: base + "/v1/chat/completions", body: bodyStream, stream: true}
		c.do(context.Background(), time.Now(), rec)
		if rec.ok.Load() != 1 || rec.chunks.Load() != 6 || rec.ttfb.Summarize().Count != 1 {
			t.Errorf("%s stream: ok %d chunks %d (want 5 + final) err %q", base, rec.ok.Load(), rec.chunks.Load(), rec.firstErr)
		}
		rec = newRecorder(100)
		c = &call{client: client, url: base + "/v1/nope", body: bodySmall}
		c.do(context.Background(), time.Now(), rec)
		if rec.errs.Load() != 1 || !strings.Contains(rec.firstErr, "status 404") {
			t.Errorf("%s 404: errs %d first %q", base, rec.errs.Load(), rec.firstErr)
		}
	}
}

// A held stream released by the harness counts as success, not as an error.
func TestHeldStreamRelease(t *testing.T) {
	up := httptest.NewServer(NewUpstream(UpstreamConfig{Chunks: 1000, ChunkInterval: time.Hour}))
	defer up.Close()
	client := newClient(4)
	defer client.CloseIdleConnections()
	ctx, release := context.WithCancel(context.Background())
	rec := newRecorder(10)
	opened := make(chan struct{})
	c := &call{client: client, url: up.URL + "/v1/chat/completions", body: bodyIdle, stream: true, opened: func() { close(opened) }}
	done := make(chan struct{})
	go func() { c.do(ctx, time.Now(), rec); close(done) }()
	<-opened
	release()
	<-done
	if rec.ok.Load() != 1 || rec.errs.Load() != 0 {
		t.Errorf("ok %d errs %d (%q)", rec.ok.Load(), rec.errs.Load(), rec.firstErr)
	}
}

func TestParseGoStats(t *testing.T) {
	text := "# HELP go_goroutines Number of goroutines.\n# TYPE go_goroutines gauge\ngo_goroutines 42\ngo_threads 9\n" +
		"go_memstats_stack_inuse_bytes 1.048576e+07\ngo_memstats_heap_inuse_bytes 2097152\ngo_memstats_heap_inuse_bytesx 1\n"
	want := GoStats{Goroutines: 42, StackBytes: 10 << 20, HeapBytes: 2 << 20}
	if got := ParseGoStats(strings.NewReader(text)); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if got := ParseGoStats(strings.NewReader("go_threads 9\n")); got != (GoStats{}) {
		t.Errorf("found gauges where there are none: %+v", got)
	}
}

func TestParseOptions(t *testing.T) {
	o, err := ParseOptions([]string{"--mode", "small,stream", "--rate", "500", "--pin", "--server-cpus", "0-1", "--client-cpus", "1", "--quiet"}, new(strings.Builder))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"small", "stream"}, o.Modes); d != "" {
		t.Error(d)
	}
	if d := cmp.Diff([]int{0, 1}, o.ServerCPUs); d != "" {
		t.Error(d)
	}
	if o.Rate != 500 || o.Concurrency != 0 || !o.Pin || o.Progress != nil {
		t.Errorf("options %+v", o)
	}
	for _, bad := range [][]string{{"--server-cpus", "2-1"}, {"extra"}, {"--nope"}} {
		if _, err := ParseOptions(bad, new(strings.Builder)); err == nil {
			t.Errorf("ParseOptions(%q): want an error", bad)
		}
	}
}

func TestOptionsDefaults(t *testing.T) {
	tests := []struct {
		name    string
		in      Options
		wantErr string
	}{
		{"unknown mode", Options{Modes: []string{"fast"}}, "unknown mode"},
		{"unknown target", Options{Targets: []string{"nginx"}}, "unknown target"},
		{"remote upstream", Options{Upstream: "http://10.0.0.5:8000/v1"}, "only loopback"},
		{"loopback upstream", Options{Upstream: "http://127.0.0.1:8000/v1"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.in.defaults()
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("defaults() = %v, want %q", err, tt.wantErr)
			}
		})
	}
	var o Options
	if err := o.defaults(); err != nil {
		t.Fatal(err)
	}
	if o.Rate != 1000 || o.Concurrency != 50 || o.Duration != 10*time.Second || len(o.Modes) != 4 || o.ServerCPUs != nil {
		t.Errorf("defaults %+v", o)
	}
}
