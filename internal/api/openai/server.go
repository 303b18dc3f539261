// Package openai serves the OpenAI-compatible HTTP API: it reads the few
// fields it needs from each request, validates them against the model's
// limits, picks a model and a replica, and relays the upstream answer —
// forwarding the original bytes rather than re-encoding them.
package openai

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/balance"
	"github.com/omnigate/omnigate/internal/catalog"
	"github.com/omnigate/omnigate/internal/request"
	"github.com/omnigate/omnigate/internal/router"
	"github.com/omnigate/omnigate/internal/telemetry"
)

// Options configure a Server. Catalog, Router, Pools and Metrics are required.
type Options struct {
	Catalog *catalog.Catalog
	Router  *router.Router
	// Pools holds each model's replicas, indexed by catalog.Model.Index.
	Pools        []*balance.Pool
	Metrics      *telemetry.Metrics
	MaxBodyBytes int64
	Log          *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Server is the HTTP handler for the whole API surface.
type Server struct {
	opt     Options
	mm      []*telemetry.ModelMetrics // by model Index
	models  []byte                    // the /v1/models body, built once
	modelBy map[string][]byte         // /v1/models/{id} bodies
	ids     requestIDs
	reqs    sync.Pool // *request.Request
}

// NewServer builds the handler.
func NewServer(opt Options) *Server {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.MaxBodyBytes <= 0 {
		opt.MaxBodyBytes = 32 << 20
	}
	s := &Server{opt: opt, modelBy: make(map[string][]byte)}
	s.reqs.New = func() any { return new(request.Request) }
	for _, m := range opt.Catalog.Models() {
		s.mm = append(s.mm, opt.Metrics.Model(m.Name))
	}
	s.buildModelList(opt.Now().Unix())
	s.ids.init()
	return s
}

// ServeHTTP routes by path. A switch beats a pattern mux on the hot path and
// keeps every unknown path in the OpenAI error shape. The model endpoints
// are served from a shallow, small frame: a stream parks its goroutine for
// minutes, and every byte of stack under it is paid per open stream.
//
// Routing reads the path as the client wrote it: /v1/chat%2Fcompletions is
// not /v1/chat/completions (a proxy in front may route, filter or log the
// two differently), so only the exact spellings match.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.EscapedPath() {
	case "/v1/chat/completions":
		s.proxy(w, r, request.Chat)
	case "/v1/completions":
		s.proxy(w, r, request.Completions)
	case "/v1/embeddings":
		s.proxy(w, r, request.Embeddings)
	default:
		s.serveInfo(w, r)
	}
}

// serveInfo serves the GET endpoints and the unknown paths. Every answer
// carries an X-Request-Id, as the model endpoints' do.
func (s *Server) serveInfo(w http.ResponseWriter, r *http.Request) {
	s.setRequestID(w, r)
	switch p := r.URL.EscapedPath(); p {
	case "/v1/models":
		if !allowGet(w, r) {
			return
		}
		writeJSON(w, http.StatusOK, s.models)
	case "/healthz":
		if !allowGet(w, r) {
			return
		}
		writeJSON(w, http.StatusOK, []byte(`{"status":"ok"}`+"\n"))
	case "/readyz":
		if !allowGet(w, r) {
			return
		}
		s.ready(w)
	case "/metrics":
		if !allowGet(w, r) {
			return
		}
		s.opt.Metrics.Handler().ServeHTTP(w, r)
	default:
		if strings.HasPrefix(p, "/v1/models/") {
			if !allowGet(w, r) {
				return
			}
			// The escaped path has the prefix, so the decoded one does:
			// the rest is the model name, %2F and all decoded.
			id := strings.TrimPrefix(r.URL.Path, "/v1/models/")
			if b, ok := s.modelBy[id]; ok {
				writeJSON(w, http.StatusOK, b)
				return
			}
			_, err := s.opt.Router.Route(id)
			apierror.Write(w, err)
			return
		}
		apierror.Write(w, apierror.New(http.StatusNotFound, "unknown_url", "Unknown request URL: %s %s.", r.Method, p))
	}
}

// setRequestID echoes a valid client X-Request-Id, else sets a new one.
func (s *Server) setRequestID(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("X-Request-Id")
	if !validRequestID(id) {
		id = s.ids.next()
	}
	w.Header().Set("X-Request-Id", id)
}

func allowGet(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	apierror.Write(w, apierror.New(http.StatusMethodNotAllowed, "method_not_allowed", "%s is not allowed on %s; use GET.", r.Method, r.URL.EscapedPath()))
	return false
}

func writeJSON(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

// ready answers 200 when every model has at least one usable deployment.
func (s *Server) ready(w http.ResponseWriter) {
	now := s.opt.Now()
	var down []string
	for _, m := range s.opt.Catalog.Models() {
		if !s.opt.Pools[m.Index].Usable(now) {
			down = append(down, m.Name)
		}
	}
	if len(down) == 0 {
		writeJSON(w, http.StatusOK, []byte(`{"status":"ready"}`+"\n"))
		return
	}
	b, _ := json.Marshal(map[string]any{"status": "not ready", "models_without_deployment": down})
	writeJSON(w, http.StatusServiceUnavailable, append(b, '\n'))
}

// modelObject is the OpenAI model object, with omnigate's extra fields
// (ignored by SDKs) saying which tier a name is and what it aliases.
type modelObject struct {
	ID       string   `json:"id"`
	Object   string   `json:"object"`
	Created  int64    `json:"created"`
	OwnedBy  string   `json:"owned_by"`
	Tier     string   `json:"tier,omitempty"`
	AliasOf  string   `json:"alias_of,omitempty"`
	Aliases  []string `json:"aliases,omitempty"`
	Context  int      `json:"context_window,omitempty"`
	Input    []string `json:"input_modalities,omitempty"`
	Output   []string `json:"output_modalities,omitempty"`
	MaxToken int      `json:"max_tokens,omitempty"`
}

func (s *Server) buildModelList(created int64) {
	var list []modelObject
	for _, m := range s.opt.Catalog.Models() {
		o := modelObject{ID: m.Name, Object: "model", Created: created, OwnedBy: "omnigate", Tier: m.Tier,
			Aliases: m.Aliases, Context: m.ContextWindow, Input: modalityNames(m.Input), Output: modalityNames(m.Output),
			MaxToken: m.Limits.MaxTokens}
		list = append(list, o)
		s.modelBy[m.Name] = mustJSON(o)
		for _, a := range m.Aliases {
			ao := o
			ao.ID, ao.AliasOf, ao.Aliases = a, m.Name, nil
			list = append(list, ao)
			s.modelBy[a] = mustJSON(ao)
		}
	}
	s.models = mustJSON(struct {
		Object string        `json:"object"`
		Data   []modelObject `json:"data"`
	}{"list", list})
}

func modalityNames(set catalog.Modalities) []string {
	var out []string
	for _, m := range []catalog.Modality{catalog.Text, catalog.Image, catalog.Audio, catalog.Video} {
		if set.Has(m) {
			out = append(out, m.String())
		}
	}
	return out
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}
