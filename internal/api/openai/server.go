// Package openai is the OpenAI-compatible HTTP front end: the wire and
// nothing else. It reads and parses request bodies, hands them to the
// request core (internal/dispatch), relays the answers (JSON or SSE, the
// original bytes) and renders errors in OpenAI's shape.
package openai

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/dispatch"
	"github.com/omnigate/omnigate/internal/jobs"
	"github.com/omnigate/omnigate/internal/relay"
	"github.com/omnigate/omnigate/internal/request"
	"github.com/omnigate/omnigate/internal/telemetry"
)

// Options configure a Server. Core and Metrics are required.
type Options struct {
	Core    *dispatch.Core
	Metrics *telemetry.Metrics
	// NoMetrics: GET /metrics is an unknown URL (404), for an API
	// listener that is public while the metrics (model and key names)
	// are not; the requests are counted all the same.
	NoMetrics    bool
	MaxBodyBytes int64
	// MaxBufferedBytes bounds the request-body bytes the process holds at
	// once; a body that finds no room is answered 503. 0: no bound.
	MaxBufferedBytes int64
	// ReadTimeout bounds reading one request body; a slower one is
	// answered 408. 0: no bound.
	ReadTimeout time.Duration
	// HalfCloseWindow: see halfclose.go; DefaultHalfCloseWindow when 0.
	HalfCloseWindow time.Duration
	Log             *slog.Logger
	// Now is the clock; the core's when nil.
	Now func() time.Time
	// Jobs serves background jobs, files and batches; nil: they are off.
	Jobs *jobs.Service
	// MaxFileBytes bounds an uploaded file (jobs.max_file_bytes).
	MaxFileBytes int64
}

// Server is the HTTP handler for the whole API surface.
type Server struct {
	opt     Options
	models  atomic.Pointer[modelList] // rendered for the current snapshot
	now     func() time.Time
	ids     request.IDs
	views   sync.Pool // *request.Request
	streams relay.Streams
}

// NewServer builds the handler.
func NewServer(opt Options) *Server {
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.MaxBodyBytes <= 0 {
		opt.MaxBodyBytes = 32 << 20
	}
	if opt.HalfCloseWindow <= 0 {
		opt.HalfCloseWindow = DefaultHalfCloseWindow
	}
	s := &Server{opt: opt, now: opt.Now, streams: relay.Streams{Core: opt.Core, Log: opt.Log}}
	if s.now == nil {
		s.now = opt.Core.Now
	}
	s.views.New = func() any { return new(request.Request) }
	s.ids.Init()
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
	reqID := s.requestID(w, r)
	switch p := r.URL.EscapedPath(); p {
	case "/v1/models":
		if !allowGet(w, r) || !s.keyed(w, r, reqID) {
			return
		}
		writeJSON(w, http.StatusOK, s.modelList().all)
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
		if s.opt.NoMetrics {
			notFound(w, r, p)
			return
		}
		if !allowGet(w, r) {
			return
		}
		s.opt.Metrics.Handler().ServeHTTP(w, r)
	default:
		if s.serveJobs(w, r, p, reqID) {
			return
		}
		if strings.HasPrefix(p, "/v1/models/") {
			if !allowGet(w, r) || !s.keyed(w, r, reqID) {
				return
			}
			// The escaped path has the prefix, so the decoded one does:
			// the rest is the model name, %2F and all decoded.
			id := strings.TrimPrefix(r.URL.Path, "/v1/models/")
			if b, ok := s.modelList().byID[id]; ok {
				writeJSON(w, http.StatusOK, b)
				return
			}
			snap := s.opt.Core.Snapshot()
			_, _, err := snap.Router.Route(&request.Request{Model: id}, nil, nil)
			apierror.Write(w, err)
			return
		}
		notFound(w, r, p)
	}
}

// notFound answers a path the API does not serve.
func notFound(w http.ResponseWriter, r *http.Request, path string) {
	apierror.Write(w, apierror.New(http.StatusNotFound, "unknown_url", "Unknown request URL: %s %s.", r.Method, path))
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
	down := s.opt.Core.Unready()
	if len(down) == 0 {
		writeJSON(w, http.StatusOK, []byte(`{"status":"ready"}`+"\n"))
		return
	}
	b, _ := json.Marshal(map[string]any{"status": "not ready", "models_without_deployment": down})
	writeJSON(w, http.StatusServiceUnavailable, append(b, '\n'))
}

// modelObject is the OpenAI model object, with omnigate's extra fields
// (ignored by SDKs) saying which tier a name is ("auto" for a name that
// routes automatically) and what it aliases.
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

// modelList is /v1/models and /v1/models/{id}, rendered once per snapshot.
type modelList struct {
	snap *dispatch.Snapshot
	all  []byte
	byID map[string][]byte
}

// modelList returns the listing for the current snapshot, rendering it
// when the snapshot changed.
func (s *Server) modelList() *modelList {
	snap := s.opt.Core.Snapshot()
	if l := s.models.Load(); l != nil && l.snap == snap {
		return l
	}
	l := renderModels(snap, s.opt.Core.Now().Unix())
	s.models.Store(l)
	return l
}

func renderModels(snap *dispatch.Snapshot, created int64) *modelList {
	l := &modelList{snap: snap, byID: make(map[string][]byte)}
	var list []modelObject
	for _, m := range snap.Catalog.Models() {
		o := modelObject{ID: m.Name, Object: "model", Created: created, OwnedBy: "omnigate", Tier: m.Tier,
			Aliases: m.Aliases, Context: m.ContextWindow, Input: m.Input.Names(), Output: m.Output.Names(),
			MaxToken: m.Limits.MaxTokens}
		list = append(list, o)
		l.byID[m.Name] = mustJSON(o)
		for _, a := range m.Aliases {
			ao := o
			ao.ID, ao.AliasOf, ao.Aliases = a, m.Name, nil
			list = append(list, ao)
			l.byID[a] = mustJSON(ao)
		}
	}
	for _, n := range snap.AutoNames() {
		o := modelObject{ID: n, Object: "model", Created: created, OwnedBy: "omnigate", Tier: "auto"}
		list = append(list, o)
		l.byID[n] = mustJSON(o)
	}
	l.all = mustJSON(struct {
		Object string        `json:"object"`
		Data   []modelObject `json:"data"`
	}{"list", list})
	return l
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}
