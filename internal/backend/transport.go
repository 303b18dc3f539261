package backend

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/omnigate/omnigate/internal/backend/h1"
	"github.com/omnigate/omnigate/internal/certs"
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
// transport through Transports. d.TLS sets the https client's trust and
// certificate (see tlsClient); the error is its files'.
func NewTransport(d config.Deployment) (http.RoundTripper, error) {
	return newTransport(keyOf(d), certs.Options{})
}

// transportKey is everything a transport is made from: the upstream's
// scheme and host, the deployment's pool and TLS settings, with the
// defaults filled in.
type transportKey struct {
	scheme, host      string
	connect, idleConn time.Duration
	maxIdle           int
	tls               config.UpstreamTLS
}

func keyOf(d config.Deployment) transportKey {
	k := transportKey{connect: d.Timeouts.Connect.D(), idleConn: d.IdleConnTimeout.D(), maxIdle: d.MaxIdleConns, tls: d.TLS}
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

// newTransport makes the transport for k; opt is what its certificate
// files report to.
func newTransport(k transportKey, opt certs.Options) (http.RoundTripper, error) {
	if k.scheme == "http" && k.host != "" {
		u := &url.URL{Scheme: k.scheme, Host: k.host}
		if p, err := http.ProxyFromEnvironment(&http.Request{URL: u}); err == nil && p == nil {
			return newH1Transport(k), nil
		}
	}
	tlsConf, err := tlsClient(k, opt)
	if err != nil {
		return nil, err
	}
	return newHTTPTransport(k, tlsConf), nil
}

// tlsClient is the TLS client configuration of k's upstream: nil (the
// system roots, no client certificate) for a deployment without tls
// settings. A ca_file is the only trust, and it and the client
// certificate are read again when their files change (internal/certs).
func tlsClient(k transportKey, opt certs.Options) (*tls.Config, error) {
	t := k.tls
	switch {
	case k.scheme != "https" || t == (config.UpstreamTLS{}):
		return nil, nil
	case t.InsecureSkipVerify:
		return &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, nil
	}
	host := k.host
	if h, _, err := net.SplitHostPort(k.host); err == nil {
		host = h
	}
	c, err := certs.NewClient(certs.ClientFiles{CA: t.CAFile, Cert: t.CertFile, Key: t.KeyFile}, t.ServerName, host, opt)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return c.Config(), nil
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

// Transports hands out one shared transport per upstream scheme and host,
// pool and TLS settings (see NewTransport), so deployments on the same
// engine share a connection pool, and a deployment never gets a pool made
// for another scheme, with another deployment's limits, or trusting or
// presenting another deployment's certificates. The zero value is ready
// to use.
type Transports struct {
	// Log and Reloaded are told of the certificate files of the
	// deployments' tls settings that change (certs.Options); set them
	// before the first For.
	Log      *slog.Logger
	Reloaded func(err error)

	mu sync.Mutex
	m  map[transportKey]http.RoundTripper
}

// For returns the transport for d, making it on first use. The error is
// that of d's certificate files.
func (ts *Transports) For(d config.Deployment) (http.RoundTripper, error) {
	k := keyOf(d)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if t, ok := ts.m[k]; ok {
		return t, nil
	}
	t, err := newTransport(k, certs.Options{Name: "deployments.tls", Log: ts.Log, Reloaded: ts.Reloaded})
	if err != nil {
		return nil, err
	}
	if ts.m == nil {
		ts.m = map[transportKey]http.RoundTripper{}
	}
	ts.m[k] = t
	return t, nil
}
