// Package router decides which models may serve a request, in order: the
// one named (directly or by alias), then its fallback chain.
package router

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/catalog"
	"github.com/omnigate/omnigate/internal/request"
)

// Router resolves model names to a chain of models to try in order.
type Router struct {
	cat    *catalog.Catalog
	chains map[*catalog.Model][]*catalog.Model
}

// New builds the chains from the fallbacks map (public name → names to try
// next). Names must resolve in the catalog; config validation checks that.
func New(cat *catalog.Catalog, fallbacks map[string][]string) (*Router, error) {
	r := &Router{cat: cat, chains: make(map[*catalog.Model][]*catalog.Model)}
	for _, m := range cat.Models() {
		chain := []*catalog.Model{m}
		for _, name := range fallbacks[m.Name] {
			fm, ok := cat.Lookup(name)
			if !ok {
				return nil, fmt.Errorf("routing.fallbacks.%s: unknown model %q", m.Name, name)
			}
			if !containsModel(chain, fm) {
				chain = append(chain, fm)
			}
		}
		r.chains[m] = chain
	}
	return r, nil
}

// Route returns the models to try for a request, the one it names first.
func (r *Router) Route(req *request.Request) ([]*catalog.Model, error) {
	return r.Resolve(req.Model)
}

// Resolve returns the models to try for a public name or alias, that model
// first. An unknown name is a 404 whose message lists the available names.
func (r *Router) Resolve(name string) ([]*catalog.Model, error) {
	m, ok := r.cat.Lookup(name)
	if !ok {
		e := apierror.New(http.StatusNotFound, "model_not_found",
			"The model %q does not exist. Available models: %s.", name, strings.Join(r.cat.Names(), ", "))
		e.Param = "model"
		return nil, e
	}
	return r.chains[m], nil
}

func containsModel(s []*catalog.Model, m *catalog.Model) bool {
	for _, x := range s {
		if x == m {
			return true
		}
	}
	return false
}
