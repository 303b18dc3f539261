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

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// countingServer is an httptest server that counts the connections it
// accepted.
type countingServer struct {
	*httptest.Server
	conns atomic.Int64
}

func newCountingServer(t testing.TB, h http.HandlerFunc) *countingServer {
	t.Helper()
	s := &countingServer{}
	s.Server = httptest.NewUnstartedServer(h)
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// rawServer accepts connections and hands each to serve with its index
// (0 for the first). Everything is closed and waited for at cleanup.
type rawServer struct {
	ln    net.Listener
	addr  string
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
	count atomic.Int64
}

func newRawServer(t testing.TB, serve func(c net.Conn, br *bufio.Reader, i int)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln, addr: ln.Addr().String()}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			i := int(s.count.Add(1)) - 1
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				serve(c, bufio.NewReader(c), i)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// readRequest reads one request with its body; false at EOF or error.
func readRequest(br *bufio.Reader) (*http.Request, []byte, bool) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, nil, false
	}
	b, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, nil, false
	}
	return req, b, true
}

// newTransport returns a Transport whose idle connections are closed at
// cleanup.
func newTransport(t testing.TB) *Transport {
	t.Helper()
	tr := &Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// get sends a GET through tr's RoundTrip and returns the status and body.
func get(t testing.TB, tr http.RoundTripper, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return resp, string(b)
}

// idleCount reports the idle connections to addr.
func (t *Transport) idleCount(addr string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.idleCount0(addr)
}

// idleCount0 is idleCount with t.mu held.
func (t *Transport) idleCount0(addr string) int {
	if h := t.hosts[addr]; h != nil {
		return len(h.idle)
	}
	return 0
}

// echo POSTs want to addr, whose server echoes bodies, and checks the
// answer is want.
func echo(tr *Transport, addr, want string) error {
	resp, err := tr.Send(context.Background(), &Request{Method: "POST", Addr: addr, Host: addr, Target: "/", Body: []byte(want)})
	if err != nil {
		return err
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(got) != want {
		return fmt.Errorf("got %q, %v; want %q", got, err, want)
	}
	return nil
}
