package config

// Shadow is a model's shadow traffic: a share of its successful chat
// answers is asked again of Model (a quantized variant, a new version),
// whose answer is compared with the one the client got and dropped.
type Shadow struct {
	// Model is the candidate: a model (or alias) of this config. Unset:
	// no shadow traffic.
	Model string `yaml:"model"`
	// Share is the fraction of answered requests mirrored, above 0 and at
	// most 1. Default 0.05.
	Share float64 `yaml:"share"`
	// MaxInFlight bounds the mirrored requests running at once; past it a
	// request is not mirrored (counted as dropped). Default 4.
	MaxInFlight int `yaml:"max_inflight"`
}

// On reports whether the model has shadow traffic.
func (s Shadow) On() bool { return s.Model != "" }

// Shadow defaults.
const (
	DefaultShadowShare       = 0.05
	DefaultShadowMaxInFlight = 4
)

func (s *Shadow) applyDefaults() {
	if !s.On() {
		return
	}
	setDefault(&s.Share, DefaultShadowShare)
	setDefault(&s.MaxInFlight, DefaultShadowMaxInFlight)
}

func (v *validator) shadow(p string, m *Model, names map[string]*Model) {
	s := m.Shadow
	if !s.On() {
		return
	}
	c, ok := names[s.Model]
	switch {
	case !ok:
		v.add(p+".model", "unknown model %q", s.Model)
	case c.Name == m.Name:
		v.add(p+".model", "a model cannot shadow itself")
	case c.Shadow.On():
		v.add(p+".model", "%q has shadow traffic of its own: a shadow is not mirrored again", s.Model)
	}
	if !(s.Share > 0 && s.Share <= 1) {
		v.add(p+".share", "must be above 0 and at most 1, got %v", s.Share)
	}
	if s.MaxInFlight < 1 {
		v.add(p+".max_inflight", "must be >= 1, got %d", s.MaxInFlight)
	}
}
