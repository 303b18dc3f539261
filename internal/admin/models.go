package admin

import (
	"github.com/omnigate/omnigate/internal/catalog"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/resilience"
)

// adminModel is one model of GET /admin/models: what a client may ask of
// it and where it is served, by deployment name and kind only (no URLs,
// keys or upstream names).
type adminModel struct {
	Name          string             `json:"name"`
	Tier          string             `json:"tier,omitempty"`
	Aliases       []string           `json:"aliases"`
	ContextWindow int                `json:"context_window"`
	Capabilities  capabilitiesObject `json:"capabilities"`
	Limits        limitsObject       `json:"limits"`
	Deployments   []deploymentRef    `json:"deployments"`
	// Fallbacks is the model's routing.fallbacks chain, in order.
	Fallbacks []fallbackObject `json:"fallbacks"`
}

type capabilitiesObject struct {
	Input     []string `json:"input"`
	Output    []string `json:"output"`
	Endpoints []string `json:"endpoints"`
}

type limitsObject struct {
	MaxTokens   int         `json:"max_tokens"` // 0: none beyond the context window
	Temperature *[2]float64 `json:"temperature"`
	TopP        *[2]float64 `json:"top_p"`
	MaxN        int         `json:"max_n"`
	// Media is the most parts of each kind a request may carry; null: no
	// limit, 0: not accepted.
	Media       map[string]*int `json:"media"`
	OnViolation string          `json:"on_violation"`
}

type deploymentRef struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Weight int    `json:"weight"`
}

// fallbackObject is one model of a chain and the error classes that lead
// to it; every class when the config lists none.
type fallbackObject struct {
	Model string   `json:"model"`
	On    []string `json:"on"`
}

// renderModels is the body of GET /admin/models.
func renderModels(models []*catalog.Model, fallbacks map[string][]config.Fallback) []byte {
	out := struct {
		Object string       `json:"object"`
		Data   []adminModel `json:"data"`
	}{Object: "list", Data: []adminModel{}}
	for _, m := range models {
		l := m.Limits
		o := adminModel{Name: m.Name, Tier: m.Tier, Aliases: nonNil(m.Aliases), ContextWindow: m.ContextWindow,
			Capabilities: capabilitiesObject{Input: nonNil(m.Input.Names()), Output: nonNil(m.Output.Names()), Endpoints: nonNil(m.Endpoints)},
			Limits: limitsObject{MaxTokens: l.MaxTokens, Temperature: rangeOf(l.Temperature), TopP: rangeOf(l.TopP), MaxN: l.MaxN,
				Media:       map[string]*int{"image": l.Media.Image, "audio": l.Media.Audio, "video": l.Media.Video},
				OnViolation: l.OnViolation},
			Deployments: []deploymentRef{}, Fallbacks: []fallbackObject{}}
		for _, d := range m.Deployments {
			o.Deployments = append(o.Deployments, deploymentRef{Name: d.Name, Kind: d.Kind, Weight: max(d.Weight, 1)})
		}
		for _, f := range fallbacks[m.Name] {
			on := f.On
			if len(on) == 0 {
				on = resilience.ClassNames()
			}
			o.Fallbacks = append(o.Fallbacks, fallbackObject{Model: f.Model, On: on})
		}
		out.Data = append(out.Data, o)
	}
	return mustJSON(out)
}

func rangeOf(r *config.Range) *[2]float64 {
	if r == nil {
		return nil
	}
	return &[2]float64{r.Min, r.Max}
}

// nonNil makes an empty list [] in JSON rather than null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
