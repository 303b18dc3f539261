package h1

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// writeTo copies resp.Body with its WriteTo.
func writeTo(t *testing.T, resp *http.Response, w io.Writer) (int64, error) {
	t.Helper()
	wt, ok := resp.Body.(io.WriterTo)
	if !ok {
		t.Fatalf("body %T has no WriteTo", resp.Body)
	}
	return wt.WriteTo(w)
}

// pieces records each Write it gets.
type pieces struct {
	got []string
	ch  chan string // when set, each piece is also sent here
	err error       // when set, every Write fails with it
}

func (p *pieces) Write(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	p.got = append(p.got, string(b))
	if p.ch != nil {
		p.ch <- string(b)
	}
	return len(b), nil
}

func TestWriteToFraming(t *testing.T) {
	tests := []struct {
		name, response, body string
		reused               bool
	}{
		{"content length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "hello", true},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;ext=1\r\n!\r\nA \r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n", "hello!0123456789", true},
		{"until close", "HTTP/1.1 200 OK\r\n\r\nhello", "hello", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			serve := scripted(tt.response, tt.response)
			if !tt.reused {
				serve = scripted(tt.response)
			}
			srv := newRawServer(t, serve)
			tr := newTransport(t)
			for i := range 2 {
				req, _ := http.NewRequest("GET", "http://"+srv.addr+"/", nil)
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				var p pieces
				n, err := writeTo(t, resp, &p)
				if err != nil || n != int64(len(tt.body)) {
					t.Fatalf("request %d: WriteTo = %d, %v", i, n, err)
				}
				if diff := cmp.Diff(tt.body, strings.Join(p.got, "")); diff != "" {
					t.Fatalf("request %d body (-want +got):\n%s", i, diff)
				}
				if n, err := resp.Body.Read(make([]byte, 1)); n != 0 || err != io.EOF {
					t.Fatalf("Read after WriteTo: %d, %v", n, err)
				}
				resp.Body.Close()
			}
			want := map[bool]int64{true: 1, false: 2}[tt.reused]
			if n := srv.count.Load(); n != want {
				t.Errorf("server accepted %d connections, want %d", n, want)
			}
		})
	}
}

func TestWriteToStreamsAsItArrives(t *testing.T) {
	for _, chunked := range []bool{true, false} {
		t.Run(fmt.Sprint("chunked=", chunked), func(t *testing.T) {
			step := make(chan struct{})
			const event = "data: %d\n\n"
			srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
				if !chunked {
					w.Header().Set("Content-Length", fmt.Sprint(3*len(fmt.Sprintf(event, 0))))
				}
				for i := range 3 {
					fmt.Fprintf(w, event, i)
					w.(http.Flusher).Flush()
					<-step // the client has got this event
				}
			})
			tr := newTransport(t)
			for range 2 {
				req, _ := http.NewRequest("GET", srv.URL, nil)
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				p := &pieces{ch: make(chan string)}
				done := make(chan error, 1)
				go func() {
					_, err := writeTo(t, resp, p)
					close(p.ch)
					done <- err
				}()
				for i := range 3 {
					// Each event is written before the server sends the next.
					if got, want := <-p.ch, fmt.Sprintf(event, i); got != want {
						t.Fatalf("piece %d: %q, want %q", i, got, want)
					}
					step <- struct{}{}
				}
				for extra := range p.ch {
					t.Errorf("extra piece %q", extra)
				}
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
			}
			if n := srv.conns.Load(); n != 1 {
				t.Errorf("server accepted %d connections, want 1", n)
			}
		})
	}
}

func TestWriteToReadErrors(t *testing.T) {
	tests := []struct{ name, response string }{
		{"content length cut", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"},
		{"chunked cut", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"},
		{"chunked cut in data", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nhello"},
		{"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"},
		{"no CRLF after chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, tr, addr := getScripted(t, tt.response)
			defer resp.Body.Close()
			_, err := writeTo(t, resp, &pieces{})
			var we *WriteError
			if err == nil || errors.As(err, &we) {
				t.Errorf("err = %v, want a read error", err)
			}
			if n := tr.idleCount(addr); n != 0 {
				t.Errorf("broken connection pooled")
			}
		})
	}
}

func TestWriteToWriterError(t *testing.T) {
	resp1 := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
	srv := newRawServer(t, scripted(resp1, resp1))
	tr := newTransport(t)
	boom := errors.New("client gone")
	req, _ := http.NewRequest("GET", "http://"+srv.addr+"/", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	n, err := writeTo(t, resp, &pieces{err: boom})
	var we *WriteError
	if n != 0 || !errors.As(err, &we) || !errors.Is(err, boom) {
		t.Fatalf("WriteTo = %d, %v; want a *WriteError wrapping %v", n, err, boom)
	}
	resp.Body.Close()
	// The connection was closed mid-body: the next request needs another.
	_, body := get(t, tr, "http://"+srv.addr+"/")
	if body != "hello" || srv.count.Load() != 2 {
		t.Errorf("body %q over %d connections, want hello over 2", body, srv.count.Load())
	}
}
