package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/omnigate/omnigate/internal/admin"
	"github.com/omnigate/omnigate/internal/auth"
	"github.com/omnigate/omnigate/internal/config"
)

// memStore is an auth.Store in memory; down makes every call fail.
type memStore struct {
	mu   sync.Mutex
	keys []auth.Record
	used map[string]bool // every name ever made
	down bool
}

var errDown = errors.New("connection refused")

func (s *memStore) List(context.Context) ([]auth.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return nil, errDown
	}
	return append([]auth.Record(nil), s.keys...), nil
}

func (s *memStore) Create(_ context.Context, k config.APIKey) (auth.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return auth.Record{}, errDown
	}
	if s.used[k.Name] {
		return auth.Record{}, auth.ErrExists
	}
	if s.used == nil {
		s.used = map[string]bool{}
	}
	s.used[k.Name] = true
	r := auth.Record{APIKey: k, Created: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	s.keys = append(s.keys, r)
	return r, nil
}

func (s *memStore) Revoke(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range s.keys {
		if r.Name == name {
			s.keys = append(s.keys[:i], s.keys[i+1:]...)
			return nil
		}
	}
	return auth.ErrNotFound
}

func (s *memStore) Rotate(_ context.Context, name, hash string) (auth.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.keys {
		if s.keys[i].Name == name {
			s.keys[i].Hash, s.keys[i].Rotated = hash, time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
			return s.keys[i], nil
		}
	}
	return auth.Record{}, auth.ErrNotFound
}

func (s *memStore) Close() error { return nil }

// keyDoc is what the admin API says of a key, as a client reads it.
type keyDoc struct {
	Secret   string         `json:"secret"`
	Name     string         `json:"name"`
	Source   string         `json:"source"`
	State    string         `json:"state"`
	Ignored  string         `json:"ignored"`
	Hash     string         `json:"hash_prefix"`
	Models   []string       `json:"models"`
	Priority string         `json:"priority"`
	Expires  *time.Time     `json:"expires"`
	Limits   map[string]int `json:"limits"`
	Created  *time.Time     `json:"created"`
	Rotated  *time.Time     `json:"rotated"`
	Usage    *struct {
		Requests []struct {
			Model, Code string
			Count       float64
		} `json:"requests"`
		Tokens map[string]struct{ Prompt, Completion float64 } `json:"tokens"`
	} `json:"usage"`
}

func decodeKey(t *testing.T, body string) keyDoc {
	t.Helper()
	var d keyDoc
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	return d
}

func authStatus(d *auth.Directory, secret string) int {
	if _, err := d.Authenticate(http.Header{"Authorization": {"Bearer " + secret}}, time.Now()); err != nil {
		return 401
	}
	return 200
}

func TestKeys(t *testing.T) {
	cfg := testConfig()
	cfg.Auth.Keys = []config.APIKey{{Name: "file", Hash: auth.Hash("sk-file"), Expires: "2020-01-01"}}
	gw := newGateway(t, cfg)
	st := &memStore{}
	dir := auth.NewDirectory(auth.DirectoryOptions{Store: st})
	dir.SetConfig(gw.Config().Auth.Keys, gw.Core().Snapshot().Catalog, func(string) bool { return false })
	reg := prometheus.NewRegistry()
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "omnigate_key_requests_total"}, []string{"key", "model", "code"})
	toks := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "omnigate_key_tokens_total"}, []string{"key", "model", "kind"})
	reg.MustRegister(reqs, toks)
	srv := serve(t, gw, admin.Options{Keys: dir, Metrics: reg, Now: func() time.Time { return time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC) }})
	base := srv.URL + "/admin/keys"

	resp, body := send(t, "POST", base, `{"name":"ci","models":["small"],"priority":"batch","expires":"2027-01-31","limits":{"requests_per_minute":60}}`)
	if resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	made := decodeKey(t, body)
	if !strings.HasPrefix(made.Secret, "og-") || len(made.Hash) != 15 || !strings.HasPrefix(auth.Hash(made.Secret), made.Hash) ||
		made.Source != "store" || made.State != "active" || made.Priority != "batch" || made.Limits["requests_per_minute"] != 60 || made.Created == nil {
		t.Errorf("created: %s", body)
	}
	if authStatus(dir, made.Secret) != 200 {
		t.Error("the new key is refused")
	}
	reqs.WithLabelValues("ci", "qwen3-omni-7b", "200").Add(3)
	reqs.WithLabelValues("ci", "qwen3-omni-7b", "429").Inc()
	toks.WithLabelValues("ci", "small-m", "prompt").Add(30)
	toks.WithLabelValues("ci", "small-m", "completion").Add(12)

	resp, body = send(t, "GET", base, "")
	if resp.StatusCode != 200 || strings.Contains(body, made.Secret) || strings.Contains(body, auth.Hash(made.Secret)) {
		t.Fatalf("list: %d %s", resp.StatusCode, body)
	}
	var list struct {
		Store string
		Keys  []json.RawMessage
	}
	json.Unmarshal([]byte(body), &list)
	var got []string
	for _, k := range list.Keys {
		d := decodeKey(t, string(k))
		got = append(got, d.Name+" "+d.Source+" "+d.State)
	}
	if d := cmp.Diff([]string{"ci store active", "file config expired"}, got); d != "" || list.Store != "none" {
		t.Errorf("list (-want +got):\n%s\nstore %q", d, list.Store)
	}
	one := decodeKey(t, string(list.Keys[0]))
	if one.Secret != "" || one.Usage == nil || len(one.Usage.Requests) != 2 || one.Usage.Requests[1].Code != "429" ||
		one.Usage.Tokens["small-m"].Prompt != 30 || one.Usage.Tokens["small-m"].Completion != 12 {
		t.Errorf("ci as listed: %s", list.Keys[0])
	}

	resp, body = send(t, "POST", base+"/ci/rotate", "")
	rotated := decodeKey(t, body)
	if resp.StatusCode != 200 || rotated.Secret == "" || rotated.Secret == made.Secret || rotated.Rotated == nil {
		t.Fatalf("rotate: %d %s", resp.StatusCode, body)
	}
	if authStatus(dir, made.Secret) != 401 || authStatus(dir, rotated.Secret) != 200 {
		t.Error("after rotate, the old secret works or the new one does not")
	}

	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code, param              string
	}{
		{"one key", "GET", "/ci", "", 200, "", ""},
		{"unknown key", "GET", "/nope", "", 404, "key_not_found", ""},
		{"bad name", "POST", "", `{"name":"-x"}`, 400, "", "name"},
		{"name with a slash", "POST", "", `{"name":"a/b"}`, 400, "", "name"},
		{"unknown model", "POST", "", `{"name":"x","models":["small","huge"]}`, 400, "", "models[1]"},
		{"bad priority", "POST", "", `{"name":"x","priority":"urgent"}`, 400, "", "priority"},
		{"negative limit", "POST", "", `{"name":"x","user_limits":{"tokens_per_day":-1}}`, 400, "", "user_limits.tokens_per_day"},
		{"bad expiry", "POST", "", `{"name":"x","expires":"soon"}`, 400, "", "expires"},
		{"past expiry", "POST", "", `{"name":"x","expires":"2026-11-30"}`, 400, "", "expires"},
		{"unknown field", "POST", "", `{"name":"x","hash":"sha256:00"}`, 400, "", ""},
		{"not JSON", "POST", "", `name=x`, 400, "", ""},
		{"a store key's name", "POST", "", `{"name":"ci"}`, 409, "key_exists", ""},
		{"a config key's name", "POST", "", `{"name":"file"}`, 409, "key_in_config", ""},
		{"revoke a config key", "DELETE", "/file", "", 409, "key_in_config", ""},
		{"rotate a config key", "POST", "/file/rotate", "", 409, "key_in_config", ""},
		{"revoke", "DELETE", "/ci", "", 200, "", ""},
		{"revoke again", "DELETE", "/ci", "", 404, "key_not_found", ""},
		{"rotate a revoked key", "POST", "/ci/rotate", "", 404, "key_not_found", ""},
		{"a revoked key's name", "POST", "", `{"name":"ci"}`, 409, "key_exists", ""},
		{"wrong method", "PUT", "", "", 405, "method_not_allowed", ""},
		{"wrong method on one", "POST", "/ci", "", 405, "method_not_allowed", ""},
		{"rotate with GET", "GET", "/ci/rotate", "", 405, "method_not_allowed", ""},
		{"trailing slash", "GET", "/", "", 404, "unknown_url", ""},
		{"deeper path", "GET", "/ci/x/rotate", "", 404, "unknown_url", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := send(t, tc.method, base+tc.path, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("%d %s, want %d", resp.StatusCode, body, tc.status)
			}
			if tc.status < 400 {
				return
			}
			var e apiError
			json.Unmarshal([]byte(body), &e)
			if tc.code != "" && (e.Error.Code == nil || *e.Error.Code != tc.code) {
				t.Errorf("code in %s, want %s", body, tc.code)
			}
			if tc.param != "" && (e.Error.Param == nil || *e.Error.Param != tc.param) {
				t.Errorf("param in %s, want %s", body, tc.param)
			}
			if e.Error.Message == "" || e.Error.Type == "" {
				t.Errorf("not an OpenAI error: %s", body)
			}
		})
	}
	if authStatus(dir, rotated.Secret) != 401 {
		t.Error("the revoked key still works")
	}
	if resp, _ := send(t, "GET", base+"/ci", ""); resp.StatusCode != 404 {
		t.Errorf("a revoked key shown: %d", resp.StatusCode)
	}
	resp, _ = send(t, "PUT", base, "")
	if a := resp.Header.Get("Allow"); a != "GET, HEAD, POST" {
		t.Errorf("Allow %q", a)
	}

	// The store down: a change is 503 and says why.
	st.mu.Lock()
	st.down = true
	st.mu.Unlock()
	resp, body = send(t, "POST", base, `{"name":"later"}`)
	if resp.StatusCode != 503 || errorCode(t, body) != "key_store_unavailable" || !strings.Contains(body, "connection refused") {
		t.Errorf("create with the store down: %d %s", resp.StatusCode, body)
	}
}

func TestKeysWithoutStore(t *testing.T) {
	cfg := testConfig()
	cfg.Auth.Keys = []config.APIKey{{Name: "file", Hash: auth.Hash("sk-file")}}
	gw := newGateway(t, cfg)
	dir := auth.NewDirectory(auth.DirectoryOptions{})
	dir.SetConfig(gw.Config().Auth.Keys, gw.Core().Snapshot().Catalog, func(string) bool { return false })
	srv := serve(t, gw, admin.Options{Keys: dir})
	base := srv.URL + "/admin/keys"
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"list", "GET", "", "", 200, ""},
		{"create", "POST", "", `{"name":"x"}`, 501, "key_store_none"},
		{"revoke the file's", "DELETE", "/file", "", 409, "key_in_config"},
		{"revoke unknown", "DELETE", "/x", "", 404, "key_not_found"},
		{"rotate unknown", "POST", "/x/rotate", "", 404, "key_not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := send(t, tc.method, base+tc.path, tc.body)
			if resp.StatusCode != tc.status || (tc.code != "" && errorCode(t, body) != tc.code) {
				t.Errorf("%d %s, want %d %s", resp.StatusCode, body, tc.status, tc.code)
			}
		})
	}
	if resp, body := send(t, "GET", serve(t, gw, admin.Options{}).URL+"/admin/keys", ""); resp.StatusCode != 501 || errorCode(t, body) != "keys_unsupported" {
		t.Errorf("no keys: %d %s", resp.StatusCode, body)
	}
}
