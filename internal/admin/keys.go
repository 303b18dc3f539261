package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/auth"
	"github.com/omnigate/omnigate/internal/config"
)

// Keys is the API keys the admin API lists and changes: the gateway's
// auth.Directory.
type Keys interface {
	Entries() []auth.Entry
	Entry(name string) (auth.Entry, bool)
	Create(ctx context.Context, k config.APIKey) (auth.Entry, error)
	Revoke(ctx context.Context, name string) error
	Rotate(ctx context.Context, name, hash string) (auth.Entry, error)
}

// The metric families a key's usage is read from.
const (
	familyKeyRequests = "omnigate_key_requests_total" // {key, model, code}
	familyKeyTokens   = "omnigate_key_tokens_total"   // {key, model, kind}
)

// maxKeyBody bounds a POST /admin/keys body.
const maxKeyBody = 64 << 10

// hashShown is how much of a key's hash the admin API shows: enough to
// tell keys apart, too little to be worth anything.
const hashShown = len(config.HashPrefix) + 8

// serveKeys routes /admin/keys and /admin/keys/{name}[/rotate].
func (h *Handler) serveKeys(w http.ResponseWriter, r *http.Request, rest string) {
	if h.opt.Keys == nil {
		apierror.Write(w, apierror.New(http.StatusNotImplemented, "keys_unsupported", "This gateway has no API keys to manage."))
		return
	}
	if rest == "" {
		if allowMethods(w, r, http.MethodGet, http.MethodPost) {
			if r.Method == http.MethodPost {
				h.createKey(w, r)
			} else {
				h.listKeys(w)
			}
		}
		return
	}
	escaped, rotate := strings.CutSuffix(rest, "/rotate")
	name, err := url.PathUnescape(escaped)
	if err != nil || name == "" || strings.Contains(escaped, "/") {
		apierror.Write(w, apierror.New(http.StatusNotFound, "unknown_url", "Unknown request URL: %s %s.", r.Method, r.URL.EscapedPath()))
		return
	}
	switch {
	case rotate:
		if allowMethods(w, r, http.MethodPost) {
			h.rotateKey(w, r, name)
		}
	case allowMethods(w, r, http.MethodGet, http.MethodDelete):
		if r.Method == http.MethodDelete {
			h.revokeKey(w, r, name)
			return
		}
		e, ok := h.opt.Keys.Entry(name)
		if !ok {
			apierror.Write(w, notFound(name))
			return
		}
		writeJSON(w, http.StatusOK, mustJSON(h.renderKey(e, h.keyUsage())))
	}
}

// keyDoc is one key as the admin API shows it.
type keyDoc struct {
	// Secret is the key itself: only in the answer that made it.
	Secret string `json:"secret,omitempty"`
	Name   string `json:"name"`
	Source string `json:"source"` // config or store
	// State is active, expired or ignored (not in force: Ignored says
	// why).
	State   string `json:"state"`
	Ignored string `json:"ignored,omitempty"`
	// HashPrefix is the start of the secret's hash.
	HashPrefix string     `json:"hash_prefix"`
	Models     []string   `json:"models"` // empty: every one
	Priority   string     `json:"priority"`
	Expires    *time.Time `json:"expires"`
	Limits     limitsDoc  `json:"limits"`
	UserLimits limitsDoc  `json:"user_limits"`
	Created    *time.Time `json:"created"`
	Rotated    *time.Time `json:"rotated"`
	Usage      *usageDoc  `json:"usage,omitempty"`
}

// limitsDoc is config.KeyLimits in the admin API's JSON.
type limitsDoc struct {
	RequestsPerMinute int64 `json:"requests_per_minute"`
	TokensPerMinute   int64 `json:"tokens_per_minute"`
	TokensPerDay      int64 `json:"tokens_per_day"`
	TokensPerMonth    int64 `json:"tokens_per_month"`
}

// usageDoc is a key's traffic through this gateway since it started.
type usageDoc struct {
	Requests []keyRequests            `json:"requests"`
	Tokens   map[string]*keyTokensDoc `json:"tokens"` // by the model that answered
}

type keyRequests struct {
	Model string  `json:"model"` // asked for
	Code  string  `json:"code"`
	Count float64 `json:"count"`
}

type keyTokensDoc struct {
	Prompt     float64 `json:"prompt"`
	Completion float64 `json:"completion"`
}

func (h *Handler) renderKey(e auth.Entry, usage map[string]*usageDoc) keyDoc {
	d := keyDoc{Name: e.Name, Source: e.Source, State: "active", Ignored: e.Ignored, HashPrefix: e.Hash, Models: nonNil(e.Models),
		Priority: e.Priority, Limits: limitsDoc(e.Limits), UserLimits: limitsDoc(e.UserLimits)}
	if len(d.HashPrefix) > hashShown {
		d.HashPrefix = d.HashPrefix[:hashShown]
	}
	if d.Priority == "" {
		d.Priority = "interactive"
	}
	if t := e.ExpiresAt(); !t.IsZero() {
		d.Expires = &t
		if !h.now().Before(t) {
			d.State = "expired"
		}
	}
	if e.Ignored != "" {
		d.State = "ignored"
	}
	if !e.Created.IsZero() {
		d.Created = &e.Created
	}
	if !e.Rotated.IsZero() {
		d.Rotated = &e.Rotated
	}
	if e.Ignored == "" { // an ignored key's name counts its namesake's traffic
		d.Usage = usage[e.Name]
		if d.Usage == nil {
			d.Usage = &usageDoc{Requests: []keyRequests{}, Tokens: map[string]*keyTokensDoc{}}
		}
	}
	return d
}

func (h *Handler) listKeys(w http.ResponseWriter) {
	usage := h.keyUsage()
	docs := []keyDoc{}
	for _, e := range h.opt.Keys.Entries() {
		docs = append(docs, h.renderKey(e, usage))
	}
	writeJSON(w, http.StatusOK, mustJSON(struct {
		Store string   `json:"store"` // auth.store.kind
		Keys  []keyDoc `json:"keys"`
	}{h.opt.Config().Auth.Store.Kind, docs}))
}

// keyUsage reads the keys' counters, by key name.
func (h *Handler) keyUsage() map[string]*usageDoc {
	mfs, err := h.opt.Metrics.Gather()
	if err != nil {
		h.opt.Log.Warn("admin: gather metrics", "err", err) // what was gathered is still shown
	}
	out := map[string]*usageDoc{}
	of := func(key string) *usageDoc {
		u := out[key]
		if u == nil {
			u = &usageDoc{Requests: []keyRequests{}, Tokens: map[string]*keyTokensDoc{}}
			out[key] = u
		}
		return u
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case familyKeyRequests:
			for _, m := range mf.GetMetric() {
				l := labels(m)
				u := of(l["key"])
				u.Requests = append(u.Requests, keyRequests{Model: l["model"], Code: l["code"], Count: m.GetCounter().GetValue()})
			}
		case familyKeyTokens:
			for _, m := range mf.GetMetric() {
				l := labels(m)
				u := of(l["key"])
				t := u.Tokens[l["model"]]
				if t == nil {
					t = &keyTokensDoc{}
					u.Tokens[l["model"]] = t
				}
				switch l["kind"] {
				case "prompt":
					t.Prompt += m.GetCounter().GetValue()
				case "completion":
					t.Completion += m.GetCounter().GetValue()
				}
			}
		}
	}
	for _, u := range out {
		sort.Slice(u.Requests, func(i, j int) bool {
			a, b := u.Requests[i], u.Requests[j]
			return a.Model < b.Model || a.Model == b.Model && a.Code < b.Code
		})
	}
	return out
}

func labels(m *dto.Metric) map[string]string {
	l := make(map[string]string, len(m.GetLabel()))
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}

// keyRequest is the body of POST /admin/keys: a key's settings, as
// auth.keys[] takes them, without the hash (the gateway makes the
// secret).
type keyRequest struct {
	Name       string    `json:"name"`
	Models     []string  `json:"models"`
	Priority   string    `json:"priority"`
	Expires    string    `json:"expires"`
	Limits     limitsDoc `json:"limits"`
	UserLimits limitsDoc `json:"user_limits"`
}

// createKey makes a key in the store and answers it with its secret, the
// one time the secret is shown.
func (h *Handler) createKey(w http.ResponseWriter, r *http.Request) {
	var req keyRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxKeyBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		apierror.Write(w, apierror.Invalid("", "The body is not a key's settings: %v.", err))
		return
	}
	if !validKeyName(req.Name) {
		apierror.Write(w, apierror.Invalid("name", "A key's name is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or a digit; got %q.", req.Name))
		return
	}
	secret := auth.NewSecret()
	k := config.APIKey{Name: req.Name, Hash: auth.Hash(secret), Models: req.Models, Priority: req.Priority, Expires: req.Expires,
		Limits: config.KeyLimits(req.Limits), UserLimits: config.KeyLimits(req.UserLimits)}
	if ps := config.CheckKey("", k, h.knownModel); len(ps) > 0 {
		msgs := make([]string, len(ps))
		for i, p := range ps {
			msgs[i] = strings.TrimPrefix(p.Path, ".") + ": " + p.Message
		}
		apierror.Write(w, apierror.Invalid(strings.TrimPrefix(ps[0].Path, "."), "%s.", strings.Join(msgs, "; ")))
		return
	}
	if t := k.ExpiresAt(); !t.IsZero() && !h.now().Before(t) {
		apierror.Write(w, apierror.Invalid("expires", "%s is not in the future.", req.Expires))
		return
	}
	e, err := h.opt.Keys.Create(r.Context(), k)
	if err != nil {
		apierror.Write(w, h.keyError(err, req.Name))
		return
	}
	d := h.renderKey(e, nil)
	d.Secret = secret
	writeJSON(w, http.StatusCreated, mustJSON(d))
}

// knownModel reports whether a key may name n: a model, an alias or an
// automatic routing name.
func (h *Handler) knownModel(n string) bool {
	snap := h.opt.Core.Snapshot()
	if _, ok := snap.Catalog.Lookup(n); ok {
		return true
	}
	return n == config.ReservedModelName || slices.Contains(snap.AutoNames(), n)
}

// validKeyName: a name made here goes in URLs, logs and metric labels.
func validKeyName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i, c := range []byte(s) {
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}

func (h *Handler) revokeKey(w http.ResponseWriter, r *http.Request, name string) {
	if err := h.opt.Keys.Revoke(r.Context(), name); err != nil {
		apierror.Write(w, h.keyError(err, name))
		return
	}
	writeJSON(w, http.StatusOK, mustJSON(struct {
		Status string `json:"status"`
		Name   string `json:"name"`
	}{"revoked", name}))
}

// rotateKey gives the key a new secret, shown once; the old one stops
// working.
func (h *Handler) rotateKey(w http.ResponseWriter, r *http.Request, name string) {
	secret := auth.NewSecret()
	e, err := h.opt.Keys.Rotate(r.Context(), name, auth.Hash(secret))
	if err != nil {
		apierror.Write(w, h.keyError(err, name))
		return
	}
	d := h.renderKey(e, nil)
	d.Secret = secret
	writeJSON(w, http.StatusOK, mustJSON(d))
}

// keyError is the answer to a failed change of the key named name.
func (h *Handler) keyError(err error, name string) error {
	switch {
	case errors.Is(err, auth.ErrNoStore):
		return apierror.New(http.StatusNotImplemented, "key_store_none",
			"This gateway's API keys come from its config file (auth.keys): add one there (omnigate keys new makes one) and reload, or set auth.store to manage keys here.")
	case errors.Is(err, auth.ErrConfigKey):
		return apierror.New(http.StatusConflict, "key_in_config", "The key %s is in the config file (auth.keys): change it there and reload.", name)
	case errors.Is(err, auth.ErrExists):
		return apierror.New(http.StatusConflict, "key_exists", "A key named %s exists or did: a revoked key keeps its name.", name)
	case errors.Is(err, auth.ErrNotFound):
		return notFound(name)
	}
	h.opt.Log.Error("admin: key store", "key", name, "err", err)
	return apierror.New(http.StatusServiceUnavailable, "key_store_unavailable", "The key store failed: %v", err)
}

func notFound(name string) *apierror.Error {
	return apierror.New(http.StatusNotFound, "key_not_found", "No key named %s is in force.", name)
}

// allowMethods is allow for a path that takes several methods.
func allowMethods(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	if slices.Contains(methods, r.Method) || (r.Method == http.MethodHead && slices.Contains(methods, http.MethodGet)) {
		return true
	}
	allowed := slices.Clone(methods)
	if slices.Contains(methods, http.MethodGet) {
		allowed = slices.Insert(allowed, slices.Index(allowed, http.MethodGet)+1, http.MethodHead)
	}
	list := strings.Join(allowed, ", ")
	w.Header().Set("Allow", list)
	apierror.Write(w, apierror.New(http.StatusMethodNotAllowed, "method_not_allowed", "%s is not allowed on %s; use %s.", r.Method, r.URL.EscapedPath(), list))
	return false
}
