package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omnigate/omnigate/internal/loadtest"
)

// goStats reads the gateway's Go gauges from its /metrics, after two
// forced collections when debug (its --debug-addr) is set, so the heap
// reads as what is live.
func goStats(t *testing.T, gw *proc, debug string) loadtest.GoStats {
	t.Helper()
	for i := 0; debug != "" && i < 2; i++ {
		resp, err := http.Get("http://" + debug + "/debug/pprof/heap?gc=1")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	resp, err := http.Get(gw.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	st := loadtest.ParseGoStats(resp.Body)
	if st.Goroutines == 0 || st.HeapBytes == 0 {
		t.Fatalf("the gateway's /metrics lacks the Go runtime gauges: %+v", st)
	}
	return st
}

// dialN opens n connections to gw and writes head to each.
func dialN(t *testing.T, gw *proc, n int, head string) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range n {
		c, err := net.Dial("tcp", strings.TrimPrefix(gw.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := io.WriteString(c, head); err != nil {
			t.Fatal(err)
		}
	}
	return conns
}

// TestDeclaredLengthCostsNothing: connections that declare the largest
// body and send one byte of it cost the gateway a few KB each, not the
// declared 32 MiB: body buffers grow with the bytes that arrive.
func TestDeclaredLengthCostsNothing(t *testing.T) {
	const conns = 32
	debug := freeAddr(t)
	gw := start(t, "serve", "--addr", "127.0.0.1:0", "--debug-addr", debug)
	before := goStats(t, gw, debug)
	// What start-up still runs may end any moment (on a loaded machine,
	// later): count from the fewest goroutines seen.
	for range 5 {
		time.Sleep(50 * time.Millisecond)
		before.Goroutines = min(before.Goroutines, goStats(t, gw, "").Goroutines)
	}
	rssBefore, err := loadtest.ReadProc(gw.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	dialN(t, gw, conns, "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"+
		"Content-Length: 33554432\r\n\r\n{")

	// Each connection has its goroutine once accepted; give the handlers
	// a moment past that to start reading, and keep the largest reading.
	var after loadtest.GoStats
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		after = goStats(t, gw, "")
		if after.Goroutines >= before.Goroutines+conns || time.Now().After(end) {
			break
		}
	}
	if after.Goroutines < before.Goroutines+conns {
		t.Fatalf("%d goroutines, want %d more than %d: connections not accepted", after.Goroutines, conns, before.Goroutines)
	}
	var peak int64
	for range 5 {
		time.Sleep(20 * time.Millisecond)
		peak = max(peak, goStats(t, gw, debug).HeapBytes)
	}
	rssAfter, err := loadtest.ReadProc(gw.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	grew, rss := peak-before.HeapBytes, rssAfter.RSS-rssBefore.RSS
	t.Logf("%d connections declaring 32 MiB: heap +%d KB, RSS +%d KB", conns, grew>>10, rss>>10)
	if grew > 8<<20 {
		t.Errorf("heap grew %d MB for %d connections that sent one byte each", grew>>20, conns)
	}
}

// TestSlowBodiesAreCut: bodies trickling in one byte at a time are
// answered 408 once server.read_timeout has passed, and their connections
// closed, all of them at about the same time.
func TestSlowBodiesAreCut(t *testing.T) {
	const (
		conns   = 100
		timeout = 500 * time.Millisecond
	)
	cfg := writeConfig(t, `
server: {addr: "127.0.0.1:0", read_timeout: 500ms}
models:
  - name: m
    deployments: [{name: s, kind: sim, profile: instant}]
`)
	gw := start(t, "serve", "--config", cfg)
	body := `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	start := time.Now()
	cs := dialN(t, gw, conns, fmt.Sprintf("POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"+
		"Content-Length: %d\r\n\r\n", len(body)))
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() {
			stop := make(chan struct{})
			defer close(stop)
			go func() { // one byte every 100 ms: the whole body would take 5.6 s
				for i := range len(body) {
					select {
					case <-stop:
						return
					case <-time.After(100 * time.Millisecond):
					}
					if _, err := c.Write([]byte{body[i]}); err != nil {
						return
					}
				}
			}()
			c.SetReadDeadline(time.Now().Add(timeout + 3*time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Errorf("no answer to a slow body: %v", err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(b), `"code":"request_timeout"`) {
				t.Errorf("slow body: %d %s, want 408 request_timeout", resp.StatusCode, b)
			}
			if _, err := io.ReadAll(c); err != nil && os.IsTimeout(err) {
				t.Error("the connection stayed open after the 408")
			}
		})
	}
	wg.Wait()
	if d := time.Since(start); d > timeout+3*time.Second {
		t.Errorf("%d slow bodies took %v to be cut, timeout %v", conns, d, timeout)
	}
	if resp, err := http.Get(gw.URL + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("after the slow bodies: %v %v", resp, err)
	}
}

// TestAcceptErrorsAreWarnings: when the gateway runs out of descriptors,
// its failing accepts are logged as warnings (not at debug level), once
// however often they are retried; it serves again once descriptors free.
func TestAcceptErrorsAreWarnings(t *testing.T) {
	const nofile = 20
	gw := startLimited(t, nofile, "serve", "--addr", "127.0.0.1:0")
	cs := dialN(t, gw, nofile, "") // more than the gateway can accept
	// A request on one more connection cannot be accepted: by the time it
	// gives up, accept has failed and been retried.
	once := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 1500 * time.Millisecond}
	if resp, err := once.Get(gw.URL + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatalf("a request was served with %d connections held and %d descriptors", nofile, nofile)
	}
	for _, c := range cs {
		c.Close()
	}
	ok := false
	for end := time.Now().Add(5 * time.Second); !ok && time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if resp, err := once.Get(gw.URL + "/healthz"); err == nil {
			resp.Body.Close()
			ok = resp.StatusCode == 200
		}
	}
	if !ok {
		t.Error("the gateway did not serve again once the connections closed")
	}
	gw.cmd.Process.Kill()
	gw.cmd.Wait() // stderr is complete
	// The HTTP listener's accept fails; the gRPC listener's may too (a
	// connection waits there when the descriptors run out): each says so
	// once.
	var nHTTP, nGRPC int
	for l := range strings.Lines(gw.stderr.String()) {
		if strings.Contains(l, "too many open files") && strings.Contains(l, "accept") {
			if !strings.Contains(l, "level=WARN") {
				t.Errorf("accept error not logged as a warning: %s", l)
			}
			if strings.Contains(l, "gRPC") {
				nGRPC++
			} else {
				nHTTP++
			}
		}
	}
	if nHTTP != 1 || nGRPC > 1 {
		t.Errorf("%d accept warnings of HTTP's listener and %d of gRPC's, want 1 and at most 1 (at most one per 10 s):\n%s", nHTTP, nGRPC, gw.stderr.String())
	}
}

// TestDebugAddrMustBeLoopback: serve refuses a --debug-addr that is not
// loopback, saying why, instead of exposing pprof on the network.
func TestDebugAddrMustBeLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0"} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, bin, "serve", "--addr", "127.0.0.1:0", "--admin-addr", "off", "--debug-addr", addr).CombinedOutput()
		cancel()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "not a loopback address") {
			t.Errorf("--debug-addr %s: %v\n%s", addr, err, out)
		}
	}
}
