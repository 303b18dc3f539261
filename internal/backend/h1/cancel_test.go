package h1

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// hang reads one request, reports it on got, optionally writes prefix,
// then waits until the client closes the connection, reporting on gone.
func hang(prefix string, got, gone chan<- struct{}) func(c net.Conn, br *bufio.Reader, i int) {
	return func(c net.Conn, br *bufio.Reader, _ int) {
		if _, _, ok := readRequest(br); !ok {
			return
		}
		io.WriteString(c, prefix)
		close(got)
		io.Copy(io.Discard, br) // returns when the client closes
		close(gone)
	}
}

func TestCancelBeforeResponse(t *testing.T) {
	got, gone := make(chan struct{}), make(chan struct{})
	srv := newRawServer(t, hang("", got, gone))
	tr := newTransport(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("client went away")
	go func() {
		<-got
		cancel(cause)
	}()
	_, err := tr.Send(ctx, &Request{Method: "POST", Addr: srv.addr, Host: srv.addr, Target: "/", Body: []byte("{}")})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, cause) {
		t.Errorf("err = %v, want context.Canceled with the cause", err)
	}
	<-gone // the server saw the connection closed
}

func TestCancelMidBody(t *testing.T) {
	got, gone := make(chan struct{}), make(chan struct{})
	srv := newRawServer(t, hang("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nevent\n\r\n", got, gone))
	tr := newTransport(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+srv.addr+"/", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 64)
	if n, err := resp.Body.Read(buf); string(buf[:n]) != "event\n" || err != nil {
		t.Fatalf("first read %q, %v", buf[:n], err)
	}
	<-got
	cancel()
	if _, err := io.ReadAll(resp.Body); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	<-gone
	if n := tr.idleCount(srv.addr); n != 0 {
		t.Error("cancelled connection pooled")
	}
}

func TestCancelledBeforeSend(t *testing.T) {
	srv := newRawServer(t, scripted())
	tr := newTransport(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tr.Send(ctx, &Request{Method: "GET", Addr: srv.addr, Host: srv.addr, Target: "/"}); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
	if n := srv.count.Load(); n != 0 {
		t.Errorf("dialled %d connections for a cancelled request", n)
	}
}

func TestTimeouts(t *testing.T) {
	const limit = 30 * time.Millisecond
	tests := []struct {
		name   string
		prefix string // sent before the server hangs
		req    Request
		phase  Phase
	}{
		{"head", "", Request{HeadTimeout: limit}, PhaseHead},
		{"deadline before head", "", Request{Deadline: time.Now().Add(limit), HeadTimeout: time.Hour}, PhaseDeadline},
		{"idle", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", Request{HeadTimeout: time.Hour, IdleTimeout: limit}, PhaseIdle},
		{"deadline in body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", Request{Deadline: time.Now().Add(limit), IdleTimeout: time.Hour}, PhaseDeadline},
		{"deadline in body, no idle", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", Request{Deadline: time.Now().Add(limit)}, PhaseDeadline},
		// A head alone (an SSE stream's headers) is no first byte.
		{"head, then no body", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", Request{HeadTimeout: limit, IdleTimeout: time.Hour}, PhaseHead},
		{"head, then no body, no idle", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", Request{HeadTimeout: limit}, PhaseHead},
		{"idle after the first byte", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", Request{HeadTimeout: limit, IdleTimeout: 3 * limit}, PhaseIdle},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, gone := make(chan struct{}), make(chan struct{})
			srv := newRawServer(t, hang(tt.prefix, got, gone))
			tr := newTransport(t)
			r := tt.req
			r.Method, r.Addr, r.Host, r.Target = "GET", srv.addr, srv.addr, "/"
			if !r.Deadline.IsZero() {
				r.Deadline = time.Now().Add(limit)
			}
			resp, err := tr.Send(context.Background(), &r)
			if err == nil {
				defer resp.Body.Close()
				_, err = io.ReadAll(resp.Body)
			}
			var te *TimeoutError
			if !errors.As(err, &te) || te.Phase != tt.phase {
				t.Fatalf("err = %v, want a TimeoutError of %v", err, tt.phase)
			}
			<-gone // the connection was closed
		})
	}
}

func TestDialErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dialErr := errors.New("marked")
	tr := &Transport{DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
		_, err := (&net.Dialer{}).DialContext(ctx, network, a)
		return nil, errors.Join(dialErr, err)
	}}
	if _, err := tr.Send(context.Background(), &Request{Method: "GET", Addr: addr, Host: addr, Target: "/"}); !errors.Is(err, dialErr) {
		t.Errorf("err = %v, want the dialer's error", err)
	}
}

func TestInvalidRequests(t *testing.T) {
	tr := newTransport(t)
	tests := []struct {
		name string
		req  Request
	}{
		{"header injection", Request{Method: "GET", Addr: "127.0.0.1:1", Host: "h", Target: "/", Fields: []string{"X-Id", "a\r\nEvil: 1"}}},
		{"bad field name", Request{Method: "GET", Addr: "127.0.0.1:1", Host: "h", Target: "/", Fields: []string{"X Id", "a"}}},
		{"odd fields", Request{Method: "GET", Addr: "127.0.0.1:1", Host: "h", Target: "/", Fields: []string{"X-Id"}}},
		{"space in target", Request{Method: "GET", Addr: "127.0.0.1:1", Host: "h", Target: "/a b"}},
		{"host injection", Request{Method: "GET", Addr: "127.0.0.1:1", Host: "h\r\n", Target: "/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tr.Send(context.Background(), &tt.req); err == nil || !strings.HasPrefix(err.Error(), "h1: ") {
				t.Errorf("err = %v, want a validation error", err)
			}
		})
	}
	if _, err := AppendHeader(nil, http.Header{"X-A": {"1\n2"}}); err == nil {
		t.Error("AppendHeader took a value with a newline")
	}
	req, _ := http.NewRequest("GET", "https://example.com/", nil)
	if _, err := tr.RoundTrip(req); err == nil {
		t.Error("RoundTrip took an https URL")
	}
}
