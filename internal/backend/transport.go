package backend

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/omnigate/omnigate/internal/config"
)

// Transport defaults for fields the config leaves at zero.
const (
	defaultMaxIdleConns   = 256
	defaultConnectTimeout = 2 * time.Second
	idleConnTimeout       = 90 * time.Second
)

// NewTransport returns an HTTP/1.1 transport tuned for one upstream host:
// a keep-alive pool of d.MaxIdleConns, the connect timeout on the dialer,
// no compression (a gzip layer would buffer SSE) and dial failures marked as
// *DialError. Share one per host (see Transports).
func NewTransport(d config.Deployment) *http.Transport {
	connect := d.Timeouts.Connect.D()
	if connect <= 0 {
		connect = defaultConnectTimeout
	}
	idle := d.MaxIdleConns
	if idle <= 0 {
		idle = defaultMaxIdleConns
	}
	dialer := &net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, &DialError{Err: err}
			}
			return c, nil
		},
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
	m  map[string]*http.Transport
}

// For returns the transport for d's host, making it from d on first use.
func (ts *Transports) For(d config.Deployment) *http.Transport {
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
		ts.m = map[string]*http.Transport{}
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
		t.CloseIdleConnections()
	}
}
