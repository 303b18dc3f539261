package app

import (
	"crypto/tls"
	"fmt"

	"github.com/omnigate/omnigate/internal/certs"
	"github.com/omnigate/omnigate/internal/config"
)

// The listeners' ALPN protocols: the HTTP ones offer HTTP/2 beside
// HTTP/1.1 (net/http serves both over TLS), gRPC needs HTTP/2.
var (
	httpProtos = []string{"h2", "http/1.1"}
	grpcProtos = []string{"h2"}
)

// listenerTLS returns the TLS configuration of the listener whose config
// key is key, kept current with its files (internal/certs); nil when the
// listener serves plaintext.
func (g *Gateway) listenerTLS(key string, t config.ListenerTLS, protos []string) (*tls.Config, error) {
	if !t.On() {
		return nil, nil
	}
	g.metrics.TLSFiles(key)
	s, err := certs.NewServer(certs.ServerFiles{Cert: t.CertFile, Key: t.KeyFile, ClientCA: t.ClientCAFile}, protos,
		certs.Options{Name: key, Log: g.log, Reloaded: func(err error) { g.metrics.TLSReloaded(key, err) }})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return s.Config(), nil
}

// tlsMark is what serve prints after a listener's address: " (mTLS)" when
// it requires client certificates, " (TLS)" when it serves TLS, else
// nothing.
func tlsMark(t config.ListenerTLS) string {
	switch {
	case t.Mutual():
		return " (mTLS)"
	case t.On():
		return " (TLS)"
	}
	return ""
}

// scheme is the URL scheme of a listener.
func scheme(t config.ListenerTLS) string {
	if t.On() {
		return "https"
	}
	return "http"
}
