package backend

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/omnigate/omnigate/internal/config"
)

// Prober asks a deployment's engine whether it is up: one GET of its
// health check path (config.HealthCheck), with the deployment's key and
// headers, through the deployment's own transport.
type Prober struct {
	rt  http.RoundTripper
	url string
	hdr http.Header
}

// NewProber returns the prober for d, sending through t.
func NewProber(d config.Deployment, t http.RoundTripper) (*Prober, error) {
	u, err := url.Parse(d.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("deployment %q: url %q is not an absolute http(s) URL", d.Name, d.URL)
	}
	hdr, err := deploymentHeader(d)
	if err != nil {
		return nil, err
	}
	hdr.Set("Accept", "application/json")
	target := strings.TrimRight(d.URL, "/") + "/" + d.HealthCheck.Path
	if strings.HasPrefix(d.HealthCheck.Path, "/") { // at the engine's root
		target = u.Scheme + "://" + u.Host + d.HealthCheck.Path
	}
	return &Prober{rt: t, url: target, hdr: hdr}, nil
}

// URL is what Probe requests.
func (p *Prober) URL() string { return p.url }

// Probe returns nil when the engine answers 2xx within ctx.
func (p *Prober) Probe(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return err
	}
	req.Header = p.hdr.Clone()
	resp, err := p.rt.RoundTrip(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("health check answered HTTP %d", resp.StatusCode)
	}
	return nil
}
