package backend

import (
	"bufio"
	"context"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omnigate/omnigate/internal/backend/h1"
	"github.com/omnigate/omnigate/internal/config"
)

func TestNewTransport(t *testing.T) {
	d := config.Deployment{URL: "http://h/v1", MaxIdleConns: 7, IdleConnTimeout: config.Duration(3 * time.Second),
		Timeouts: config.Timeouts{Connect: config.Duration(time.Second)}}
	lean, ok := mustTransport(t, d).(*h1.Transport)
	if !ok {
		t.Fatalf("http upstream got %T, want *h1.Transport", mustTransport(t, d))
	}
	if lean.MaxIdleConns != 7 || lean.DialContext == nil || lean.IdleConnTimeout != 3*time.Second {
		t.Errorf("h1 transport not tuned: %+v", lean)
	}
	def := mustTransport(t, config.Deployment{URL: "http://h/v1"}).(*h1.Transport)
	if def.MaxIdleConns != config.DefaultMaxIdleConns || def.IdleConnTimeout != config.DefaultIdleConnTimeout {
		t.Errorf("defaults not applied: pool %d, idle %v", def.MaxIdleConns, def.IdleConnTimeout)
	}

	d.URL = "https://h/v1"
	tr, ok := mustTransport(t, d).(*http.Transport)
	if !ok {
		t.Fatalf("https upstream got %T, want *http.Transport", mustTransport(t, d))
	}
	if tr.MaxIdleConns != 7 || tr.MaxIdleConnsPerHost != 7 || tr.IdleConnTimeout != 3*time.Second ||
		!tr.DisableCompression || tr.ForceAttemptHTTP2 || tr.TLSHandshakeTimeout != time.Second {
		t.Errorf("transport not tuned: %+v", tr)
	}
}

func TestNewTransportHonoursHTTPProxy(t *testing.T) {
	// http.ProxyFromEnvironment reads the environment once per process, so
	// this only checks the choice NewTransport makes from its answer.
	u := "http://engine.example:8000/v1"
	req, _ := http.NewRequest("GET", u, nil)
	p, err := http.ProxyFromEnvironment(req)
	_, lean := mustTransport(t, config.Deployment{URL: u}).(*h1.Transport)
	if want := err == nil && p == nil; lean != want {
		t.Errorf("proxy %v: lean transport %v, want %v", p, lean, want)
	}
}

// TestTransportsKey: deployments share a transport only when it would be
// the same transport: same scheme and host, same pool settings.
func TestTransportsKey(t *testing.T) {
	base := config.Deployment{URL: "http://engine-a:8000/v1"}
	tests := []struct {
		name  string
		other func(d *config.Deployment)
		share bool
	}{
		{"other path", func(d *config.Deployment) { d.URL = "http://engine-a:8000/other/v1" }, true},
		{"defaults written out", func(d *config.Deployment) {
			d.MaxIdleConns, d.IdleConnTimeout = config.DefaultMaxIdleConns, config.Duration(config.DefaultIdleConnTimeout)
			d.Timeouts.Connect = config.Duration(config.DefaultConnectTimeout)
		}, true},
		{"timeouts of the attempt", func(d *config.Deployment) { d.Timeouts.Total, d.Timeouts.Idle = 1, 1 }, true},
		{"other host", func(d *config.Deployment) { d.URL = "http://engine-b:8000/v1" }, false},
		{"other port", func(d *config.Deployment) { d.URL = "http://engine-a:8001/v1" }, false},
		{"https on the same host:port", func(d *config.Deployment) { d.URL = "https://engine-a:8000/v1" }, false},
		{"other max_idle_conns", func(d *config.Deployment) { d.MaxIdleConns = 8 }, false},
		{"other idle_conn_timeout", func(d *config.Deployment) { d.IdleConnTimeout = config.Duration(time.Second) }, false},
		{"other connect timeout", func(d *config.Deployment) { d.Timeouts.Connect = config.Duration(time.Second) }, false},
		{"other tls.ca_file", func(d *config.Deployment) { d.TLS.CAFile = "private-ca.pem" }, false},
		{"a client certificate", func(d *config.Deployment) { d.TLS.CertFile, d.TLS.KeyFile = "gw.crt", "gw.key" }, false},
		{"other tls.server_name", func(d *config.Deployment) { d.TLS.ServerName = "engine.internal" }, false},
		{"tls.insecure_skip_verify", func(d *config.Deployment) { d.TLS.InsecureSkipVerify = true }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ts Transports
			o := base
			tt.other(&o)
			a, b := mustFor(t, &ts, base), mustFor(t, &ts, o)
			if (a == b) != tt.share {
				t.Errorf("shared %v, want %v", a == b, tt.share)
			}
			if mustFor(t, &ts, o) != b {
				t.Error("the same deployment got a second transport")
			}
		})
	}
}

// mustFor is ts.For(d), which fails the test on an error.
func mustFor(t *testing.T, ts *Transports, d config.Deployment) http.RoundTripper {
	t.Helper()
	tr, err := ts.For(d)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestTransportsHTTPAndHTTPSOnOnePort: an https deployment works next to
// an http one on the same host:port (before, the second got the first's
// h1 transport and failed with "unsupported protocol scheme").
func TestTransportsHTTPAndHTTPSOnOnePort(t *testing.T) {
	addr, caFile := dualServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"object":"chat.completion","model":"m","scheme":"`+scheme+`"}`)
	}))
	var ts Transports
	for _, order := range [][]string{{"http", "https"}, {"https", "http"}} {
		for _, scheme := range order {
			d := config.Deployment{Name: scheme, URL: scheme + "://" + addr + "/v1"}
			if scheme == "https" {
				d.TLS.CAFile = caFile
			}
			tr := mustFor(t, &ts, d)
			t.Cleanup(tr.(interface{ CloseIdleConnections() }).CloseIdleConnections)
			o, err := NewOpenAI(d, tr)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := o.Do(context.Background(), chatRequest(t, `{"model":"m"}`, "m", false))
			if err != nil {
				t.Fatalf("%s deployment: %v", scheme, err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := `"scheme":"` + scheme + `"`; err != nil || !strings.Contains(string(b), want) {
				t.Errorf("%s deployment got %s, %v", scheme, b, err)
			}
		}
	}
}

// dualServer serves h over plain HTTP and HTTPS on one port, telling them
// apart by the first byte a client sends (a TLS handshake starts with
// 0x16). It returns the address and a PEM file of the certificate, to
// trust it with.
func dualServer(t *testing.T, h http.Handler) (addr, caFile string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	plainL, tlsL := newChanListener(ln.Addr()), newChanListener(ln.Addr())
	plain := httptest.NewUnstartedServer(h)
	plain.Listener.Close()
	plain.Listener = plainL
	plain.Start()
	secure := httptest.NewUnstartedServer(h)
	secure.Listener.Close()
	secure.Listener = tlsL
	secure.StartTLS()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				br := bufio.NewReader(c)
				first, err := br.Peek(1)
				if err != nil {
					c.Close()
					return
				}
				pc := &peekedConn{Conn: c, br: br}
				if first[0] == 0x16 {
					tlsL.put(pc)
				} else {
					plainL.put(pc)
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		plain.Close()
		secure.Close()
	})
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: secure.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return ln.Addr().String(), caFile
}

// chanListener is a net.Listener fed by put.
type chanListener struct {
	addr net.Addr
	ch   chan net.Conn
	once sync.Once
	done chan struct{}
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) put(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *chanListener) Addr() net.Addr { return l.addr }

// peekedConn is a net.Conn whose first bytes were read into br.
type peekedConn struct {
	net.Conn
	br *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.br.Read(p) }
