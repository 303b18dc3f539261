// Package catalog is the compiled view of the configured models: public
// names, aliases, tiers, capabilities and limits, looked up on every request.
package catalog

import (
	"fmt"
	"slices"
	"sort"

	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/resilience"
)

// Modality is one kind of content, as a bit so sets are one word.
type Modality uint8

// The modalities omnigate knows.
const (
	Text Modality = 1 << iota
	Image
	Audio
	Video
)

// ParseModality maps a config word to a Modality.
func ParseModality(s string) (Modality, bool) {
	switch s {
	case "text":
		return Text, true
	case "image":
		return Image, true
	case "audio":
		return Audio, true
	case "video":
		return Video, true
	}
	return 0, false
}

// String returns the config word.
func (m Modality) String() string {
	switch m {
	case Text:
		return "text"
	case Image:
		return "image"
	case Audio:
		return "audio"
	case Video:
		return "video"
	}
	return fmt.Sprintf("modality(%d)", uint8(m))
}

// Modalities is a set of Modality bits.
type Modalities uint8

// Has reports whether m is in the set.
func (s Modalities) Has(m Modality) bool { return uint8(s)&uint8(m) != 0 }

// Names returns the set's config words, in the order text, image, audio,
// video; nil for an empty set.
func (s Modalities) Names() []string {
	var out []string
	for _, m := range []Modality{Text, Image, Audio, Video} {
		if s.Has(m) {
			out = append(out, m.String())
		}
	}
	return out
}

// Link is one model of a fallback chain and the error classes of the
// model before it that lead to it (the first link's are all of them).
type Link struct {
	Model *Model
	On    resilience.Class
}

// Model is one public model with its limits resolved (defaults applied).
type Model struct {
	Name          string
	Aliases       []string
	Tier          string
	ContextWindow int
	Input         Modalities
	Output        Modalities
	Endpoints     []string
	Limits        config.Limits
	Retry         config.Retry
	Hedge         config.Hedge
	Balance       config.Balance
	Admission     config.Admission
	Batching      config.Batching
	Cache         config.Cache
	Deployments   []config.Deployment
	// AudioOut: audio output is declared by the model and by at least one deployment.
	AudioOut bool
	// Index is the model's position in the config, for stable listings and
	// for per-model slices elsewhere.
	Index int
}

// Serves reports whether the model's deployments serve endpoint
// ("chat", "completions", "embeddings").
func (m *Model) Serves(endpoint string) bool { return slices.Contains(m.Endpoints, endpoint) }

// Catalog resolves public names and aliases to models.
type Catalog struct {
	models []*Model
	byName map[string]*Model
	names  []string // public names and aliases, sorted, for error messages
}

// New compiles the catalog. cfg must have had defaults applied and passed Validate.
func New(cfg *config.Config) (*Catalog, error) {
	c := &Catalog{byName: make(map[string]*Model)}
	for i, mc := range cfg.Models {
		m := &Model{
			Name: mc.Name, Aliases: mc.Aliases, Tier: mc.Tier, ContextWindow: mc.ContextWindow,
			Endpoints: mc.Capabilities.Endpoints, Limits: mc.Limits, Retry: mc.Retry, Hedge: mc.Hedge,
			Balance: mc.Balance, Admission: mc.Admission, Batching: mc.Batching, Cache: mc.Cache, Deployments: mc.Deployments, Index: i,
		}
		for _, s := range mc.Capabilities.Input {
			mod, ok := ParseModality(s)
			if !ok {
				return nil, fmt.Errorf("models[%d].capabilities.input: unknown modality %q", i, s)
			}
			m.Input |= Modalities(mod)
		}
		for _, s := range mc.Capabilities.Output {
			mod, ok := ParseModality(s)
			if !ok {
				return nil, fmt.Errorf("models[%d].capabilities.output: unknown modality %q", i, s)
			}
			m.Output |= Modalities(mod)
		}
		if m.Output.Has(Audio) {
			for _, d := range mc.Deployments {
				m.AudioOut = m.AudioOut || d.AudioOutput
			}
		}
		for _, n := range append([]string{mc.Name}, mc.Aliases...) {
			if _, dup := c.byName[n]; dup {
				return nil, fmt.Errorf("models[%d]: name or alias %q is used twice", i, n)
			}
			c.byName[n] = m
			c.names = append(c.names, n)
		}
		c.models = append(c.models, m)
	}
	sort.Strings(c.names)
	return c, nil
}

// Lookup resolves a public name or alias.
func (c *Catalog) Lookup(name string) (*Model, bool) {
	m, ok := c.byName[name]
	return m, ok
}

// Models returns the models in config order.
func (c *Catalog) Models() []*Model { return c.models }

// Names returns every public name and alias, sorted.
func (c *Catalog) Names() []string { return c.names }
