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
