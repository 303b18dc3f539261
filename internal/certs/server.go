package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
)

// LoadPair reads a PEM certificate (its chain may follow it) and its
// private key, and checks that they belong together.
func LoadPair(certFile, keyFile string) (*tls.Certificate, error) {
	cb, err := readFile("cert_file", certFile)
	if err != nil {
		return nil, err
	}
	kb, err := readFile("key_file", keyFile)
	if err != nil {
		return nil, err
	}
	c, err := tls.X509KeyPair(cb, kb)
	if err != nil {
		return nil, fmt.Errorf("cert_file %s and key_file %s: %w", certFile, keyFile, err)
	}
	return &c, nil
}

// LoadPool reads a PEM file of CA certificates; what names the key it
// came from, for the error.
func LoadPool(what, path string) (*x509.CertPool, error) {
	b, err := readFile(what, path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s %s holds no PEM certificate", what, path)
	}
	return pool, nil
}

// ServerFiles name a listener's PEM files.
type ServerFiles struct {
	Cert, Key string
	// ClientCA, when set, makes client certificates required, verified
	// against the CAs in this file (mutual TLS).
	ClientCA string
}

// Server is a listener's TLS configuration, kept current with its files.
type Server struct {
	w      *watch[tls.Config]
	protos []string
}

// NewServer loads f; protos are the ALPN protocols the listener offers
// (h2 and http/1.1 for HTTP, h2 for gRPC).
func NewServer(f ServerFiles, protos []string, opt Options) (*Server, error) {
	if f.Cert == "" || f.Key == "" {
		return nil, errors.New("cert_file and key_file are both required")
	}
	s := &Server{protos: slices.Clone(protos)}
	paths := []string{f.Cert, f.Key}
	if f.ClientCA != "" {
		paths = append(paths, f.ClientCA)
	}
	load := func() (*tls.Config, error) { return s.load(f) }
	leaf := func(c *tls.Config) *x509.Certificate { return c.Certificates[0].Leaf }
	w, err := newWatch(paths, load, leaf, opt)
	if err != nil {
		return nil, err
	}
	s.w = w
	return s, nil
}

// load builds the configuration each handshake gets until the files
// change: built once per load, so a handshake allocates nothing for it.
func (s *Server) load(f ServerFiles) (*tls.Config, error) {
	cert, err := LoadPair(f.Cert, f.Key)
	if err != nil {
		return nil, err
	}
	c := &tls.Config{Certificates: []tls.Certificate{*cert}, NextProtos: s.protos, MinVersion: tls.VersionTLS12}
	if f.ClientCA != "" {
		pool, err := LoadPool("client_ca_file", f.ClientCA)
		if err != nil {
			return nil, err
		}
		c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return c, nil
}

// Config returns the configuration to serve with: each handshake gets the
// files' current certificate and client CAs. Session tickets stay valid
// across reloads (their keys are this Config's), and a resumed session
// with a client certificate is checked against the current CAs.
func (s *Server) Config() *tls.Config {
	return &tls.Config{
		NextProtos: s.protos,
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.w.current(), nil
		},
	}
}

// Certificate returns the certificate in use now (for logs and tests).
func (s *Server) Certificate() *tls.Certificate {
	return &s.w.current().Certificates[0]
}

// Check looks at the files now; see watch.Check.
func (s *Server) Check() error { return s.w.Check() }
