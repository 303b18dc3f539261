package certs

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omnigate/omnigate/internal/certs/certstest"
)

// fakeClock is a clock that moves when told to.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// results records what Reloaded was called with.
type results struct {
	mu   sync.Mutex
	errs []error
}

func (r *results) add(err error) { r.mu.Lock(); r.errs = append(r.errs, err); r.mu.Unlock() }
func (r *results) get() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...)
}

// TestServerReload: a changed pair is taken at the first handshake at
// least CheckEvery after the last look, not before; files that do not
// load leave the previous pair in use, are reported once, and the next
// change is tried again.
func TestServerReload(t *testing.T) {
	dir := t.TempDir()
	ca := certstest.NewCA(t, dir, "ca")
	first, certFile, keyFile := ca.IssueFiles(t, dir, "first")
	clk := &fakeClock{now: time.Unix(1_000_000, 0)}
	var got results
	var logs bytes.Buffer
	s, err := NewServer(ServerFiles{Cert: certFile, Key: keyFile}, []string{"h2", "http/1.1"},
		Options{Name: "server.tls", Now: clk.Now, Reloaded: got.add, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	serial := func() string { t.Helper(); return s.Certificate().Leaf.SerialNumber.String() }
	mtime := time.Now()
	replace := func(write func()) {
		t.Helper()
		write()
		mtime = mtime.Add(time.Minute)
		certstest.Touch(t, mtime, certFile, keyFile)
	}
	if serial() != first.Cert.SerialNumber.String() {
		t.Fatal("not the first certificate")
	}

	second := ca.Issue(t, "second-certificate")
	replace(func() { second.Write(t, certFile, keyFile) })
	if serial() != first.Cert.SerialNumber.String() {
		t.Error("files looked at again before CheckEvery passed")
	}
	clk.add(CheckEvery)
	if serial() != second.Cert.SerialNumber.String() {
		t.Fatal("the changed files were not loaded")
	}

	replace(func() { os.WriteFile(keyFile, []byte("not a key"), 0o600) })
	for range 3 {
		clk.add(CheckEvery)
		if serial() != second.Cert.SerialNumber.String() {
			t.Fatal("a broken key replaced the pair in use")
		}
	}
	third := ca.Issue(t, "third")
	replace(func() { third.Write(t, certFile, keyFile) })
	clk.add(CheckEvery)
	if serial() != third.Cert.SerialNumber.String() {
		t.Fatal("the files fixed were not loaded")
	}
	errs := got.get()
	if len(errs) != 3 || errs[0] != nil || errs[1] == nil || errs[2] != nil {
		t.Fatalf("Reloaded got %v, want nil, an error, nil", errs)
	}
	if n := strings.Count(logs.String(), "do not load"); n != 1 {
		t.Errorf("broken files logged %d times, want once:\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "certificate reloaded"); n != 2 {
		t.Errorf("%d reloads logged, want 2:\n%s", n, logs.String())
	}

	os.Remove(certFile) // being replaced
	if err := s.Check(); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("a missing file: %v", err)
	}
	if serial() != third.Cert.SerialNumber.String() {
		t.Error("a missing file replaced the pair in use")
	}
}

func TestNewServerErrors(t *testing.T) {
	dir := t.TempDir()
	ca := certstest.NewCA(t, dir, "ca")
	_, certFile, keyFile := ca.IssueFiles(t, dir, "a")
	_, _, otherKey := ca.IssueFiles(t, dir, "b")
	tests := []struct {
		name string
		f    ServerFiles
		want string
	}{
		{"no key", ServerFiles{Cert: certFile}, "both required"},
		{"missing cert", ServerFiles{Cert: filepath.Join(dir, "nope.crt"), Key: keyFile}, "cert_file " + filepath.Join(dir, "nope.crt") + " does not exist"},
		{"another key", ServerFiles{Cert: certFile, Key: otherKey}, "private key does not match public key"},
		{"key as CA", ServerFiles{Cert: certFile, Key: keyFile, ClientCA: keyFile}, "client_ca_file " + keyFile + " holds no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewServer(tt.f, nil, Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// handshake connects client to a listener served with server and says
// what each side saw. The server writes a byte once its handshake is done,
// which the client reads: a client certificate refused after a TLS 1.3
// client's handshake returned is seen there.
func handshake(t *testing.T, server, client *tls.Config) (tls.ConnectionState, *tls.ConnectionState, error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv := make(chan *tls.ConnectionState, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srv <- nil
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if tc.Handshake() != nil {
			srv <- nil
			return
		}
		st := tc.ConnectionState()
		tc.Write([]byte("x"))
		srv <- &st
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), client)
	if err != nil {
		<-srv
		return tls.ConnectionState{}, nil, err
	}
	defer c.Close()
	_, err = io.ReadFull(c, make([]byte, 1))
	return c.ConnectionState(), <-srv, err
}

// TestServerHandshakes: handshakes get the pair in use and the ALPN
// protocols; with a client CA, a client certificate of that CA is
// required, and a changed CA file is what the next handshake checks
// against.
func TestServerHandshakes(t *testing.T) {
	dir := t.TempDir()
	ca := certstest.NewCA(t, dir, "ca")
	clients := certstest.NewCA(t, dir, "clients")
	others := certstest.NewCA(t, dir, "others")
	first, certFile, keyFile := ca.IssueFiles(t, dir, "server")
	caFile := filepath.Join(dir, "client-ca.pem")
	copyFile(t, clients.File, caFile)
	s, err := NewServer(ServerFiles{Cert: certFile, Key: keyFile, ClientCA: caFile}, []string{"h2", "http/1.1"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ours, theirs := clients.Issue(t, "client"), others.Issue(t, "intruder")
	dial := func(l *certstest.Leaf) *tls.Config {
		c := &tls.Config{RootCAs: ca.Pool(), NextProtos: []string{"h2"}}
		if l != nil {
			c.Certificates = []tls.Certificate{l.TLS(t)}
		}
		return c
	}

	st, peer, err := handshake(t, s.Config(), dial(&ours))
	if err != nil {
		t.Fatal(err)
	}
	if !st.PeerCertificates[0].Equal(first.Cert) || st.NegotiatedProtocol != "h2" {
		t.Errorf("served %s with ALPN %q", st.PeerCertificates[0].Subject, st.NegotiatedProtocol)
	}
	if peer == nil || len(peer.PeerCertificates) == 0 || !peer.PeerCertificates[0].Equal(ours.Cert) {
		t.Errorf("the server did not see the client's certificate: %+v", peer)
	}
	for name, c := range map[string]*tls.Config{"no certificate": dial(nil), "another CA's": dial(&theirs)} {
		if _, peer, err := handshake(t, s.Config(), c); err == nil || peer != nil {
			t.Errorf("client with %s: %v", name, err)
		}
	}

	copyFile(t, others.File, caFile)
	certstest.Touch(t, time.Now().Add(time.Minute), caFile)
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := handshake(t, s.Config(), dial(&theirs)); err != nil {
		t.Errorf("a client of the new CA: %v", err)
	}
	if _, _, err := handshake(t, s.Config(), dial(&ours)); err == nil {
		t.Error("a client of the old CA was let in")
	}
}

// TestClient: the upstream's certificate is checked against the CA file
// alone, for the name; the client certificate in use is the current
// one.
func TestClient(t *testing.T) {
	dir := t.TempDir()
	ca := certstest.NewCA(t, dir, "ca")
	others := certstest.NewCA(t, dir, "others")
	server := &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "engine").TLS(t)},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()}
	first, certFile, keyFile := ca.IssueFiles(t, dir, "gateway")
	c, err := NewClient(ClientFiles{CA: ca.File, Cert: certFile, Key: keyFile}, "", "127.0.0.1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, peer, err := handshake(t, server, c.Config())
	if err != nil {
		t.Fatal(err)
	}
	if !peer.PeerCertificates[0].Equal(first.Cert) {
		t.Error("the engine did not get the client certificate")
	}

	second := ca.Issue(t, "gateway-second")
	second.Write(t, certFile, keyFile)
	certstest.Touch(t, time.Now().Add(time.Minute), certFile, keyFile)
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
	if _, peer, err := handshake(t, server, c.Config()); err != nil || !peer.PeerCertificates[0].Equal(second.Cert) {
		t.Errorf("after the change: %v, the engine saw %v", err, peer)
	}

	tests := []struct {
		name   string
		server *tls.Config
		files  ClientFiles
		sni    string
	}{
		{"another CA's engine", &tls.Config{Certificates: []tls.Certificate{others.Issue(t, "engine").TLS(t)}}, ClientFiles{CA: ca.File}, ""},
		{"another name", &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "engine").TLS(t)}}, ClientFiles{CA: ca.File}, "engine.example"},
		{"an expired certificate", &tls.Config{Certificates: []tls.Certificate{ca.IssueWith(t, "engine", func(c *x509.Certificate) {
			c.NotBefore, c.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour)
		}).TLS(t)}}, ClientFiles{CA: ca.File}, ""},
		{"a certificate for clients only", &tls.Config{Certificates: []tls.Certificate{ca.IssueWith(t, "engine", func(c *x509.Certificate) {
			c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		}).TLS(t)}}, ClientFiles{CA: ca.File}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewClient(tt.files, tt.sni, "127.0.0.1", Options{})
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = handshake(t, tt.server, c.Config())
			var ve *tls.CertificateVerificationError
			if !errors.As(err, &ve) {
				t.Errorf("got %v, want a *tls.CertificateVerificationError", err)
			}
		})
	}

	// With a CA file, the roots are that file's alone, not added to the
	// system's.
	if !c.w.current().roots.Equal(ca.Pool()) {
		t.Error("the roots are not the CA file's alone")
	}

	// The CA file changed to another CA's: the next handshake trusts that
	// CA's engine, and the old CA's no longer.
	caFile := filepath.Join(dir, "trusted.pem")
	copyFile(t, ca.File, caFile)
	rc, err := NewClient(ClientFiles{CA: caFile}, "", "127.0.0.1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	oldEngine := &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "engine").TLS(t)}}
	newEngine := &tls.Config{Certificates: []tls.Certificate{others.Issue(t, "engine").TLS(t)}}
	if _, _, err := handshake(t, oldEngine, rc.Config()); err != nil {
		t.Fatalf("before the change: %v", err)
	}
	copyFile(t, others.File, caFile)
	certstest.Touch(t, time.Now().Add(time.Minute), caFile)
	if err := rc.Check(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := handshake(t, newEngine, rc.Config()); err != nil {
		t.Errorf("the new CA's engine after the change: %v", err)
	}
	var ve *tls.CertificateVerificationError
	if _, _, err := handshake(t, oldEngine, rc.Config()); !errors.As(err, &ve) {
		t.Errorf("the old CA's engine after the change: %v, want a *tls.CertificateVerificationError", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
