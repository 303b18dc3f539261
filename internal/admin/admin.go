// Package admin is the admin API and the live status page, served on a
// listener of their own (server.admin_addr), never on the API port: they
// show the configuration, the replicas' state and the metrics, and can
// reload the configuration.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/dispatch"
)

// Options configure a Handler. Core, Metrics and Config are required.
type Options struct {
	Core *dispatch.Core
	// Metrics is the gateway's registry: served at /metrics and read by
	// /admin/status.json for rates and latency quantiles.
	Metrics prometheus.Gatherer
	// Config returns the effective configuration (defaults applied), which
	// a reload replaces.
	Config func() *config.Config
	Build  Build
	// Reload reads the configuration again and swaps it in; nil: POST
	// /admin/reload answers 501.
	Reload func(context.Context) error
	// Purge drops the cached answers of model ("" every model) in scope
	// ("" every scope) and returns how many; nil: POST /admin/cache/purge
	// answers 501.
	Purge func(ctx context.Context, model, scope string) (int, error)
	// Keys are the API keys /admin/keys lists and changes; nil: it
	// answers 501.
	Keys Keys
	// Token, when set, is the bearer token every path but the page shell
	// needs.
	Token string
	Log   *slog.Logger
	// Now is the clock of status.json; the core's when nil.
	Now func() time.Time
}

// Handler serves the admin API, /metrics and the status page.
type Handler struct {
	opt     Options
	token   [sha256.Size]byte // of opt.Token, so the comparison takes the same time whatever its length
	metrics http.Handler
	now     func() time.Time
}

// New builds the handler.
func New(opt Options) *Handler {
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	h := &Handler{opt: opt, now: opt.Now,
		metrics: promhttp.HandlerFor(opt.Metrics, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(opt.Log.Handler(), slog.LevelWarn)})}
	if h.now == nil {
		h.now = opt.Core.Now
	}
	if opt.Token != "" {
		h.token = sha256.Sum256([]byte(opt.Token))
	}
	return h
}

// ServeHTTP routes by path. The page shell is public (it holds no data:
// the data comes from status.json, which needs the token); everything
// else needs the token when one is set, unknown paths included, so that
// without it nothing tells which paths exist.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.EscapedPath()
	if page, ok := pageFiles[p]; ok {
		if allow(w, r, http.MethodGet) {
			servePage(w, page)
		}
		return
	}
	if !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", "Bearer")
		apierror.Write(w, apierror.New(http.StatusUnauthorized, "invalid_admin_token",
			"The admin API needs a bearer token: send Authorization: Bearer and the token held by the variable server.admin_token_env names."))
		return
	}
	switch p {
	case "/admin/deployments":
		if allow(w, r, http.MethodGet) {
			writeJSON(w, http.StatusOK, renderDeployments(h.opt.Core.Deployments(), h.opt.Core.Models()))
		}
	case "/admin/models":
		if allow(w, r, http.MethodGet) {
			writeJSON(w, http.StatusOK, renderModels(h.opt.Core.Snapshot().Catalog.Models(), h.opt.Config().Routing.Fallbacks))
		}
	case "/admin/config":
		if allow(w, r, http.MethodGet) {
			h.serveConfig(w, r)
		}
	case "/admin/build":
		if allow(w, r, http.MethodGet) {
			writeJSON(w, http.StatusOK, mustJSON(h.opt.Build))
		}
	case "/admin/status.json":
		if allow(w, r, http.MethodGet) {
			writeJSON(w, http.StatusOK, h.status())
		}
	case "/admin/cache/purge":
		if allow(w, r, http.MethodPost) {
			h.purge(w, r)
		}
	case "/admin/reload":
		if allow(w, r, http.MethodPost) {
			h.reload(w, r)
		}
	case "/metrics":
		if allow(w, r, http.MethodGet) {
			h.metrics.ServeHTTP(w, r)
		}
	case "/admin/keys":
		h.serveKeys(w, r, "")
	default:
		if rest, ok := strings.CutPrefix(p, "/admin/keys/"); ok && rest != "" {
			h.serveKeys(w, r, rest)
			return
		}
		apierror.Write(w, apierror.New(http.StatusNotFound, "unknown_url", "Unknown request URL: %s %s.", r.Method, p))
	}
}

// authorized reports whether r carries the token, or none is needed.
func (h *Handler) authorized(r *http.Request) bool {
	if h.opt.Token == "" {
		return true
	}
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(got[:], h.token[:]) == 1
}

// serveConfig answers the effective config, secrets redacted, as JSON or
// (?format=yaml) YAML.
func (h *Handler) serveConfig(w http.ResponseWriter, r *http.Request) {
	format := r.URL.Query().Get("format")
	if format != "" && format != "json" && format != "yaml" {
		e := apierror.Invalid("format", "format %q is not json or yaml.", format)
		apierror.Write(w, e)
		return
	}
	doc, err := redactedConfig(h.opt.Config())
	if err != nil {
		h.opt.Log.Error("admin: render config", "err", err)
		apierror.Write(w, err)
		return
	}
	if format == "yaml" {
		b, err := doc.yaml()
		if err != nil {
			apierror.Write(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(b)
		return
	}
	writeJSON(w, http.StatusOK, doc.json())
}

// purge drops cached answers: ?model= (a model's public name; absent:
// all) and ?scope= (absent: all scopes; a scope is written as the cache
// keys it: "key:Bearer …" or "user:…").
func (h *Handler) purge(w http.ResponseWriter, r *http.Request) {
	if h.opt.Purge == nil {
		apierror.Write(w, apierror.New(http.StatusNotImplemented, "cache_unsupported", "This gateway has no cache."))
		return
	}
	q := r.URL.Query()
	model := q.Get("model")
	if m, ok := h.opt.Core.Snapshot().Catalog.Lookup(model); model != "" && (!ok || m.Name != model) {
		apierror.Write(w, apierror.Invalid("model", "%q is not a model's name (an alias will not do: answers are kept under the name).", model))
		return
	}
	n, err := h.opt.Purge(r.Context(), model, q.Get("scope"))
	if err != nil {
		apierror.Write(w, apierror.New(http.StatusBadGateway, "cache_store_failed", "Purged %d answers; the shared store failed: %v", n, err))
		return
	}
	writeJSON(w, http.StatusOK, mustJSON(map[string]any{"status": "purged", "purged": n}))
}

// reload runs opt.Reload (which logs the outcome). A config that cannot
// be read, decoded or validated is the caller's to fix (400); anything
// else is the gateway's (500). Either way the message is the reason: the
// admin API's callers are operators.
func (h *Handler) reload(w http.ResponseWriter, r *http.Request) {
	if h.opt.Reload == nil {
		apierror.Write(w, apierror.New(http.StatusNotImplemented, "reload_unsupported", "This gateway has no configuration source to reload from."))
		return
	}
	err := h.opt.Reload(r.Context())
	if err == nil {
		writeJSON(w, http.StatusOK, []byte(`{"status":"reloaded"}`+"\n"))
		return
	}
	status := http.StatusInternalServerError
	var ve *config.ValidationError
	var de *config.DecodeError
	var pe *fs.PathError
	if errors.As(err, &ve) || errors.As(err, &de) || errors.As(err, &pe) {
		status = http.StatusBadRequest
	}
	e := apierror.New(status, "reload_failed", "%s", err.Error())
	apierror.Write(w, e)
}

// allow reports whether r's method is method (or HEAD for GET), and
// answers 405 otherwise.
func allow(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Method == method || (method == http.MethodGet && r.Method == http.MethodHead) {
		return true
	}
	allowed := method
	if method == http.MethodGet {
		allowed = "GET, HEAD"
	}
	w.Header().Set("Allow", allowed)
	apierror.Write(w, apierror.New(http.StatusMethodNotAllowed, "method_not_allowed", "%s is not allowed on %s; use %s.", r.Method, r.URL.EscapedPath(), method))
	return false
}

// writeJSON sends b; admin answers are live state, never to be cached.
func writeJSON(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}

var _ http.Handler = (*Handler)(nil)
