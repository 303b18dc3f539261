package enginemetrics

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/omnigate/omnigate/internal/backend"
	"github.com/omnigate/omnigate/internal/balance"
	"github.com/omnigate/omnigate/internal/clock"
	"github.com/omnigate/omnigate/internal/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// logBuffer is a log sink safe for the collector's goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

var cfg = config.EngineMetrics{Path: "/metrics", Interval: config.Duration(time.Second),
	Timeout: config.Duration(time.Second), StaleAfter: config.Duration(3 * time.Second)}

// target scrapes srv's /metrics the way the gateway does, through a
// backend.Getter.
func target(t *testing.T, srv *httptest.Server, st *balance.State, c config.EngineMetrics) Target {
	t.Helper()
	g, err := backend.NewGetter(config.Deployment{Name: "d", URL: srv.URL + "/v1"}, srv.Client().Transport, c.Path, "text/plain")
	if err != nil {
		t.Fatal(err)
	}
	return Target{Model: "m", Deployment: "d", Get: g.Get, State: st, Config: c}
}

// waitScrape waits until the collector is between scrapes: one scrape
// done and the next interval's wait set.
func waitScrape(t *testing.T, clk *clock.Fake) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); clk.Waiters() == 0; {
		if time.Now().After(end) {
			t.Fatal("no scrape finished within 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCollectorScrapes: each scrape replaces the last, stamped with the
// clock's time and the gateway's in-flight count when it was sent; a
// failing engine stores nothing, warns once, and its last scrape goes
// stale.
func TestCollectorScrapes(t *testing.T) {
	var step atomic.Int32
	var paths sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths.Store(r.URL.Path, true)
		n := step.Load()
		if n >= 3 && n < 7 {
			http.Error(w, "engine dead", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{engine=\"0\"} %d\nvllm:num_requests_waiting 0\n", n)
	}))
	defer srv.Close()
	clk := clock.NewFake(time.Unix(100, 0))
	st := new(balance.State)
	st.Acquire(0)
	logs := &logBuffer{}
	c := Start([]Target{target(t, srv, st, cfg)}, clk, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer c.Stop()

	for i := range 3 { // working: each scrape lands
		waitScrape(t, clk)
		m := st.Engine.Load()
		if m == nil || m.Running != i || !m.At.Equal(clk.Now()) || m.Local != int64(1+i) {
			t.Fatalf("scrape %d: %+v, want running %d at %v with local %d", i, m, i, clk.Now(), 1+i)
		}
		if st.Fresh(clk.Now(), cfg.StaleAfter.D()) != m {
			t.Fatalf("scrape %d is not fresh", i)
		}
		st.Acquire(0)
		step.Add(1)
		clk.Advance(time.Second)
	}
	last := st.Engine.Load()
	for i := range 4 { // failing: the last scrape stays and ages
		waitScrape(t, clk)
		if m := st.Engine.Load(); m != last {
			t.Fatalf("failed scrape %d stored %+v", i, m)
		}
		if fresh := st.Fresh(clk.Now(), cfg.StaleAfter.D()); (fresh != nil) != (i < 3) {
			t.Fatalf("failed scrape %d, %v after the last good one: fresh %v", i, clk.Now().Sub(last.At), fresh)
		}
		step.Add(1)
		clk.Advance(time.Second)
	}
	waitScrape(t, clk) // working again
	if m := st.Engine.Load(); m == nil || m.Running != 7 || st.Fresh(clk.Now(), cfg.StaleAfter.D()) != m {
		t.Fatalf("after the engine came back: %+v", m)
	}
	if w, d, i := logs.count("level=WARN"), logs.count("level=DEBUG"), logs.count("level=INFO"); w != 1 || d != 3 || i != 1 {
		t.Errorf("logged %d warnings, %d debug lines, %d infos over 4 failed scrapes and a recovery, want 1, 3, 1:\n%s", w, d, i, logs.b.String())
	}
	if _, ok := paths.Load("/metrics"); !ok {
		t.Error("the scrape did not GET the engine's root /metrics")
	}
}

// TestCollectorTimeout: an engine slower than the timeout fails the
// scrape, and the next one still runs.
func TestCollectorTimeout(t *testing.T) {
	var slow atomic.Bool
	slow.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slow.Load() {
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			return
		}
		io.WriteString(w, "sglang:num_running_reqs 2\n")
	}))
	defer srv.Close()
	clk := clock.NewFake(time.Unix(0, 0))
	st := new(balance.State)
	c2 := cfg
	c2.Timeout = config.Duration(50 * time.Millisecond)
	start := time.Now()
	c := Start([]Target{target(t, srv, st, c2)}, clk, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer c.Stop()
	waitScrape(t, clk)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("a scrape with a 50 ms timeout took %v", took)
	}
	if m := st.Engine.Load(); m != nil {
		t.Fatalf("a timed-out scrape stored %+v", m)
	}
	slow.Store(false)
	clk.Advance(time.Second)
	waitScrape(t, clk)
	if m := st.Engine.Load(); m == nil || m.Running != 2 {
		t.Fatalf("the scrape after a timeout: %+v", m)
	}
}

// TestCollectorRefuses: answers that are not engine metrics store nothing.
func TestCollectorRefuses(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"404", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }},
		{"not metrics", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html>login</html>") }},
		{"too long", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "vllm:num_requests_running 1\n")
			w.Write(bytes.Repeat([]byte("# padding\n"), MaxBody/10+1))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			clk := clock.NewFake(time.Unix(0, 0))
			st := new(balance.State)
			logs := &logBuffer{}
			c := Start([]Target{target(t, srv, st, cfg)}, clk, slog.New(slog.NewTextHandler(logs, nil)))
			defer c.Stop()
			waitScrape(t, clk)
			if m := st.Engine.Load(); m != nil {
				t.Errorf("stored %+v", m)
			}
			if logs.count("level=WARN") != 1 {
				t.Errorf("no warning: %s", logs.b.String())
			}
		})
	}
}

// TestCollectorStops: Stop ends every scrape, those in flight with them,
// and leaves no goroutine (TestMain checks).
func TestCollectorStops(t *testing.T) {
	hang := func(ctx context.Context) (io.ReadCloser, error) { <-ctx.Done(); return nil, ctx.Err() }
	long := cfg
	long.Interval, long.Timeout = config.Duration(time.Hour), config.Duration(time.Hour)
	var targets []Target
	for range 4 {
		targets = append(targets, Target{Get: hang, State: new(balance.State), Config: long})
	}
	idle := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "llamacpp:requests_processing 0\n")
	}))
	defer idle.Close()
	targets = append(targets, target(t, idle, new(balance.State), long)) // waiting out its interval
	c := Start(targets, clock.Real{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for end := time.Now().Add(10 * time.Second); targets[4].State.Engine.Load() == nil && time.Now().Before(end); {
		time.Sleep(time.Millisecond)
	}
	done := make(chan struct{})
	go func() { c.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not end the scrapes")
	}
}
