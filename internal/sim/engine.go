// Package sim is omnigate's built-in engine simulator: a model of a
// vLLM-style engine (continuous batching, prefill and decode costs, a KV
// cache with preemption, a waiting queue, vLLM's /metrics) behind the OpenAI
// HTTP API, with fault injection, so routing, batching and failure handling
// can be developed and measured without GPUs.
package sim

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/clock"
)

// maxBodyBytes bounds a request body; media parts may carry base64 data.
const maxBodyBytes = 64 << 20

// Options configure an Engine beyond its profile.
type Options struct {
	// Clock is the time source; default the wall clock.
	Clock clock.Clock
	// Faults is the engine-wide fault injection; requests can override it
	// with X-Sim-* headers.
	Faults Faults
	// ModelName is the model name served and reported; default the profile's name.
	ModelName string
	// Quantization makes the engine a quantized variant of the profile's
	// model (see QuantizationFor); zero: the profile as it is.
	Quantization Quantization
}

// Engine is one simulated engine: a scheduler and its HTTP API.
type Engine struct {
	p        Profile
	name     string
	clock    clock.Clock
	dice     *faultDice
	metrics  *metrics
	sched    *scheduler // nil for a zero-latency profile
	slowdown factor     // engine-wide step-time factor, see SetSlowdown
	quant    Quantization
	fits     func(tokens int) bool
	created  int64

	idBase uint64
	ids    atomic.Uint64

	closed    chan struct{}
	closeOnce sync.Once
	handler   http.Handler
}

// New starts an engine for p. Close stops it.
func New(p Profile, opts Options) *Engine {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.ModelName == "" {
		opts.ModelName = p.Name
	}
	opts.Quantization.apply(&p)
	e := &Engine{
		quant:   opts.Quantization,
		p:       p,
		name:    opts.ModelName,
		clock:   opts.Clock,
		dice:    newFaultDice(opts.Faults),
		metrics: newMetrics(opts.ModelName),
		created: opts.Clock.Now().Unix(),
		idBase:  rand.Uint64(),
		closed:  make(chan struct{}),
	}
	c := newCore(p) // immutable parts only, for the fit check
	e.fits = c.fits
	if !p.zeroLatency() {
		e.sched = newScheduler(p, e.clock, e.metrics, &e.slowdown)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) { e.serveGen(w, r, true) })
	mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) { e.serveGen(w, r, false) })
	mux.HandleFunc("POST /v1/embeddings", e.serveEmbeddings)
	mux.HandleFunc("GET /v1/models", e.serveModels)
	mux.HandleFunc("GET /health", e.serveHealth)
	// Ollama's liveness answer, for gateways that check an Ollama-dialect
	// deployment the way they would check Ollama.
	mux.HandleFunc("GET /api/version", func(w http.ResponseWriter, r *http.Request) {
		if e.isClosed() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"version":"0.0.0-omnigate-sim"}`)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(e.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /sim/slowdown", e.serveSlowdown)
	mux.HandleFunc("POST /sim/slowdown", e.serveSlowdown)
	e.handler = mux
	return e
}

// Handler serves /v1/chat/completions, /v1/completions, /v1/embeddings,
// /v1/models, /metrics, /health, Ollama's /api/version and the simulator's
// control /sim/slowdown (see SetSlowdown).
func (e *Engine) Handler() http.Handler { return e.handler }

// Close stops the scheduler; in-flight requests get a 503 (or an error
// event, when their stream has started). It is safe to call more than once.
func (e *Engine) Close() {
	e.closeOnce.Do(func() {
		close(e.closed)
		if e.sched != nil {
			e.sched.close()
		}
	})
}

func (e *Engine) isClosed() bool {
	select {
	case <-e.closed:
		return true
	default:
		return false
	}
}

// newID returns a unique response id with the given prefix.
func (e *Engine) newID(prefix string) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], e.idBase)
	binary.BigEndian.PutUint64(b[8:], e.ids.Add(1))
	out := make([]byte, len(prefix)+32)
	copy(out, prefix)
	hex.Encode(out[len(prefix):], b[:])
	return string(out)
}

// knownModel reports whether a request's model names this engine; vLLM
// answers 404 otherwise. An empty name means the default model.
func (e *Engine) knownModel(m string) bool { return m == "" || m == e.name || m == e.p.Name }

func modelNotFound(m string) *apierror.Error {
	return &apierror.Error{Status: http.StatusNotFound, Type: apierror.TypeNotFound, Param: "model", Message: "The model `" + m + "` does not exist."}
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if asMaxBytes(err, &tooBig) {
			return nil, apierror.New(http.StatusRequestEntityTooLarge, "", "request body larger than %d bytes", tooBig.Limit)
		}
		return nil, apierror.Invalid("", "reading the request body: %v", err)
	}
	return b, nil
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		apierror.Write(w, err)
		return
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.Write(b)
}

func (e *Engine) serveHealth(w http.ResponseWriter, r *http.Request) {
	if e.isClosed() {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (e *Engine) serveModels(w http.ResponseWriter, r *http.Request) {
	type model struct {
		ID          string  `json:"id"`
		Object      string  `json:"object"`
		Created     int64   `json:"created"`
		OwnedBy     string  `json:"owned_by"`
		Root        string  `json:"root"`
		Parent      *string `json:"parent"`
		MaxModelLen int     `json:"max_model_len"`
	}
	writeJSON(w, struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}{"list", []model{{ID: e.name, Object: "model", Created: e.created, OwnedBy: "omnigate-sim", Root: e.p.Name, MaxModelLen: e.p.MaxModelLen}}})
}

// wait sleeps d on the engine's clock; it returns false if ctx ended first.
func (e *Engine) wait(done <-chan struct{}, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	select {
	case <-e.clock.After(d):
		return true
	case <-done:
		return false
	}
}
