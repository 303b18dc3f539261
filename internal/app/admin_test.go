package app

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// served is a gateway run by runServe in this process.
type served struct {
	api, admin string   // base URLs; admin "" when it is off
	grpc       string   // the gRPC listener's address; "" when it is off
	lines      []string // what serve printed, its serving line the last
	stop       func() error
}

// serveArgs runs omnigate serve with args and waits for its "serving on"
// line; it fails the test when serve returns an error first (see
// serveErr for that case).
func serveArgs(t *testing.T, args ...string) *served {
	t.Helper()
	s, err := startServe(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startServe runs serve; the error is serve's when it stopped before
// serving.
func startServe(t *testing.T, args ...string) (*served, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--grpc-addr") }) {
		// The default gRPC port is one for every gateway the tests run
		// at once, in this package and the others.
		args = append([]string{"--grpc-addr", "127.0.0.1:0"}, args...)
	}
	go func() {
		errc <- runServe(ctx, append([]string{"--log-level", "error"}, args...), pw, io.Discard)
		pw.Close()
	}()
	var once sync.Once
	var serveErr error
	s := &served{stop: func() error {
		once.Do(func() { cancel(); serveErr = <-errc })
		return serveErr
	}}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				cancel()
				return nil, <-errc
			}
			s.lines = append(s.lines, l)
			// An address may be followed by " (TLS)" or " (mTLS)".
			if u, ok := strings.CutPrefix(l, "omnigate: admin on "); ok {
				s.admin, _, _ = strings.Cut(u, " ")
			}
			if a, ok := strings.CutPrefix(l, "omnigate: gRPC on "); ok {
				s.grpc, _, _ = strings.Cut(a, " ")
			}
			if u, ok := strings.CutPrefix(l, "omnigate: serving on "); ok {
				s.api, _, _ = strings.Cut(u, " ")
				go func() {
					for range lines {
					}
				}()
				t.Cleanup(func() { s.stop() })
				return s, nil
			}
		case <-timeout:
			cancel()
			t.Fatalf("serve %v printed no serving line in 10 s", args)
		}
	}
}

func getStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

const adminTestModels = `
models:
  - name: m
    deployments: [{name: d, kind: sim, profile: instant}]
`

func writeFile(t *testing.T, dir, body string) string {
	t.Helper()
	f := filepath.Join(dir, "omnigate.yaml")
	if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// clearEnv unsets the variables serve reads, for the test's duration.
func clearEnv(t *testing.T) {
	for _, k := range []string{"OMNIGATE_CONFIG", "OMNIGATE_ADDR", "OMNIGATE_ADMIN_ADDR", "OMNIGATE_GRPC_ADDR", "OMNIGATE_DEBUG_ADDR", "OMNIGATE_TEST_ADMIN_TOKEN"} {
		t.Setenv(k, "")
	}
}

// TestAdminAddrPrecedence: the flag beats OMNIGATE_ADMIN_ADDR, which beats
// server.admin_addr; "off" turns the listener off. Each source names a
// loopback address of its own, so the printed address says which won.
func TestAdminAddrPrecedence(t *testing.T) {
	if ln, err := net.Listen("tcp", "127.0.0.3:0"); err != nil {
		t.Skipf("no 127.0.0.3 to listen on: %v", err)
	} else {
		ln.Close()
	}
	cfg := writeFile(t, t.TempDir(), `server: {addr: "127.0.0.1:0", admin_addr: "127.0.0.3:0"}`+adminTestModels)
	tests := []struct {
		name, env string
		flag      []string
		wantHost  string // "" for no admin listener
	}{
		{"config", "", nil, "127.0.0.3"},
		{"env over config", "127.0.0.2:0", nil, "127.0.0.2"},
		{"flag over env", "127.0.0.2:0", []string{"--admin-addr", "127.0.0.1:0"}, "127.0.0.1"},
		{"env off", "off", nil, ""},
		{"flag off", "127.0.0.2:0", []string{"--admin-addr", "off"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			t.Setenv("OMNIGATE_ADMIN_ADDR", tt.env)
			s := serveArgs(t, append([]string{"--config", cfg}, tt.flag...)...)
			if tt.wantHost == "" {
				if s.admin != "" {
					t.Errorf("admin on %s, want none", s.admin)
				}
				return
			}
			if !strings.HasPrefix(s.admin, "http://"+tt.wantHost+":") {
				t.Fatalf("admin on %q, want %s", s.admin, tt.wantHost)
			}
			if code := getStatus(t, s.admin+"/admin/build"); code != 200 {
				t.Errorf("/admin/build: %d", code)
			}
			// The API listener serves no admin path.
			if code := getStatus(t, s.api+"/admin/deployments"); code != 404 {
				t.Errorf("API listener /admin/deployments: %d, want 404", code)
			}
		})
	}
}

// TestAdminNeedsTokenBeyondLoopback: serve refuses to start an admin
// listener beyond loopback without a token, and says why; a token named
// but empty is refused too.
func TestAdminNeedsTokenBeyondLoopback(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, config, admin, token string
		want                       string
	}{
		{"every interface", `server: {addr: "127.0.0.1:0"}`, "0.0.0.0:0", "", "not a loopback address and no admin token is set: the admin API shows the configuration and can reload it"},
		{"empty host", `server: {addr: "127.0.0.1:0"}`, ":0", "", "not a loopback address and no admin token is set"},
		{"a name", `server: {addr: "127.0.0.1:0"}`, "gateway.example:0", "", "not a loopback address and no admin token is set"},
		{"token named, variable empty", `server: {addr: "127.0.0.1:0", admin_token_env: OMNIGATE_TEST_ADMIN_TOKEN}`, "127.0.0.1:0", "",
			"server.admin_token_env names OMNIGATE_TEST_ADMIN_TOKEN, which is empty or unset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			t.Setenv("OMNIGATE_TEST_ADMIN_TOKEN", tt.token)
			cfg := writeFile(t, dir, tt.config+adminTestModels)
			_, err := startServe(t, "--config", cfg, "--admin-addr", tt.admin)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("serve: %v, want an error with %q", err, tt.want)
			}
		})
	}
	// With a token the address is fine (checked without listening
	// beyond loopback).
	for _, addr := range []string{"0.0.0.0:8081", ":8081", "gateway.example:8081"} {
		if err := checkAdminAddr(addr, "tok"); err != nil {
			t.Errorf("checkAdminAddr(%q) with a token: %v", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:8081", "127.1.2.3:0", "[::1]:8081", "localhost:8081", "off"} {
		if err := checkAdminAddr(addr, ""); err != nil {
			t.Errorf("checkAdminAddr(%q) without a token: %v", addr, err)
		}
	}
}

// TestAdminTokenAndReload: serve's admin listener takes the token
// server.admin_token_env names, and POST /admin/reload reads the file
// again: a good one is swapped in (the API and /admin/config show it), a
// bad one is refused with its problems and the running one kept.
func TestAdminTokenAndReload(t *testing.T) {
	clearEnv(t)
	t.Setenv("OMNIGATE_TEST_ADMIN_TOKEN", "tok-123")
	dir := t.TempDir()
	head := `server: {addr: "127.0.0.1:0", admin_token_env: OMNIGATE_TEST_ADMIN_TOKEN}` + "\n"
	cfg := writeFile(t, dir, head+adminTestModels)
	s := serveArgs(t, "--config", cfg, "--admin-addr", "127.0.0.1:0")
	call := func(method, path, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, s.admin+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := call("GET", "/admin/config", ""); code != 401 {
		t.Errorf("no token: %d", code)
	}
	if code, _ := call("GET", "/status", ""); code != 200 {
		t.Errorf("page shell: %d", code)
	}

	writeFile(t, dir, head+strings.Replace(adminTestModels, "- name: m", "- name: m\n    aliases: [m-new]", 1))
	if code, body := call("POST", "/admin/reload", "tok-123"); code != 200 || !strings.Contains(body, `"status":"reloaded"`) {
		t.Fatalf("reload: %d %s", code, body)
	}
	if code := getStatus(t, s.api+"/v1/models/m-new"); code != 200 {
		t.Errorf("the new alias after the reload: %d", code)
	}
	var cur struct {
		Server struct {
			Addr string `json:"addr"`
		} `json:"server"`
		Models []struct {
			Aliases []string `json:"aliases"`
		} `json:"models"`
	}
	_, body := call("GET", "/admin/config", "tok-123")
	if err := json.Unmarshal([]byte(body), &cur); err != nil || len(cur.Models) != 1 || len(cur.Models[0].Aliases) != 1 || cur.Server.Addr != "127.0.0.1:0" {
		t.Errorf("config after the reload: %v %s", err, body)
	}

	writeFile(t, dir, head+"models: []\n")
	if code, body := call("POST", "/admin/reload", "tok-123"); code != 400 || !strings.Contains(body, "at least one model is required") {
		t.Errorf("reload of a bad file: %d %s", code, body)
	}
	if code := getStatus(t, s.api+"/v1/models/m-new"); code != 200 {
		t.Errorf("a failed reload changed the running config: %d", code)
	}
	if err := s.stop(); err != nil {
		t.Errorf("serve: %v", err)
	}
}
