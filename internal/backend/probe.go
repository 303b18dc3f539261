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

// Getter GETs one path of a deployment's engine (its health check, its
// metrics) with the deployment's key and headers, through the
// deployment's own transport.
type Getter struct {
	rt  http.RoundTripper
	url string
	hdr http.Header
}

// NewGetter returns the getter of path for d, sending through t and
// asking for accept. A path that starts with / is at the engine's root
// (the scheme and host of d's URL: vLLM's /health and /metrics sit beside
// /v1, not under it); any other is under d's URL.
func NewGetter(d config.Deployment, t http.RoundTripper, path, accept string) (*Getter, error) {
	u, err := url.Parse(d.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("deployment %q: url %q is not an absolute http(s) URL", d.Name, d.URL)
	}
	hdr, err := deploymentHeader(d)
	if err != nil {
		return nil, err
	}
	hdr.Set("Accept", accept)
	target := strings.TrimRight(d.URL, "/") + "/" + path
	if strings.HasPrefix(path, "/") { // at the engine's root
		target = u.Scheme + "://" + u.Host + path
	}
	return &Getter{rt: t, url: target, hdr: hdr}, nil
}

// URL is what Get requests.
func (g *Getter) URL() string { return g.url }

// Get returns the body of the engine's 2xx answer, which the caller
// closes; any other status is an error.
func (g *Getter) Get(ctx context.Context) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header = g.hdr.Clone()
	resp, err := g.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s answered HTTP %d", req.URL.Path, resp.StatusCode)
	}
	return resp.Body, nil
}

// Prober asks a deployment's engine whether it is up: one GET of its
// health check path (config.HealthCheck).
type Prober struct{ *Getter }

// NewProber returns the prober for d, sending through t.
func NewProber(d config.Deployment, t http.RoundTripper) (*Prober, error) {
	g, err := NewGetter(d, t, d.HealthCheck.Path, "application/json")
	if err != nil {
		return nil, err
	}
	return &Prober{g}, nil
}

// Probe returns nil when the engine answers 2xx within ctx.
func (p *Prober) Probe(ctx context.Context) error {
	body, err := p.Get(ctx)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	body.Close()
	return nil
}
