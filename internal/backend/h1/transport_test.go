package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestKeepAliveReuse(t *testing.T) {
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Echo", r.Header.Get("X-Request-Id"))
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, b)
	})
	tr := newTransport(t)
	addr := strings.TrimPrefix(srv.URL, "http://")
	for i := range 5 {
		_, got := get(t, tr, srv.URL+"/a")
		if got != "GET /a " {
			t.Fatalf("RoundTrip body %q", got)
		}
		hdr, _ := AppendHeader(nil, http.Header{"Content-Type": {"application/json"}})
		resp, err := tr.Send(context.Background(), &Request{Method: "POST", Addr: addr, Host: addr, Target: "/b",
			Header: hdr, Fields: []string{"X-Request-Id", fmt.Sprint(i)}, Body: []byte("hi")})
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != "POST /b hi" || resp.Header.Get("X-Echo") != fmt.Sprint(i) {
			t.Fatalf("Send: %q %v %v", b, err, resp.Header)
		}
	}
	if n := srv.conns.Load(); n != 1 {
		t.Errorf("server accepted %d connections, want 1", n)
	}
	if n := tr.idleCount(addr); n != 1 {
		t.Errorf("%d idle connections, want 1", n)
	}
}

func TestChunkedStreamsAsItArrives(t *testing.T) {
	step := make(chan struct{})
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		for i := range 3 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			<-step // the client has read this event
		}
	})
	tr := newTransport(t)
	for range 2 {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ContentLength != -1 || !cmp.Equal(resp.TransferEncoding, []string{"chunked"}) {
			t.Errorf("length %d, encoding %v", resp.ContentLength, resp.TransferEncoding)
		}
		buf := make([]byte, 1024)
		for i := range 3 {
			// Each Read returns the event sent, without waiting for more.
			n, err := resp.Body.Read(buf)
			if want := fmt.Sprintf("data: %d\n\n", i); string(buf[:n]) != want || err != nil {
				t.Fatalf("read %d: %q, %v; want %q", i, buf[:n], err, want)
			}
			step <- struct{}{}
		}
		if rest, err := io.ReadAll(resp.Body); err != nil || len(rest) != 0 {
			t.Fatalf("rest %q, %v", rest, err)
		}
		resp.Body.Close()
	}
	if n := srv.conns.Load(); n != 1 {
		t.Errorf("server accepted %d connections, want 1 (chunked body not reused)", n)
	}
}

// scripted answers each request on a connection with the next of the
// responses, then closes the connection.
func scripted(responses ...string) func(c net.Conn, br *bufio.Reader, i int) {
	return func(c net.Conn, br *bufio.Reader, _ int) {
		for _, r := range responses {
			if _, _, ok := readRequest(br); !ok {
				return
			}
			io.WriteString(c, r)
		}
	}
}

func TestResponseFraming(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		response string
		status   int
		body     string
		length   int64
		reused   bool // a second request goes over the same connection
	}{
		{"content length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, "hello", 5, true},
		{"chunked with trailer", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n", 200, "hello", -1, true},
		{"until close", "GET", "HTTP/1.1 200 OK\r\n\r\nhello", 200, "hello", -1, false},
		{"connection close", "GET", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi", 200, "hi", 2, false},
		{"http/1.0", "GET", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi", 200, "hi", 2, false},
		{"http/1.0 keep-alive", "GET", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi", 200, "hi", 2, true},
		{"1xx skipped", "POST", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", 201, "ok", 2, true},
		{"head", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", 200, "", 99, true},
		{"204", "GET", "HTTP/1.1 204 No Content\r\n\r\n", 204, "", 0, true},
		{"304", "GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", 304, "", 0, true},
		{"empty", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 200, "", 0, true},
		{"bare LF", "GET", "HTTP/1.1 200 OK\nContent-Length: 2\n\nhi", 200, "hi", 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			serve := scripted(tt.response, tt.response)
			if !tt.reused {
				serve = scripted(tt.response) // one per connection, then close
			}
			srv := newRawServer(t, serve)
			tr := newTransport(t)
			for i := range 2 {
				req, _ := http.NewRequest(tt.method, "http://"+srv.addr+"/", strings.NewReader("x"))
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Fatalf("request %d body: %v", i, err)
				}
				got := fmt.Sprint(resp.StatusCode, " ", string(b), " ", resp.ContentLength, " close=", resp.Close)
				want := fmt.Sprint(tt.status, " ", tt.body, " ", tt.length, " close=", !tt.reused)
				if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("request %d (-want +got):\n%s", i, diff)
				}
			}
			wantConns := map[bool]int64{true: 1, false: 2}[tt.reused]
			if n := srv.count.Load(); n != wantConns {
				t.Errorf("server accepted %d connections, want %d", n, wantConns)
			}
		})
	}
}

func TestBadResponses(t *testing.T) {
	tests := []struct{ name, response string }{
		{"not http", "SSH-2.0-OpenSSH\r\n\r\n"},
		{"bad status", "HTTP/1.1 2x0 OK\r\n\r\n"},
		{"bad header", "HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n"},
		{"space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nhi"},
		{"folded", "HTTP/1.1 200 OK\r\nX-A: 1\r\n  2\r\n\r\n"},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"},
		{"conflicting lengths", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhi"},
		{"gzip coding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"},
		{"switching protocols", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"},
		{"cut head", "HTTP/1.1 200 OK\r\nContent-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRawServer(t, scripted(tt.response))
			tr := newTransport(t)
			req, _ := http.NewRequest("GET", "http://"+srv.addr+"/", nil)
			if resp, err := tr.RoundTrip(req); err == nil {
				resp.Body.Close()
				t.Fatalf("no error for %q", tt.response)
			}
		})
	}
}

func TestTruncatedBody(t *testing.T) {
	tests := []struct{ name, response string }{
		{"content length", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, tr, addr := getScripted(t, tt.response)
			defer resp.Body.Close()
			if _, err := io.ReadAll(resp.Body); !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("err = %v, want unexpected EOF", err)
			}
			if n := tr.idleCount(addr); n != 0 {
				t.Errorf("broken connection pooled")
			}
		})
	}
}

// closeOnSecond serves one request per connection with keep-alive, then
// closes the connection when the next request arrives, without answering
// it: a server whose keep-alive ended just as the request went out, so
// the connection looked alive when it was taken from the pool. It reports
// each connection closed on closed.
func closeOnSecond(closed chan<- int) func(c net.Conn, br *bufio.Reader, i int) {
	return func(c net.Conn, br *bufio.Reader, i int) {
		if _, _, ok := readRequest(br); ok {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%d", i)
			readRequest(br)
		}
		c.Close()
		closed <- i
	}
}

func TestStaleConnRetried(t *testing.T) {
	closed := make(chan int, 4)
	srv := newRawServer(t, closeOnSecond(closed))
	tr := newTransport(t)
	url := "http://" + srv.addr + "/"
	if _, body := get(t, tr, url); body != "0" {
		t.Fatalf("first body %q", body)
	}
	tests := []struct {
		name string
		send func() (*http.Response, error)
	}{
		{"RoundTrip POST", func() (*http.Response, error) {
			req, _ := http.NewRequest("POST", url, strings.NewReader(`{"a":1}`))
			return tr.RoundTrip(req)
		}},
		{"Send", func() (*http.Response, error) {
			return tr.Send(context.Background(), &Request{Method: "POST", Addr: srv.addr, Host: srv.addr, Target: "/", Body: []byte("{}")})
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := tt.send()
			if err != nil {
				t.Fatalf("stale connection not retried: %v", err)
			}
			<-closed // the connection the request met first
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := fmt.Sprint(i + 1); string(b) != want {
				t.Errorf("body %q, want %q (answer of a fresh connection)", b, want)
			}
		})
	}
	if n := srv.count.Load(); n != 3 {
		t.Errorf("server accepted %d connections, want 3", n)
	}
}

func TestStreamedBodyNotRetried(t *testing.T) {
	closed := make(chan int, 4)
	srv := newRawServer(t, closeOnSecond(closed))
	tr := newTransport(t)
	get(t, tr, "http://"+srv.addr+"/")
	// A body of unknown length is streamed: it cannot be sent twice.
	req, _ := http.NewRequest("POST", "http://"+srv.addr+"/", io.MultiReader(strings.NewReader("x")))
	if resp, err := tr.RoundTrip(req); err == nil {
		resp.Body.Close()
		t.Fatal("streamed request retried on a fresh connection")
	}
	if n := srv.count.Load(); n != 1 {
		t.Errorf("server accepted %d connections, want 1", n)
	}
}

func TestNoRetryAfterPartialResponse(t *testing.T) {
	srv := newRawServer(t, func(c net.Conn, br *bufio.Reader, i int) {
		if _, _, ok := readRequest(br); !ok {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		if _, _, ok := readRequest(br); !ok {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Le") // then close
	})
	tr := newTransport(t)
	get(t, tr, "http://"+srv.addr+"/")
	req, _ := http.NewRequest("POST", "http://"+srv.addr+"/", strings.NewReader("x"))
	if resp, err := tr.RoundTrip(req); err == nil {
		resp.Body.Close()
		t.Fatal("no error for a cut response")
	}
	if n := srv.count.Load(); n != 1 {
		t.Errorf("server accepted %d connections, want 1: retried after response bytes arrived", n)
	}
}

func TestCloseBeforeEOF(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			io.WriteString(w, big)
			return
		}
		io.WriteString(w, "small")
	})
	tr := newTransport(t)
	buf := make([]byte, 2)
	for _, path := range []string{"/small", "/small", "/big", "/small"} {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := resp.Body.Read(buf); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if _, err := resp.Body.Read(buf); !errors.Is(err, errBodyClosed) {
			t.Fatalf("read after close: %v", err)
		}
	}
	// The small rests were buffered and skipped; the big one cost its
	// connection.
	if n := srv.conns.Load(); n != 2 {
		t.Errorf("server accepted %d connections, want 2", n)
	}
}

func TestLargeBodies(t *testing.T) {
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body) // all of it first: the client writes, then reads
		w.Write(b)
	})
	tr := newTransport(t)
	payload := bytes.Repeat([]byte("0123456789abcdef"), 5<<20/16) // 5 MiB
	for _, tt := range bodySenders(tr, srv.URL, payload) {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := tt.send()
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(payload, got) || (len(got) != len(payload) && len(got) != maxBufferedBody) {
				t.Errorf("echo of %d bytes is not the payload", len(got))
			}
		})
	}
	if n := srv.conns.Load(); n != 1 {
		t.Errorf("server accepted %d connections, want 1", n)
	}
}

func TestConcurrent(t *testing.T) {
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	})
	tr := &Transport{MaxIdleConns: 3}
	defer tr.CloseIdleConnections()
	addr := strings.TrimPrefix(srv.URL, "http://")
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				if err := echo(tr, addr, fmt.Sprintf("g%d-%d", g, i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := tr.idleCount(addr); n > 3 {
		t.Errorf("%d idle connections, more than MaxIdleConns", n)
	}
}

func TestIdleConnectionsReaped(t *testing.T) {
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {})
	tr := &Transport{IdleConnTimeout: 1} // 1ns: expired as soon as it is idle
	defer tr.CloseIdleConnections()
	get(t, tr, srv.URL)
	addr := strings.TrimPrefix(srv.URL, "http://")
	tr.mu.Lock()
	armed := tr.armed || tr.idleCount0(addr) == 0 // the janitor may have run already
	tr.mu.Unlock()
	if !armed {
		t.Fatal("janitor not armed with a connection idle")
	}
	tr.reap()
	if n := tr.idleCount(addr); n != 0 {
		t.Fatalf("%d idle connections after reaping", n)
	}
	get(t, tr, srv.URL)
	if n := srv.conns.Load(); n != 2 {
		t.Errorf("server accepted %d connections, want 2", n)
	}
}

// getScripted sends a GET through a new Transport to a raw server that
// answers with response; it returns the response (its head read cleanly),
// the Transport and the server's address.
func getScripted(t *testing.T, response string) (*http.Response, *Transport, string) {
	t.Helper()
	srv := newRawServer(t, scripted(response))
	tr := newTransport(t)
	req, _ := http.NewRequest("GET", "http://"+srv.addr+"/", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp, tr, srv.addr
}

// TestEarlyAnswer: a server that answers before it has read the request
// (here a 413 for a body too large, without reading it) and then closes
// gets its answer to the caller, not our write error.
func TestEarlyAnswer(t *testing.T) {
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ok" { // the buffered body too: it is a plain 413 then
			w.Header().Set("Connection", "close")
			http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
			return
		}
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	})
	tr := newTransport(t)
	addr := strings.TrimPrefix(srv.URL, "http://")
	// Far more than the socket buffers hold, so the write is still going
	// when the server closes.
	payload := bytes.Repeat([]byte("0123456789abcdef"), 32<<20/16)
	for _, tt := range bodySenders(tr, srv.URL, payload) {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := tt.send()
			if err != nil {
				t.Fatalf("got an error, want the server's 413: %v", err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge || string(got) != "request too large\n" {
				t.Fatalf("%d %q %v, want 413 and the server's text", resp.StatusCode, got, err)
			}
			if !resp.Close {
				t.Error("resp.Close is false: the connection cannot be reused after a half-written request")
			}
		})
	}
	// The transport still works, on a new connection.
	before := srv.conns.Load()
	resp, err := tr.Send(context.Background(), &Request{Method: "POST", Addr: addr, Host: addr, Target: "/ok", Body: []byte("small")})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != "ok" || srv.conns.Load() != before+1 {
		t.Fatalf("after the early answers: %q on %d new connections, want ok on 1", got, srv.conns.Load()-before)
	}
}

// bodySenders sends payload to url by every path a request body can take:
// Send's writev, and RoundTrip with a buffered (its first maxBufferedBody
// bytes), a streamed and a chunked body.
func bodySenders(tr *Transport, url string, payload []byte) []struct {
	name string
	send func() (*http.Response, error)
} {
	addr := strings.TrimPrefix(url, "http://")
	roundTrip := func(body io.Reader) (*http.Response, error) {
		req, _ := http.NewRequest("POST", url, body)
		return tr.RoundTrip(req)
	}
	return []struct {
		name string
		send func() (*http.Response, error)
	}{
		{"Send writev", func() (*http.Response, error) {
			return tr.Send(context.Background(), &Request{Method: "POST", Addr: addr, Host: addr, Target: "/", Body: payload})
		}},
		{"RoundTrip buffered", func() (*http.Response, error) { return roundTrip(bytes.NewReader(payload[:maxBufferedBody])) }},
		{"RoundTrip streamed", func() (*http.Response, error) { return roundTrip(bytes.NewReader(payload)) }},
		{"RoundTrip chunked", func() (*http.Response, error) { return roundTrip(io.MultiReader(bytes.NewReader(payload))) }},
	}
}

func TestPeerStopped(t *testing.T) {
	bodyErr := errors.New("client upload cut")
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&net.OpError{Op: "writev", Net: "tcp", Err: os.NewSyscallError("writev", syscall.EPIPE)}, true},
		{&net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.ECONNRESET)}, true},
		{&net.OpError{Op: "readfrom", Net: "tcp", Err: &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.EPIPE)}}, true},
		{&net.OpError{Op: "readfrom", Net: "tcp", Err: bodyErr}, false}, // the request body failed, not the server
		{&net.OpError{Op: "write", Net: "tcp", Err: os.ErrDeadlineExceeded}, false},
		{bodyErr, false},
	} {
		if got := peerStopped(tc.err); got != tc.want {
			t.Errorf("peerStopped(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
