package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"

	"github.com/omnigate/omnigate/internal/certs"
)

// ListenerTLS is a listener's certificate: with CertFile and KeyFile (both
// or neither) the listener serves TLS; with ClientCAFile too, it requires
// client certificates signed by a CA in that file (mutual TLS). The files
// are read again when they change, without a restart.
type ListenerTLS struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
}

// On reports whether the listener serves TLS.
func (t ListenerTLS) On() bool { return t.CertFile != "" }

// Mutual reports whether the listener requires client certificates.
func (t ListenerTLS) Mutual() bool { return t.On() && t.ClientCAFile != "" }

// UpstreamTLS is how a deployment's https engine is reached: the CA its
// certificate must chain to (only that CA; empty: the system roots), the
// gateway's client certificate (mutual TLS), the name to ask for and
// check instead of the URL's host. InsecureSkipVerify checks nothing: for
// tests only.
type UpstreamTLS struct {
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// APIMetrics reports whether the API listener serves GET /metrics too:
// server.metrics_on_api when set, else only when server.addr is a
// loopback address. Beyond loopback the metrics (model and key names,
// traffic) would be public.
func (s Server) APIMetrics() bool {
	if s.MetricsOnAPI != nil {
		return *s.MetricsOnAPI
	}
	return IsLoopback(s.Addr)
}

// IsLoopback reports whether addr (host:port) is on a loopback host:
// localhost, 127.0.0.0/8 or ::1. An empty host is every interface, and
// another name is not resolved: it may resolve elsewhere tomorrow.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// listenerTLS checks the shape of a listener's tls at p.
func (v *validator) listenerTLS(p string, t ListenerTLS) {
	switch {
	case (t.CertFile == "") != (t.KeyFile == ""):
		v.add(p, "cert_file and key_file go together")
	case t.CertFile == "" && t.ClientCAFile != "":
		v.add(p+".client_ca_file", "needs cert_file and key_file: client certificates are asked for over TLS only")
	}
}

// upstreamTLS checks the shape of deployment d's tls at p (kind openai).
func (v *validator) upstreamTLS(p string, d *Deployment) {
	t := d.TLS
	if t == (UpstreamTLS{}) {
		return
	}
	if u, err := url.Parse(d.URL); err == nil && u.Scheme == "http" {
		v.add(p, "applies only to an https url")
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		v.add(p, "cert_file and key_file go together")
	}
	if t.InsecureSkipVerify && (t.CAFile != "" || t.ServerName != "") {
		v.add(p+".insecure_skip_verify", "checks nothing, so ca_file and server_name would not be used; drop one or the other")
	}
}

// FileProblems reports the certificate files the configuration names that
// do not exist or do not load. Like api_key_env variables they depend on
// the machine more than on the file: FromEnvAndFile counts them as
// problems (serve refuses to start, a reload is rejected), validate-config
// as warnings. A listener that is off is not checked, nor a pair missing
// its other half (Validate reports that).
func (c *Config) FileProblems() []Problem {
	var ps []Problem
	add := func(p string, err error) {
		if err != nil {
			ps = append(ps, Problem{Path: p, Message: err.Error()})
		}
	}
	s := c.Server
	for _, l := range []struct {
		key string
		on  bool
		tls ListenerTLS
	}{
		{"server.tls", true, s.TLS},
		{"server.admin_tls", s.AdminAddr != AdminOff, s.AdminTLS},
		{"server.grpc_tls", s.GRPCAddr != GRPCOff, s.GRPCTLS},
	} {
		t := l.tls
		if !l.on || t.CertFile == "" || t.KeyFile == "" {
			continue
		}
		_, err := certs.LoadPair(t.CertFile, t.KeyFile)
		add(l.key, err)
		if t.ClientCAFile != "" {
			_, err := certs.LoadPool("client_ca_file", t.ClientCAFile)
			add(l.key+".client_ca_file", err)
		}
	}
	for i, m := range c.Models {
		for j, d := range m.Deployments {
			if d.Kind != KindOpenAI {
				continue
			}
			p := fmt.Sprintf("models[%d].deployments[%d].tls", i, j)
			if t := d.TLS; t.CertFile != "" && t.KeyFile != "" {
				_, err := certs.LoadPair(t.CertFile, t.KeyFile)
				add(p, err)
			}
			if d.TLS.CAFile != "" {
				_, err := certs.LoadPool("ca_file", d.TLS.CAFile)
				add(p+".ca_file", err)
			}
		}
	}
	return ps
}

// InsecureWarning is what is said of a deployment with
// tls.insecure_skip_verify.
const InsecureWarning = "the engine's certificate is not verified: anyone on the path can read and change the traffic; for testing only"
