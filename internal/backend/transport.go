package backend

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/omnigate/omnigate/internal/backend/h1"
	"github.com/omnigate/omnigate/internal/config"
)

// Transport defaults for fields the config leaves at zero.
const (
	defaultMaxIdleConns   = 256
	defaultConnectTimeout = 2 * time.Second
	idleConnTimeout       = 90 * time.Second
)

// NewTransport returns a transport tuned for one upstream host: a keep-alive
// pool of d.MaxIdleConns, the connect timeout on the dialer, no compression
// (a gzip layer would buffer SSE) and dial failures marked as *DialError.
// A plain http:// upstream gets the lean *h1.Transport (no goroutines per
// connection, timeouts as socket deadlines); https, or an upstream reached
// through an HTTP proxy from the environment, gets a tuned *http.Transport.
// Share one per host (see Transports).
func NewTransport(d config.Deployment) http.RoundTripper {
	if u, err := url.Parse(d.URL); err == nil && u.Scheme == "http" && u.Host != "" {
		if p, err := http.ProxyFromEnvironment(&http.Request{URL: u}); err == nil && p == nil {
			return newH1Transport(d)
		}
	}
	return newHTTPTransport(d)
}

func transportLimits(d config.Deployment) (connect time.Duration, idle int) {
	connect = d.Timeouts.Connect.D()
	if connect <= 0 {
		connect = defaultConnectTimeout
	}
	idle = d.MaxIdleConns
	if idle <= 0 {
		idle = defaultMaxIdleConns
	}
	return connect, idle
}

// dialUpstream dials with the connect timeout and marks failures as
// *DialError.
func dialUpstream(connect time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	dialer := &net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, &DialError{Err: err}
		}
		return c, nil
	}
}

func newH1Transport(d config.Deployment) *h1.Transport {
	connect, idle := transportLimits(d)
	return &h1.Transport{
		DialContext:     dialUpstream(connect),
		MaxIdleConns:    idle,
		IdleConnTimeout: idleConnTimeout,
		// Small: an open stream holds its connection's buffer for its whole
		// life (10,000 streams × 32 KiB was 320 MB); large bodies bypass it.
		ReadBufferSize: 4 << 10,
	}
}

func newHTTPTransport(d config.Deployment) *http.Transport {
	connect, idle := transportLimits(d)
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         dialUpstream(connect),
		MaxIdleConns:        idle,
		MaxIdleConnsPerHost: idle,
		IdleConnTimeout:     idleConnTimeout,
		TLSHandshakeTimeout: connect,
		ForceAttemptHTTP2:   false,
		DisableCompression:  true,
		ReadBufferSize:      32 << 10,
		WriteBufferSize:     32 << 10,
	}
}

// Transports hands out one shared transport per upstream scheme and host, so
// deployments on the same engine share a connection pool. The zero value is
// ready to use.
type Transports struct {
	mu sync.Mutex
	m  map[string]http.RoundTripper
}

// For returns the transport for d's host, making it from d on first use.
func (ts *Transports) For(d config.Deployment) http.RoundTripper {
	key := d.URL
	if u, err := url.Parse(d.URL); err == nil {
		key = u.Scheme + "://" + u.Host
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if t, ok := ts.m[key]; ok {
		return t
	}
	if ts.m == nil {
		ts.m = map[string]http.RoundTripper{}
	}
	t := NewTransport(d)
	ts.m[key] = t
	return t
}

// CloseIdle closes the idle connections of every transport handed out.
func (ts *Transports) CloseIdle() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, t := range ts.m {
		if c, ok := t.(interface{ CloseIdleConnections() }); ok {
			c.CloseIdleConnections()
		}
	}
}
