package backend

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/omnigate/omnigate/internal/backend/h1"
	"github.com/omnigate/omnigate/internal/config"
)

// NewTransport returns a transport for d's upstream: a keep-alive pool of
// d.MaxIdleConns connections, each reused while idle for at most
// d.IdleConnTimeout, the connect timeout on the dialer (and the TLS
// handshake), no compression (a gzip layer would buffer SSE) and dial
// failures marked as *DialError. Zero settings take the config defaults.
// A plain http:// upstream gets the lean *h1.Transport (no goroutines per
// connection, timeouts as socket deadlines); https, or an upstream reached
// through an HTTP proxy from the environment, gets a tuned *http.Transport.
// Deployments that share an upstream and these settings share one
// transport through Transports.
func NewTransport(d config.Deployment) http.RoundTripper {
	return newTransport(keyOf(d), nil)
}

// transportKey is everything a transport is made from: the upstream's
// scheme and host and the deployment's pool settings, with the defaults
// filled in.
type transportKey struct {
	scheme, host      string
	connect, idleConn time.Duration
	maxIdle           int
}

func keyOf(d config.Deployment) transportKey {
	k := transportKey{connect: d.Timeouts.Connect.D(), idleConn: d.IdleConnTimeout.D(), maxIdle: d.MaxIdleConns}
	if u, err := url.Parse(d.URL); err == nil {
		k.scheme, k.host = u.Scheme, u.Host
	}
	if k.connect <= 0 {
		k.connect = config.DefaultConnectTimeout
	}
	if k.idleConn <= 0 {
		k.idleConn = config.DefaultIdleConnTimeout
	}
	if k.maxIdle <= 0 {
		k.maxIdle = config.DefaultMaxIdleConns
	}
	return k
}

// newTransport makes the transport for k; tlsConf, when not nil, is the
// TLS client configuration of an *http.Transport.
func newTransport(k transportKey, tlsConf *tls.Config) http.RoundTripper {
	if k.scheme == "http" && k.host != "" {
		u := &url.URL{Scheme: k.scheme, Host: k.host}
		if p, err := http.ProxyFromEnvironment(&http.Request{URL: u}); err == nil && p == nil {
			return newH1Transport(k)
		}
	}
	return newHTTPTransport(k, tlsConf)
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

func newH1Transport(k transportKey) *h1.Transport {
	return &h1.Transport{
		DialContext:     dialUpstream(k.connect),
		MaxIdleConns:    k.maxIdle,
		IdleConnTimeout: k.idleConn,
		// Small: an open stream holds its connection's buffer for its whole
		// life (10,000 streams × 32 KiB was 320 MB); large bodies bypass it.
		ReadBufferSize: 4 << 10,
	}
}

func newHTTPTransport(k transportKey, tlsConf *tls.Config) *http.Transport {
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         dialUpstream(k.connect),
		TLSClientConfig:     tlsConf,
		MaxIdleConns:        k.maxIdle,
		MaxIdleConnsPerHost: k.maxIdle,
		IdleConnTimeout:     k.idleConn,
		TLSHandshakeTimeout: k.connect,
		ForceAttemptHTTP2:   false,
		DisableCompression:  true,
		ReadBufferSize:      32 << 10,
		WriteBufferSize:     32 << 10,
	}
}

// Transports hands out one shared transport per upstream scheme and host
// and pool settings (see NewTransport), so deployments on the same engine
// share a connection pool, and a deployment never gets a pool made for
// another scheme or with another deployment's limits. The zero value is
// ready to use.
type Transports struct {
	// tlsConfig, when set, is the TLS client configuration of the https
	// transports (tests trust their own CA with it); nil: the system roots.
	tlsConfig *tls.Config

	mu sync.Mutex
	m  map[transportKey]http.RoundTripper
}

// For returns the transport for d, making it on first use.
func (ts *Transports) For(d config.Deployment) http.RoundTripper {
	k := keyOf(d)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if t, ok := ts.m[k]; ok {
		return t
	}
	if ts.m == nil {
		ts.m = map[transportKey]http.RoundTripper{}
	}
	t := newTransport(k, ts.tlsConfig)
	ts.m[k] = t
	return t
}
