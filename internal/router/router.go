// Package router decides which models may serve a request, in order: the
// one named (directly or by alias), or for an auto name the tier the
// request's features call for (auto.go), then its fallback chain.
package router

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/catalog"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/request"
	"github.com/omnigate/omnigate/internal/resilience"
)

// Router resolves model names to a chain of models to try in order.
type Router struct {
	cat    *catalog.Catalog
	chains map[*catalog.Model][]catalog.Link
	auto   *auto           // nil: no two tiers to choose from
	names  map[string]bool // the auto names
}

// New builds the chains from the fallbacks map (public name → models to
// try next, each for its error classes; none listed: all) and the auto
// router from rc.Auto. A chain is the model's own list, not its
// fallbacks' too. Names must resolve in the catalog; config validation
// checks that.
func New(cat *catalog.Catalog, rc config.Routing) (*Router, error) {
	fallbacks := rc.Fallbacks
	r := &Router{cat: cat, chains: make(map[*catalog.Model][]catalog.Link), names: map[string]bool{config.ReservedModelName: true}}
	for _, n := range rc.Auto.Names {
		r.names[n] = true
	}
	scorer, err := LoadScorer(rc.Auto.Scorer.File)
	if err != nil {
		return nil, fmt.Errorf("routing.auto.scorer.file: %w", err)
	}
	if r.auto, err = newAuto(cat, rc.Auto, scorer); err != nil {
		return nil, err
	}
	for _, m := range cat.Models() {
		chain := []catalog.Link{{Model: m, On: resilience.AnyClass}}
		for _, f := range fallbacks[m.Name] {
			fm, ok := cat.Lookup(f.Model)
			if !ok {
				return nil, fmt.Errorf("routing.fallbacks.%s: unknown model %q", m.Name, f.Model)
			}
			on := resilience.AnyClass
			if len(f.On) > 0 {
				on = 0
				for _, name := range f.On {
					c := resilience.ParseClass(name)
					if c == 0 {
						return nil, fmt.Errorf("routing.fallbacks.%s: unknown error class %q", m.Name, name)
					}
					on |= c
				}
			}
			if !containsModel(chain, fm) {
				chain = append(chain, catalog.Link{Model: fm, On: on})
			}
		}
		r.chains[m] = chain
	}
	return r, nil
}

// Route returns the models to try for a request, the one it names
// first; for an auto name, the tier chosen first and why (see
// auto.choose), which is "" otherwise. body and h are the request's
// bytes and headers (nil: none), which automatic routing reads.
func (r *Router) Route(req *request.Request, body []byte, h http.Header) ([]catalog.Link, string, error) {
	if !r.names[req.Model] {
		chain, err := r.Resolve(req.Model)
		return chain, "", err
	}
	if r.auto == nil {
		return nil, "", errNoAuto(req.Model)
	}
	f := Extract(req, body, h)
	m, why := r.auto.choose(req, &f)
	return r.chains[m], why, nil
}

// Tiers returns the small and the large tier automatic routing chooses
// between; nil, nil when there are not two.
func (r *Router) Tiers() (small, large *catalog.Model) {
	if r.auto == nil {
		return nil, nil
	}
	return r.auto.small, r.auto.large
}

// IsAuto reports whether name routes automatically.
func (r *Router) IsAuto(name string) bool { return r.names[name] }

// AutoNames returns the auto names, sorted, when there are two tiers to
// choose from; else none.
func (r *Router) AutoNames() []string {
	if r.auto == nil {
		return nil
	}
	var out []string
	for n := range r.names {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Resolve returns the models to try for a public name or alias, that model
// first. An unknown name is a 404 whose message lists the available names.
func (r *Router) Resolve(name string) ([]catalog.Link, error) {
	m, ok := r.cat.Lookup(name)
	if !ok {
		e := apierror.New(http.StatusNotFound, "model_not_found",
			"The model %q does not exist. Available models: %s.", name, strings.Join(r.cat.Names(), ", "))
		e.Param = "model"
		return nil, e
	}
	return r.chains[m], nil
}

func containsModel(s []catalog.Link, m *catalog.Model) bool {
	for _, x := range s {
		if x.Model == m {
			return true
		}
	}
	return false
}
