package h1

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gate holds the handlers of the first n requests until all n have
// arrived, so a burst of n opens n connections; later requests pass.
type gate struct {
	n       int64
	arrived atomic.Int64
	open    chan struct{}
}

func newGate(n int) *gate { return &gate{n: int64(n), open: make(chan struct{})} }

func (g *gate) wait(ctx context.Context) {
	switch k := g.arrived.Add(1); {
	case k == g.n:
		close(g.open)
	case k > g.n:
		return
	}
	select {
	case <-g.open:
	case <-ctx.Done():
	}
}

// burst sends n POSTs to addr at once and returns the errors.
func burst(tr *Transport, addr string, n int) []error {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := echo(tr, addr, fmt.Sprintf("r%d", i)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	var out []error
	for err := range errs {
		out = append(out, err)
	}
	return out
}

// echoUntil echoes the request body, holding the first requests at g.
func echoUntil(g *gate) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		g.wait(r.Context())
		w.Write(b)
	}
}

// TestServerClosedIdleConns is an engine that closes connections idle for
// 50 ms (as uvicorn does after 5 s): after a pause, a burst as large as the
// pool must not meet a single dead connection.
func TestServerClosedIdleConns(t *testing.T) {
	const n = 30
	var opened, closed atomic.Int64
	allClosed := make(chan struct{})
	srv := httptest.NewUnstartedServer(echoUntil(newGate(n)))
	srv.Config.IdleTimeout = 50 * time.Millisecond
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			opened.Add(1)
		case http.StateClosed:
			if closed.Add(1) == n {
				close(allClosed)
			}
		}
	}
	srv.Start()
	defer srv.Close()
	tr := newTransport(t)
	addr := srv.Listener.Addr().String()
	if errs := burst(tr, addr, n); len(errs) > 0 {
		t.Fatalf("first burst: %v", errs)
	}
	if got := tr.idleCount(addr); got != n {
		t.Fatalf("%d idle connections after the first burst, want %d", got, n)
	}
	select { // the pause: the server closes every idle connection
	case <-allClosed:
	case <-time.After(10 * time.Second):
		t.Fatal("server did not close its idle connections")
	}
	if errs := burst(tr, addr, n); len(errs) > 0 {
		t.Errorf("%d of %d requests failed after the pause, first: %v", len(errs), n, errs[0])
	}
	if got := opened.Load(); got > 2*n {
		t.Errorf("server accepted %d connections for 2 bursts of %d", got, n)
	}
}

// TestServerRestartedOnSamePort: once an engine restarted on the same port
// is up, no request fails on a connection to the old process.
func TestServerRestartedOnSamePort(t *testing.T) {
	const n = 64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	old := httptest.NewUnstartedServer(echoUntil(newGate(n)))
	old.Listener.Close()
	old.Listener = ln
	old.Start()
	tr := newTransport(t)
	if errs := burst(tr, addr, n); len(errs) > 0 {
		t.Fatalf("first burst: %v", errs)
	}
	if got := tr.idleCount(addr); got != n {
		t.Fatalf("%d idle connections, want %d", got, n)
	}
	old.Close() // the engine stops, and its connections with it
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	restarted := httptest.NewUnstartedServer(echoUntil(newGate(0)))
	restarted.Listener.Close()
	restarted.Listener = ln
	restarted.Start()
	defer restarted.Close()
	if errs := burst(tr, addr, n); len(errs) > 0 {
		t.Errorf("%d of %d requests failed after the restart, first: %v", len(errs), n, errs[0])
	}
}

// TestStaleRetryDialsFresh: a pooled connection that dies as it is used
// (the server closed it just as the request went out, so it looked alive)
// is retried on a new connection, not on the next pooled one, which may be
// as dead.
func TestStaleRetryDialsFresh(t *testing.T) {
	g := newGate(2)
	srv := newRawServer(t, func(c net.Conn, br *bufio.Reader, i int) {
		for k := 0; ; k++ {
			req, body, ok := readRequest(br)
			if !ok {
				return
			}
			if i < 2 {
				if k > 0 {
					return // closes on the second request, unanswered
				}
				g.wait(req.Context())
			}
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		}
	})
	tr := newTransport(t)
	if errs := burst(tr, srv.addr, 2); len(errs) > 0 {
		t.Fatal(errs)
	}
	if got := tr.idleCount(srv.addr); got != 2 {
		t.Fatalf("%d idle connections, want 2", got)
	}
	if errs := burst(tr, srv.addr, 1); len(errs) > 0 {
		t.Fatalf("request failed: %v", errs[0])
	}
	if n := srv.count.Load(); n != 3 {
		t.Errorf("server accepted %d connections, want 3", n)
	}
}

// TestIdleConnPastTimeoutNotReused: a connection idle for longer than
// IdleConnTimeout (the engine's keep-alive) is closed, not reused, even
// before the janitor comes round.
func TestIdleConnPastTimeoutNotReused(t *testing.T) {
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {})
	tr := &Transport{IdleConnTimeout: time.Hour}
	defer tr.CloseIdleConnections()
	get(t, tr, srv.URL)
	addr := srv.Listener.Addr().String()
	tr.mu.Lock()
	for _, c := range tr.hosts[addr].idle {
		c.idleAt = c.idleAt.Add(-2 * time.Hour)
	}
	tr.mu.Unlock()
	get(t, tr, srv.URL)
	if n := srv.conns.Load(); n != 2 {
		t.Errorf("server accepted %d connections, want 2", n)
	}
	if n := tr.idleCount(addr); n != 1 {
		t.Errorf("%d idle connections, want 1 (the expired one closed)", n)
	}
}

// TestIdleConnUsable: an idle connection is usable until the server sends
// anything on it or closes it; a read deadline left in the past by the
// last exchange does not fool the check.
func TestIdleConnUsable(t *testing.T) {
	if !canReadRaw {
		t.Skip("no raw reads on this platform")
	}
	bufs := &sync.Pool{New: func() any { b := make([]byte, 64); return &b }}
	for _, tc := range []struct {
		name  string
		peer  func(net.Conn)
		alive bool
	}{
		{"quiet", func(net.Conn) {}, true},
		{"closed", func(s net.Conn) { s.Close() }, false},
		{"unsolicited bytes", func(s net.Conn) { io.WriteString(s, "HTTP/1.1 408 Request Timeout\r\n\r\n") }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, server := tcpPair(t)
			c := newConn(client, &hostConns{}, bufs, 64)
			c.setReadDeadline(time.Now().Add(-time.Second))
			tc.peer(server)
			// What the server sends arrives a moment later: wait for it.
			deadline := time.Now().Add(5 * time.Second)
			got := c.usable(time.Now())
			for got && !tc.alive && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
				got = c.usable(time.Now())
			}
			if got != tc.alive {
				t.Errorf("usable = %v, want %v", got, tc.alive)
			}
		})
	}
}
