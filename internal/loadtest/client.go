package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	pb "github.com/omnigate/omnigate/proto/omnigate/v1"
)

// newClient returns the load generator's HTTP/1.1 client: keep-alive, enough
// idle connections for every worker, no compression, no proxy from the
// environment, no overall timeout (each request carries a context).
func newClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: max(conns, 64),
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
		WriteBufferSize:     8 << 10,
		ReadBufferSize:      16 << 10,
	}}
}

// recorder accumulates the outcome of one phase; safe for concurrent use.
type recorder struct {
	sent, ok, errs, dropped, chunks, bytes atomic.Int64
	lat, ttfb                              *Samples
	errOnce                                sync.Once
	firstErr                               string
}

func newRecorder(capacity int) *recorder {
	return &recorder{lat: NewSamples(capacity), ttfb: NewSamples(capacity)}
}

func (r *recorder) fail(err error) {
	r.errs.Add(1)
	r.errOnce.Do(func() { r.firstErr = err.Error() })
}

// call is one request of a phase.
type call struct {
	client *http.Client
	url    string
	body   []byte
	stream bool
	// auth, when set, is the Authorization header sent.
	auth []string
	// opened, if set, is called once the first stream chunk arrives; the
	// stream is then held (read and discarded) until ctx ends, which counts
	// as success.
	opened func()
	// grpc, when set, sends greq over gRPC instead (the grpc target).
	grpc *grpcClients
	greq *pb.ChatCompletionRequest
}

var dataPrefix = []byte("data:")

// do sends one request whose intended send time was due and records latency
// from due (not from the actual send) to the end of the body, and for
// streams the time to the first SSE data line and the number of chunks.
func (c *call) do(ctx context.Context, due time.Time, rec *recorder) {
	if c.grpc != nil {
		c.doGRPC(ctx, due, rec)
		return
	}
	rec.sent.Add(1)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(c.body))
	if err != nil {
		rec.fail(err)
		return
	}
	req.Header["Content-Type"] = []string{"application/json"}
	if c.auth != nil {
		req.Header["Authorization"] = c.auth
	}
	if c.stream {
		req.Header["Accept"] = []string{"text/event-stream"}
	}
	resp, err := c.client.Do(req)
	if err != nil {
		rec.fail(err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		rec.fail(fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(msg)))
		return
	}
	if !c.stream {
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil {
			rec.fail(err)
			return
		}
		rec.lat.Add(time.Since(due))
		rec.bytes.Add(n)
		rec.ok.Add(1)
		return
	}
	br := bufio.NewReaderSize(resp.Body, 4<<10)
	var chunks, n int64
	for {
		line, err := br.ReadSlice('\n')
		n += int64(len(line))
		if bytes.HasPrefix(line, dataPrefix) && !bytes.Contains(line, []byte("[DONE]")) {
			if chunks == 0 {
				rec.ttfb.Add(time.Since(due))
				if c.opened != nil {
					c.opened()
				}
			}
			chunks++
			rec.chunks.Add(1)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			if c.opened != nil && chunks > 0 && ctx.Err() != nil {
				break // a held stream released by the harness
			}
			rec.fail(err)
			return
		}
	}
	if chunks == 0 {
		rec.fail(errors.New("stream ended without a data chunk"))
		return
	}
	rec.lat.Add(time.Since(due))
	rec.bytes.Add(n)
	rec.ok.Add(1)
}
