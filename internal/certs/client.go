package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
)

// ClientFiles name what the gateway presents to an upstream and trusts
// of it.
type ClientFiles struct {
	// CA, when set, is the only trust for the upstream's certificate
	// (the system roots are not consulted); empty: the system roots.
	CA string
	// Cert and Key are the client certificate (mutual TLS); both or
	// neither.
	Cert, Key string
}

// Client is the TLS client configuration of one upstream, kept current
// with its files.
type Client struct {
	w *watch[clientFiles]
	// serverName is sent in SNI ("": the URL's host, as the transport
	// does); name is what the upstream's certificate must be for.
	serverName, name string
	hasCert          bool
	ownRoots         bool
}

type clientFiles struct {
	cert  *tls.Certificate
	roots *x509.CertPool
}

// NewClient loads f. serverName, when set, is sent in SNI and is the name
// the upstream's certificate must be for; else host is (the URL's,
// without the port).
func NewClient(f ClientFiles, serverName, host string, opt Options) (*Client, error) {
	if (f.Cert == "") != (f.Key == "") {
		return nil, errors.New("cert_file and key_file go together")
	}
	var paths []string
	if f.CA != "" {
		paths = append(paths, f.CA)
	}
	if f.Cert != "" {
		paths = append(paths, f.Cert, f.Key)
	}
	load := func() (*clientFiles, error) {
		var cf clientFiles
		var err error
		if f.CA != "" {
			if cf.roots, err = LoadPool("ca_file", f.CA); err != nil {
				return nil, err
			}
		}
		if f.Cert != "" {
			if cf.cert, err = LoadPair(f.Cert, f.Key); err != nil {
				return nil, err
			}
		}
		return &cf, nil
	}
	leaf := func(cf *clientFiles) *x509.Certificate {
		if cf.cert == nil {
			return nil
		}
		return cf.cert.Leaf
	}
	w, err := newWatch(paths, load, leaf, opt)
	if err != nil {
		return nil, err
	}
	c := &Client{w: w, serverName: serverName, name: serverName, hasCert: f.Cert != "", ownRoots: f.CA != ""}
	if c.name == "" {
		c.name = host
	}
	return c, nil
}

// Config returns the configuration to dial with.
//
// With a CA of its own, the upstream's certificate is verified against
// the CA current at each handshake: crypto/tls takes its roots from the
// Config, which a transport clones once per connection, so the check is
// VerifyConnection's, made as crypto/tls makes it (the chain the upstream
// sent, the name, the time, server authentication) and not skipped.
func (c *Client) Config() *tls.Config {
	conf := &tls.Config{ServerName: c.serverName, MinVersion: tls.VersionTLS12}
	if c.hasCert {
		conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return c.w.current().cert, nil
		}
	}
	if c.ownRoots {
		conf.InsecureSkipVerify = true // verified below, against the current CA
		conf.VerifyConnection = c.verify
	}
	return conf
}

// verify checks the upstream's certificate against the current CA, for
// the name, as crypto/tls's own verification does.
func (c *Client) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("tls: the upstream sent no certificate")
	}
	opts := x509.VerifyOptions{
		Roots:         c.w.current().roots,
		DNSName:       c.name,
		Intermediates: x509.NewCertPool(),
	}
	for _, ic := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(ic)
	}
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
	}
	return nil
}

// Check looks at the files now; see watch.Check.
func (c *Client) Check() error { return c.w.Check() }
