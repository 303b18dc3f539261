package backend

import (
	"net/http"
	"testing"
	"time"

	"github.com/omnigate/omnigate/internal/backend/h1"
	"github.com/omnigate/omnigate/internal/config"
)

func TestNewTransport(t *testing.T) {
	d := config.Deployment{URL: "http://h/v1", MaxIdleConns: 7, Timeouts: config.Timeouts{Connect: config.Duration(time.Second)}}
	lean, ok := NewTransport(d).(*h1.Transport)
	if !ok {
		t.Fatalf("http upstream got %T, want *h1.Transport", NewTransport(d))
	}
	if lean.MaxIdleConns != 7 || lean.DialContext == nil || lean.IdleConnTimeout != idleConnTimeout {
		t.Errorf("h1 transport not tuned: %+v", lean)
	}
	if def := NewTransport(config.Deployment{URL: "http://h/v1"}).(*h1.Transport); def.MaxIdleConns != defaultMaxIdleConns {
		t.Errorf("default pool %d", def.MaxIdleConns)
	}

	d.URL = "https://h/v1"
	tr, ok := NewTransport(d).(*http.Transport)
	if !ok {
		t.Fatalf("https upstream got %T, want *http.Transport", NewTransport(d))
	}
	if tr.MaxIdleConns != 7 || tr.MaxIdleConnsPerHost != 7 || !tr.DisableCompression || tr.ForceAttemptHTTP2 || tr.TLSHandshakeTimeout != time.Second {
		t.Errorf("transport not tuned: %+v", tr)
	}
}

func TestNewTransportHonoursHTTPProxy(t *testing.T) {
	// http.ProxyFromEnvironment reads the environment once per process, so
	// this only checks the choice NewTransport makes from its answer.
	u := "http://engine.example:8000/v1"
	req, _ := http.NewRequest("GET", u, nil)
	p, err := http.ProxyFromEnvironment(req)
	_, lean := NewTransport(config.Deployment{URL: u}).(*h1.Transport)
	if want := err == nil && p == nil; lean != want {
		t.Errorf("proxy %v: lean transport %v, want %v", p, lean, want)
	}
}

func TestTransportsSharePerHost(t *testing.T) {
	var ts Transports
	a := ts.For(config.Deployment{URL: "http://engine-a:8000/v1"})
	b := ts.For(config.Deployment{URL: "http://engine-a:8000/other/v1"})
	c := ts.For(config.Deployment{URL: "http://engine-b:8000/v1"})
	d := ts.For(config.Deployment{URL: "https://engine-a:8000/v1"})
	if a != b {
		t.Error("same host got two transports")
	}
	if a == c || a == d {
		t.Error("different host or scheme shared a transport")
	}
	ts.CloseIdle()
}
