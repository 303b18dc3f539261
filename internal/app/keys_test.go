package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/omnigate/omnigate/internal/auth"
	"github.com/omnigate/omnigate/internal/auth/pgstore/pgtest"
	"github.com/omnigate/omnigate/internal/config"
)

// testPostgres is the DSN of the PostgreSQL server the key store tests
// use, and a table of the test's own (see pgtest).
func testPostgres(t *testing.T) (dsn, table string) {
	t.Helper()
	dsn = pgtest.DSN(t)
	return dsn, pgtest.Table(t, dsn)
}

// storeConfig is the default config on key store postgres: the
// connection string in OMNIGATE_TEST_KEYS_DSN, the keys in table, read
// every refresh.
func storeConfig(t *testing.T, dsn, table string, refresh time.Duration) *config.Config {
	t.Setenv("OMNIGATE_TEST_KEYS_DSN", dsn)
	cfg := config.Default()
	cfg.Auth.Keys = []config.APIKey{{Name: "file", Hash: auth.Hash("sk-file")}}
	cfg.Auth.Store = config.KeyStore{Kind: config.KeyStorePostgres,
		Postgres: config.KeyPostgres{DSNEnv: "OMNIGATE_TEST_KEYS_DSN", Table: table, Refresh: config.Duration(refresh)}}
	return cfg
}

// adminCall sends a request to an admin API and decodes its JSON answer.
func adminCall(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	return resp.StatusCode, v
}

// sdkStatus is the status the official SDK reports for a chat request to
// the gateway at base with key: 200, or its error's status; and the
// error's code.
func sdkStatus(t *testing.T, base, key string) (int, string) {
	t.Helper()
	c := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
	_, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "small", MaxTokens: openai.Int(4),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
	var ae *openai.Error
	switch {
	case err == nil:
		return 200, ""
	case errors.As(err, &ae):
		return ae.StatusCode, ae.Code
	}
	t.Fatal(err)
	return 0, ""
}

// TestSharedKeyStoreNotified: two gateways that read the store only at
// start (an hour's refresh) hear of each other's changes from PostgreSQL
// (LISTEN/NOTIFY): a key made through A works through B, revoked through
// A it stops there, without a refresh.
func TestSharedKeyStoreNotified(t *testing.T) {
	dsn, table := testPostgres(t)
	gwA, _ := newTestGateway(t, storeConfig(t, dsn, table, time.Hour))
	gwB, srvB := newTestGateway(t, storeConfig(t, dsn, table, time.Hour))
	adminA := adminServer(t, gwA) + "/admin/keys"
	within := func(what string, ok func() bool) {
		t.Helper()
		for end := time.Now().Add(10 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("B: %s, not within 10 s", what)
			}
		}
	}
	// Each listens once it has started (a key made before is read at its
	// start, not heard): wait for both listening connections.
	within("not listening", func() bool { return pgtest.Listeners(t, dsn, table, false) == 2 })
	code, made := adminCall(t, "POST", adminA, `{"name":"heard"}`)
	secret, _ := made["secret"].(string)
	if code != 201 || secret == "" {
		t.Fatalf("create: %d %v", code, made)
	}
	within("the key made through A unknown", func() bool { return gwB.keys.Named("heard") != nil })
	if s, c := sdkStatus(t, srvB.URL, secret); s != 200 {
		t.Fatalf("through B: %d %s", s, c)
	}
	if code, v := adminCall(t, "DELETE", adminA+"/heard", ""); code != 200 {
		t.Fatalf("revoke: %d %v", code, v)
	}
	within("the key revoked through A still known", func() bool { return gwB.keys.Named("heard") == nil })
	if s, c := sdkStatus(t, srvB.URL, secret); s != 401 || c != "invalid_api_key" {
		t.Errorf("through B after the revocation: %d %s", s, c)
	}
}

// TestSharedKeyStore: two gateways on one PostgreSQL key store. A key
// made through A's admin API works through B once B reads the store
// again; revoked through A, B refuses it from its next read; rotated, the
// old secret stops and the new one works.
func TestSharedKeyStore(t *testing.T) {
	dsn, table := testPostgres(t)
	// A reads the store only at start and after its own changes (a long
	// refresh); B every 100 ms, and when the test says.
	gwA, srvA := newTestGateway(t, storeConfig(t, dsn, table, time.Hour))
	gwB, srvB := newTestGateway(t, storeConfig(t, dsn, table, 100*time.Millisecond))
	adminA := adminServer(t, gwA) + "/admin/keys"
	ctx := context.Background()

	code, made := adminCall(t, "POST", adminA, `{"name":"team-ci","models":["small"]}`)
	secret, _ := made["secret"].(string)
	if code != 201 || secret == "" {
		t.Fatalf("create: %d %v", code, made)
	}
	if s, c := sdkStatus(t, srvA.URL, secret); s != 200 {
		t.Fatalf("through A: %d %s", s, c)
	}
	// B's refresher finds it (bounded: 100 reads' worth).
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if gwB.keys.Named("team-ci") != nil {
			break
		}
	}
	if s, c := sdkStatus(t, srvB.URL, secret); s != 200 {
		t.Fatalf("through B after its refresh: %d %s", s, c)
	}
	// The config file's key works beside the store's on both.
	for _, srv := range []string{srvA.URL, srvB.URL} {
		if s, c := sdkStatus(t, srv, "sk-file"); s != 200 {
			t.Errorf("the file's key: %d %s", s, c)
		}
	}

	if code, v := adminCall(t, "DELETE", adminA+"/team-ci", ""); code != 200 {
		t.Fatalf("revoke: %d %v", code, v)
	}
	if s, c := sdkStatus(t, srvA.URL, secret); s != 401 || c != "invalid_api_key" {
		t.Errorf("through A after the revocation: %d %s", s, c)
	}
	if err := gwB.keys.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if s, c := sdkStatus(t, srvB.URL, secret); s != 401 || c != "invalid_api_key" {
		t.Errorf("through B after the revocation and a refresh: %d %s", s, c)
	}
	if code, v := adminCall(t, "POST", adminA, `{"name":"team-ci"}`); code != 409 {
		t.Errorf("a revoked key's name made again: %d %v", code, v)
	}

	// Rotation.
	_, made = adminCall(t, "POST", adminA, `{"name":"team-rot"}`)
	old := made["secret"].(string)
	gwB.keys.Refresh(ctx)
	if s, _ := sdkStatus(t, srvB.URL, old); s != 200 {
		t.Fatalf("the key to rotate, through B: %d", s)
	}
	code, rotated := adminCall(t, "POST", adminA+"/team-rot/rotate", "")
	next, _ := rotated["secret"].(string)
	if code != 200 || next == "" || next == old {
		t.Fatalf("rotate: %d %v", code, rotated)
	}
	gwB.keys.Refresh(ctx)
	for _, srv := range []string{srvA.URL, srvB.URL} {
		if s, c := sdkStatus(t, srv, old); s != 401 || c != "invalid_api_key" {
			t.Errorf("the old secret: %d %s", s, c)
		}
		if s, c := sdkStatus(t, srv, next); s != 200 {
			t.Errorf("the new secret: %d %s", s, c)
		}
	}

	// A reload compiles the file's keys again and keeps the store's.
	reloaded := storeConfig(t, dsn, table, time.Hour)
	reloaded.Auth.Keys = append(reloaded.Auth.Keys, config.APIKey{Name: "file-2", Hash: auth.Hash("sk-file-2")})
	reloaded.ApplyDefaults()
	if err := gwA.Reload(reloaded, time.Second); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{next, "sk-file", "sk-file-2"} {
		if s, c := sdkStatus(t, srvA.URL, key); s != 200 {
			t.Errorf("after a reload, %s: %d %s", key, s, c)
		}
	}

	// B's listing: both sources, the usage its own counters saw, never a
	// secret.
	adminB := adminServer(t, gwB) + "/admin/keys"
	code, list := adminCall(t, "GET", adminB, "")
	b, _ := json.Marshal(list)
	if code != 200 || list["store"] != "postgres" || strings.Contains(string(b), next) || strings.Contains(string(b), auth.Hash(next)) {
		t.Fatalf("list: %d %s", code, b)
	}
	_, one := adminCall(t, "GET", adminB+"/team-rot", "")
	usage, _ := one["usage"].(map[string]any)
	reqs, _ := usage["requests"].([]any)
	if one["source"] != "store" || len(reqs) == 0 || !strings.HasPrefix(auth.Hash(next), one["hash_prefix"].(string)) {
		t.Errorf("team-rot through B: %v", one)
	}
}

// TestKeyStoreDown: a store that stops answering leaves the keys read
// last in force, and each failed read counts; once it answers again the
// reads go on.
func TestKeyStoreDown(t *testing.T) {
	dsn, table := testPostgres(t)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	px := newProxy(t, fmt.Sprintf("%s:%d", cfg.Host, cfg.Port))
	proxied := fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable&connect_timeout=2", cfg.User, px.addr(), cfg.Database)
	gw, srv := newTestGateway(t, storeConfig(t, proxied, table, time.Hour))
	admin := adminServer(t, gw) + "/admin/keys"
	_, made := adminCall(t, "POST", admin, `{"name":"kept"}`)
	secret := made["secret"].(string)

	px.setDown(true)
	ctx := context.Background()
	for range 2 {
		if err := gw.keys.Refresh(ctx); err == nil {
			t.Fatal("a refresh through a store that is down succeeded")
		}
	}
	if s, c := sdkStatus(t, srv.URL, secret); s != 200 {
		t.Errorf("the store's key while it is down: %d %s", s, c)
	}
	// The two reads failed, and so may the one the store's notification
	// of "kept" set off, when it came after the store went down.
	if v, _ := value(families(t, gw), "omnigate_key_store_errors_total", nil); v < 2 || v > 3 {
		t.Errorf("omnigate_key_store_errors_total = %v, want 2 (3 with the notified read)", v)
	}
	if code, v := adminCall(t, "POST", admin, `{"name":"later"}`); code != 503 || !strings.Contains(fmt.Sprint(v), "key_store_unavailable") {
		t.Errorf("create while the store is down: %d %v", code, v)
	}

	px.setDown(false)
	if err := gw.keys.Refresh(ctx); err != nil {
		t.Errorf("a refresh once the store is back: %v", err)
	}
}

// TestKeyStoreAtStart: serve stops, saying why, when the store's
// connection string is missing or its database unreachable.
func TestKeyStoreAtStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	for _, tc := range []struct {
		name, dsn string
		want      []string
	}{
		{"unset", "", []string{"auth.store.postgres.dsn_env names OMNIGATE_TEST_KEYS_DSN, which is empty or unset"}},
		{"unreachable", "postgres://postgres@" + closed + "/postgres?connect_timeout=2", []string{"auth.store: key store postgres", "OMNIGATE_TEST_KEYS_DSN", closed}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := storeConfig(t, tc.dsn, "omnigate_api_keys", time.Second)
			cfg.ApplyDefaults()
			_, err := NewGateway(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("NewGateway: %v, want an error with %q", err, w)
				}
			}
		})
	}
}

// proxy is a TCP relay on loopback to a server, which a test can take
// down (it drops every connection and refuses new ones) and bring back,
// on the same address.
type proxy struct {
	ln   net.Listener
	to   string
	mu   sync.Mutex
	down bool
	open map[net.Conn]bool
}

func newProxy(t *testing.T, to string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, to: to, open: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.setDown(true) })
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.to)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.open[c], p.open[up] = true, true
		p.mu.Unlock()
		go func() { io.Copy(up, c); up.Close() }()
		go func() { io.Copy(c, up); c.Close() }()
	}
}

func (p *proxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.open {
			c.Close()
		}
		clear(p.open)
	}
}
