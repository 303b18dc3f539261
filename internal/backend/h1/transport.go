// Package h1 is a lean HTTP/1.1 client for plain http:// upstreams. It keeps
// a bounded keep-alive pool per host and runs no goroutine per connection:
// the request is written and the response read on the caller's goroutine,
// which saves net/http's reader/writer goroutine hand-offs and per-request
// contexts on the gateway's hot path.
//
// It implements http.RoundTripper, and Send takes a request in raw parts
// (a pre-rendered header, the body bytes, time limits applied as connection
// deadlines) for callers that want no per-request *http.Request at all.
package h1

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Defaults for Transport fields left at zero.
const (
	DefaultMaxIdleConns    = 256
	DefaultIdleConnTimeout = 90 * time.Second
	DefaultDialTimeout     = 30 * time.Second
	DefaultReadBufferSize  = 4 << 10
)

const (
	// maxHeadBytes bounds a response head (status line and header).
	maxHeadBytes = 1 << 20
	// maxBufferedBody is the largest request body that RoundTrip reads into
	// memory, so it goes out in one write and can be replayed on a fresh
	// connection; larger bodies are streamed and not retried.
	maxBufferedBody = 1 << 20
	// inlineBody is the largest body copied behind the head for one write
	// call; larger ones go out with writev.
	inlineBody = 16 << 10
)

// Transport is an HTTP/1.1 client for http:// URLs. The zero value is ready
// to use; fields must not change once it is in use. It is safe for
// concurrent use.
type Transport struct {
	// DialContext makes connections; nil: a net.Dialer with DialTimeout.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// DialTimeout bounds the default dialer; zero: DefaultDialTimeout.
	DialTimeout time.Duration
	// MaxIdleConns bounds the idle connections kept per host; zero:
	// DefaultMaxIdleConns, negative: no keep-alive.
	MaxIdleConns int
	// IdleConnTimeout is how long an idle connection is kept and may be
	// reused; zero: DefaultIdleConnTimeout. Set it below the server's
	// keep-alive timeout, after which the server closes the connection and
	// a request sent on it as it does fails.
	IdleConnTimeout time.Duration
	// ReadBufferSize is the size of each connection's read buffer; zero:
	// DefaultReadBufferSize. A connection holds its buffer only while it
	// has bytes to read (see reader).
	ReadBufferSize int

	initOnce sync.Once
	dial     func(ctx context.Context, network, addr string) (net.Conn, error)
	bufSize  int
	bufs     sync.Pool // *[]byte of bufSize: the connections' read buffers

	mu      sync.Mutex
	hosts   map[string]*hostConns
	janitor *time.Timer // reaps idle connections past IdleConnTimeout
	armed   bool        // janitor is scheduled
}

// hostConns is the idle pool of one address: a stack, most recent on top,
// so the connections that stay idle longest sink to the bottom and expire.
type hostConns struct {
	addr string
	idle []*conn
}

func (t *Transport) init() {
	t.initOnce.Do(func() {
		t.dial = t.DialContext
		if t.dial == nil {
			d := &net.Dialer{Timeout: t.DialTimeout, KeepAlive: 30 * time.Second}
			if d.Timeout <= 0 {
				d.Timeout = DefaultDialTimeout
			}
			t.dial = d.DialContext
		}
		t.bufSize = t.ReadBufferSize
		if t.bufSize <= 0 {
			t.bufSize = DefaultReadBufferSize
		}
		size := t.bufSize
		t.bufs.New = func() any {
			b := make([]byte, size)
			return &b
		}
	})
}

func (t *Transport) maxIdle() int {
	if t.MaxIdleConns == 0 {
		return DefaultMaxIdleConns
	}
	return t.MaxIdleConns
}

func (t *Transport) idleTimeout() time.Duration {
	if t.IdleConnTimeout <= 0 {
		return DefaultIdleConnTimeout
	}
	return t.IdleConnTimeout
}

// host returns the pool of addr, making it on first use.
func (t *Transport) host(addr string) *hostConns {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.hosts[addr]
	if h == nil {
		if t.hosts == nil {
			t.hosts = map[string]*hostConns{}
		}
		h = &hostConns{addr: addr}
		t.hosts[addr] = h
	}
	return h
}

// getConn returns an idle connection of h that can still carry a request,
// or dials one. An idle connection is dropped when it has been idle for
// IdleConnTimeout (the server's keep-alive may have ended it without a
// word) or when the server closed it, reset it or sent something while it
// was idle. deadline, when set, bounds the dial and phase names the limit
// it stands for.
func (t *Transport) getConn(ctx context.Context, h *hostConns, deadline time.Time, phase Phase) (*conn, error) {
	for {
		now := time.Now()
		t.mu.Lock()
		n := len(h.idle)
		if n == 0 {
			t.mu.Unlock()
			return t.dialConn(ctx, h, deadline, phase)
		}
		c := h.idle[n-1]
		if now.Sub(c.idleAt) >= t.idleTimeout() {
			// The most recent is past its time, and the others are older.
			dead := slices.Clone(h.idle)
			clear(h.idle)
			h.idle = h.idle[:0]
			t.mu.Unlock()
			for _, d := range dead {
				d.close()
			}
			continue
		}
		h.idle[n-1] = nil
		h.idle = h.idle[:n-1]
		t.mu.Unlock()
		if now.Sub(c.idleAt) >= probeAfter && !c.usable(now) {
			c.close()
			continue
		}
		c.reused = true
		return c, nil
	}
}

// probeAfter is how long a connection must have been idle before getConn
// asks the socket whether the server closed it. Under load connections come
// back within microseconds, when a close is all but impossible and the
// read would be a system call per request; a connection that does turn
// out closed is retried on a new one (see roundTrip).
const probeAfter = 20 * time.Millisecond

func (t *Transport) dialConn(ctx context.Context, h *hostConns, deadline time.Time, phase Phase) (*conn, error) {
	t.init()
	dctx := ctx
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		dctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	nc, err := t.dial(dctx, "tcp", h.addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctxErr(ctx, err)
		}
		if dctx.Err() != nil {
			return nil, &TimeoutError{Phase: phase, Err: err}
		}
		return nil, err
	}
	return newConn(nc, h, &t.bufs, t.bufSize), nil
}

// put returns a connection whose exchange ended cleanly to the idle pool,
// or closes it when the pool is full.
func (t *Transport) put(c *conn) {
	c.idleAt = time.Now()
	c.reused = false
	t.mu.Lock()
	h := c.host
	if len(h.idle) >= t.maxIdle() || t.hosts[h.addr] != h {
		t.mu.Unlock()
		c.close()
		return
	}
	h.idle = append(h.idle, c)
	if !t.armed {
		t.armed = true
		if t.janitor == nil {
			t.janitor = time.AfterFunc(t.idleTimeout(), t.reap)
		} else {
			t.janitor.Reset(t.idleTimeout())
		}
	}
	t.mu.Unlock()
}

// reap closes the connections idle for IdleConnTimeout and schedules
// itself again while any stay idle.
func (t *Transport) reap() {
	timeout := t.idleTimeout()
	now := time.Now()
	var dead []*conn
	next := time.Duration(-1)
	t.mu.Lock()
	for _, h := range t.hosts {
		k := 0
		for k < len(h.idle) && now.Sub(h.idle[k].idleAt) >= timeout {
			k++
		}
		if k > 0 {
			dead = append(dead, h.idle[:k]...)
			n := copy(h.idle, h.idle[k:])
			clear(h.idle[n:])
			h.idle = h.idle[:n]
		}
		if len(h.idle) > 0 {
			if d := timeout - now.Sub(h.idle[0].idleAt); next < 0 || d < next {
				next = d
			}
		}
	}
	t.armed = next >= 0
	if t.armed {
		t.janitor.Reset(max(next, time.Millisecond))
	}
	t.mu.Unlock()
	for _, c := range dead {
		c.close()
	}
}

// CloseIdleConnections closes the connections now idle in the pool.
// Connections in use are not touched.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	var dead []*conn
	for _, h := range t.hosts {
		dead = append(dead, h.idle...)
		clear(h.idle)
		h.idle = h.idle[:0]
	}
	t.mu.Unlock()
	for _, c := range dead {
		c.close()
	}
}

// do runs one exchange. A request that fails on a reused connection
// before any byte of the response arrived (the server most likely closed
// it as the request went out) is sent once more, when its body can be, on
// a new connection: the next pooled one may have died the same way.
func (t *Transport) do(ctx context.Context, x *exchange) (*http.Response, error) {
	if ctx.Err() != nil {
		if x.stream != nil {
			x.stream.Close()
		}
		return nil, ctxErr(ctx, nil)
	}
	headDeadline, headPhase := x.deadline, PhaseDeadline
	if x.headTimeout > 0 {
		if d := time.Now().Add(x.headTimeout); headDeadline.IsZero() || d.Before(headDeadline) {
			headDeadline, headPhase = d, PhaseHead
		}
	}
	h := t.host(x.addr)
	c, err := t.getConn(ctx, h, headDeadline, headPhase)
	if err != nil {
		if x.stream != nil {
			x.stream.Close()
		}
		return nil, err
	}
	resp, err := c.roundTrip(ctx, t, x, headDeadline, headPhase)
	if err == nil {
		return resp, nil
	}
	var se *staleError // declared here: it escapes, and costs an allocation
	if !errors.As(err, &se) {
		return nil, err
	}
	if !x.replayable {
		return nil, se.err
	}
	if c, err = t.dialConn(ctx, h, headDeadline, headPhase); err != nil {
		return nil, err
	}
	return c.roundTrip(ctx, t, x, headDeadline, headPhase) // a new connection: never stale
}

// Send sends r and returns the response; see Request. Cancelling ctx aborts
// the exchange at once, also while the caller reads the body; the response
// body must be closed, and must not be closed concurrently with a Read.
func (t *Transport) Send(ctx context.Context, r *Request) (*http.Response, error) {
	x, buf, err := rawExchange(r)
	if err != nil {
		return nil, err
	}
	defer putBuf(buf)
	return t.do(ctx, x)
}

// RoundTrip implements http.RoundTripper for http:// URLs. Request bodies
// of known length up to 1 MiB are buffered (one write, replayable on a
// stale connection); others are streamed.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	x, buf, err := requestExchange(req)
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	defer putBuf(buf)
	resp, err := t.do(req.Context(), x)
	if err != nil {
		return nil, err
	}
	resp.Request = req
	return resp, nil
}

var _ http.RoundTripper = (*Transport)(nil)
