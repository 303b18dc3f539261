package router

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/catalog"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/request"
)

// auto chooses between two tiers for the requests to its names.
type auto struct {
	small, large *catalog.Model
	rules        []rule
	scorer       *Scorer // nil: none
	threshold    float64
}

// rule is a compiled config.Rule.
type rule struct {
	conds []cond
	large bool
	why   string // "rule:N"
}

type cond struct {
	feature int // index into featureNames
	c       config.Cond
}

// newAuto compiles the auto config over cat; nil when cat has no two
// tiers to choose between (auto then answers 404 as an unknown model).
func newAuto(cat *catalog.Catalog, a config.Auto, scorer *Scorer) (*auto, error) {
	pick := func(name, tier string) *catalog.Model {
		if name != "" {
			m, _ := cat.Lookup(name)
			return m
		}
		for _, m := range cat.Models() {
			if m.Tier == tier && m.Serves("chat") {
				return m
			}
		}
		return nil
	}
	x := &auto{small: pick(a.Small, config.TierSmall), large: pick(a.Large, config.TierLarge), scorer: scorer, threshold: a.Scorer.ThresholdOr()}
	if x.small == nil || x.large == nil {
		return nil, nil
	}
	for i, r := range a.Rules {
		cr := rule{large: r.Tier == config.TierLarge, why: "rule:" + strconv.Itoa(i)}
		for f, s := range r.When {
			c, err := config.ParseCond(f, s)
			if err != nil {
				return nil, fmt.Errorf("routing.auto.rules[%d].when.%s: %w", i, f, err)
			}
			cr.conds = append(cr.conds, cond{feature: featureIndex(f), c: c})
		}
		x.rules = append(x.rules, cr)
	}
	return x, nil
}

// choose picks the tier for a request with features f, and says why:
// constraint:<what>, rule:<n>, latency:realtime, score:<p> or default.
func (a *auto) choose(r *request.Request, f *Features) (*catalog.Model, string) {
	if m, why := a.constrained(r, f); m != nil {
		return m, why
	}
	for _, rl := range a.rules {
		if rl.matches(f) {
			if rl.large {
				return a.large, rl.why
			}
			return a.small, rl.why
		}
	}
	if f.Latency == Realtime {
		return a.small, "latency:realtime"
	}
	if a.scorer != nil && a.threshold < 1 {
		p := a.scorer.Score(f)
		why := scoreWhy[int(p*100+0.5)]
		if p >= a.threshold {
			return a.large, why
		}
		return a.small, why
	}
	return a.small, "default"
}

// constrained returns the one tier that can take the request at all, and
// why, or nil when both can (or neither: the core then says why).
func (a *auto) constrained(r *request.Request, f *Features) (*catalog.Model, string) {
	okSmall, whySmall := fits(a.small, r, f)
	okLarge, _ := fits(a.large, r, f)
	switch {
	case !okSmall && okLarge:
		return a.large, "constraint:" + whySmall
	case okSmall && !okLarge:
		return a.small, "constraint:large_cannot"
	}
	return nil, ""
}

// fits reports whether m can take the request, and if not why.
func fits(m *catalog.Model, r *request.Request, f *Features) (bool, string) {
	switch {
	case !m.Serves(r.Endpoint.String()):
		return false, "endpoint"
	case f.Images > 0 && !m.Input.Has(catalog.Image), f.Audios > 0 && !m.Input.Has(catalog.Audio), f.Videos > 0 && !m.Input.Has(catalog.Video):
		return false, "input_modality"
	case f.AudioOut && !m.AudioOut:
		return false, "audio_out"
	case f.PromptTokens+max(f.MaxTokens, 0) > m.ContextWindow:
		return false, "context_window"
	case m.Limits.MaxTokens > 0 && f.MaxTokens > m.Limits.MaxTokens && m.Limits.OnViolation != config.OnViolationClamp:
		return false, "max_tokens"
	}
	return true, ""
}

func (rl rule) matches(f *Features) bool {
	for _, c := range rl.conds {
		v, w := f.value(c.feature)
		if !c.c.Holds(v, w) {
			return false
		}
	}
	return true
}

// scoreWhy are the reasons "score:0.00" … "score:1.00", made once.
var scoreWhy = func() (w [101]string) {
	for i := range w {
		w[i] = "score:" + strconv.FormatFloat(float64(i)/100, 'f', 2, 64)
	}
	return w
}()

// errNoAuto is the error for an auto name with no two tiers to choose from.
func errNoAuto(name string) error {
	e := apierror.New(http.StatusNotFound, "model_not_found",
		"The model %q routes automatically between a small and a large tier, and this gateway has no two such models.", name)
	e.Param = "model"
	return e
}
