package backend

import (
	"testing"
	"time"

	"github.com/omnigate/omnigate/internal/config"
)

func TestNewTransport(t *testing.T) {
	tr := NewTransport(config.Deployment{URL: "http://h/v1", MaxIdleConns: 7, Timeouts: config.Timeouts{Connect: config.Duration(time.Second)}})
	if tr.MaxIdleConns != 7 || tr.MaxIdleConnsPerHost != 7 || !tr.DisableCompression || tr.ForceAttemptHTTP2 || tr.TLSHandshakeTimeout != time.Second {
		t.Errorf("transport not tuned: %+v", tr)
	}
	if def := NewTransport(config.Deployment{URL: "http://h/v1"}); def.MaxIdleConnsPerHost != defaultMaxIdleConns {
		t.Errorf("default pool %d", def.MaxIdleConnsPerHost)
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
