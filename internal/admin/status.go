package admin

import (
	"embed"
	"net/http"

	"github.com/omnigate/omnigate/internal/admission"
)

// statusDoc is GET /admin/status.json: the live state of every model and
// deployment, and the cumulative counters the page turns into rates and
// quantiles over its own window (the differences between its polls).
type statusDoc struct {
	// Time is the server's clock at the gather, in Unix seconds: the page
	// divides by differences of it, not of its own poll times.
	Time   float64       `json:"time"`
	Models []statusModel `json:"models"`
}

type statusModel struct {
	Model string `json:"model"`
	Tier  string `json:"tier,omitempty"`
	// InFlight is the sum of the deployments' in-flight requests.
	InFlight    int64              `json:"in_flight"`
	Admission   *statusAdmission   `json:"admission"` // null: admission is off
	Shadow      *shadowObject      `json:"shadow,omitempty"`
	Metrics     series             `json:"metrics"`
	Deployments []statusDeployment `json:"deployments"`
}

type statusAdmission struct {
	Limit    int `json:"limit"`
	InFlight int `json:"in_flight"`
	Queued   int `json:"queued"` // every priority
	MaxQueue int `json:"max_queue"`
}

type statusDeployment struct {
	Deployment string        `json:"deployment"`
	Kind       string        `json:"kind"`
	Health     string        `json:"health"`  // up, down, unchecked (never probed: the simulator, hosted APIs)
	Breaker    string        `json:"breaker"` // closed, open, half_open
	InFlight   int64         `json:"in_flight"`
	Load       float64       `json:"load"`
	Engine     *statusEngine `json:"engine"` // null: never scraped
	Metrics    series        `json:"metrics"`
}

type statusEngine struct {
	Running int      `json:"running"`
	Waiting int      `json:"waiting"`
	KVUsage *float64 `json:"kv_cache_usage"` // null: the engine does not say
	Stale   bool     `json:"stale"`
}

// status renders status.json.
func (h *Handler) status() []byte {
	mfs, err := h.opt.Metrics.Gather()
	if err != nil { // what was gathered is still good
		h.opt.Log.Warn("admin: gather metrics", "err", err)
	}
	ix := indexMetrics(mfs)
	doc := statusDoc{Time: float64(h.now().UnixMicro()) / 1e6, Models: []statusModel{}}
	byModel := map[string]*statusModel{}
	snap := h.opt.Core.Snapshot()
	for _, m := range h.opt.Core.Models() {
		sm := statusModel{Model: m.Model, Metrics: ix.model(m.Model), Deployments: []statusDeployment{}, Shadow: shadowOf(m)}
		if cm, ok := snap.Catalog.Lookup(m.Model); ok {
			sm.Tier = cm.Tier
		}
		if a := m.Admission; a != nil {
			sm.Admission = &statusAdmission{Limit: a.Limit, InFlight: a.InFlight, MaxQueue: a.MaxQueue,
				Queued: a.Queued[admission.Interactive] + a.Queued[admission.Batch]}
		}
		doc.Models = append(doc.Models, sm)
	}
	for i := range doc.Models {
		byModel[doc.Models[i].Model] = &doc.Models[i]
	}
	for _, d := range h.opt.Core.Deployments() {
		sm := byModel[d.Model]
		if sm == nil { // a reload between the two reads
			continue
		}
		sd := statusDeployment{Deployment: d.Deployment, Kind: d.Kind, Health: d.Health.String(), Breaker: d.Breaker.State.String(),
			InFlight: d.InFlight, Load: d.Load, Metrics: ix.deployment(d.Model, d.Deployment)}
		if e := d.Engine; e != nil {
			sd.Engine = &statusEngine{Running: e.Running, Waiting: e.Waiting, Stale: d.EngineStale}
			if kv := e.KVUsage; e.HasKV {
				sd.Engine.KVUsage = &kv
			}
		}
		sm.InFlight += d.InFlight
		sm.Deployments = append(sm.Deployments, sd)
	}
	return mustJSON(doc)
}

// The page: plain HTML, CSS and JavaScript, no build step and nothing
// fetched from elsewhere.
//
//go:embed static
var static embed.FS

// pageFile is one file of the page shell.
type pageFile struct {
	name, contentType string
}

// pageFiles are the page shell's paths: public, since they hold no data.
var pageFiles = map[string]pageFile{
	"/status":            {"static/status.html", "text/html; charset=utf-8"},
	"/status/status.js":  {"static/status.js", "text/javascript; charset=utf-8"},
	"/status/status.css": {"static/status.css", "text/css; charset=utf-8"},
}

// servePage sends one file of the shell. The policy keeps the page to its
// own origin: no script or style from elsewhere, fetches to itself only.
func servePage(w http.ResponseWriter, f pageFile) {
	b, err := static.ReadFile(f.name)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	w.Write(b)
}
