package config

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Auto is automatic tier routing: a request to one of Names goes to the
// small or the large tier by its features (router/features.go). Hard
// constraints come first (modalities, endpoints, the context window),
// then Rules in order, then a realtime latency need (small), then the
// Scorer.
type Auto struct {
	// Names route automatically: "auto" always, and these (one per
	// application, say). They may not be model names or aliases.
	Names []string `yaml:"names"`
	// Small and Large are the tiers' models. Default: the model with tier
	// small, and the one with tier large.
	Small string `yaml:"small"`
	Large string `yaml:"large"`
	Rules []Rule `yaml:"rules"`
	// Scorer sends a request to the large tier when its learned
	// probability of needing it is at least Threshold.
	Scorer Scorer `yaml:"scorer"`
	// Escalate retries a weak small-tier answer on the large tier.
	Escalate Escalate `yaml:"escalate"`
}

// Rule sends the requests whose features meet every condition of When
// to Tier (small or large). A condition is a number compared
// (">2000", "<=1", "3"), true or false, or a word (latency: realtime).
type Rule struct {
	When map[string]string `yaml:"when"`
	Tier string            `yaml:"tier"`
}

// Scorer is the learned router: a logistic regression over the
// features, written by `omnigate route train`.
type Scorer struct {
	// File holds the weights; "": the built-in ones (trained on the
	// committed labelled set).
	File string `yaml:"file"`
	// Threshold: at or above it a request goes large; it sets the share
	// of traffic the large tier takes. Default 0.5. 1 turns the scorer
	// off (everything the rules leave goes small).
	Threshold *float64 `yaml:"threshold"`
}

// Escalate retries on the large tier an auto-routed request the small
// tier answered weakly, by any of On: length (cut by max_tokens),
// refusal, invalid_json (response_format asked for JSON), low_logprob
// (mean token logprob under MinLogprob; logprobs are asked of the engine
// and removed from the answer when the client did not ask). Whole
// answers only: a stream is never escalated. The client gets one answer.
type Escalate struct {
	On         []string `yaml:"on"`
	MinLogprob *float64 `yaml:"min_logprob"` // default -1.5
}

// The features a rule may test, and the tiers.
var (
	RuleFeatures = []string{"prompt_tokens", "turns", "images", "audios", "videos", "tools", "json", "audio_out",
		"max_tokens", "code", "math", "reasoning", "non_ascii", "latency"}
	EscalateOn = []string{"length", "refusal", "invalid_json", "low_logprob"}
)

// Defaults of the auto keys.
const (
	DefaultScoreThreshold = 0.5
	DefaultMinLogprob     = -1.5
)

// ThresholdOr returns the scorer's threshold.
func (s Scorer) ThresholdOr() float64 {
	if s.Threshold == nil {
		return DefaultScoreThreshold
	}
	return *s.Threshold
}

// MinLogprobOr returns the escalation's logprob floor.
func (e Escalate) MinLogprobOr() float64 {
	if e.MinLogprob == nil {
		return DefaultMinLogprob
	}
	return *e.MinLogprob
}

// Cond is a parsed rule condition.
type Cond struct {
	Op   string // "<", "<=", ">", ">=", "=" (numbers and booleans as 0/1), "word"
	Num  float64
	Word string
}

// ParseCond reads a condition for feature f.
func ParseCond(f, s string) (Cond, error) {
	s = strings.TrimSpace(s)
	if f == "latency" {
		switch s {
		case "realtime", "standard", "batch":
			return Cond{Op: "word", Word: s}, nil
		}
		return Cond{}, fmt.Errorf("latency is realtime, standard or batch, not %q", s)
	}
	switch s {
	case "true":
		return Cond{Op: "=", Num: 1}, nil
	case "false":
		return Cond{Op: "=", Num: 0}, nil
	}
	op := "="
	for _, o := range []string{"<=", ">=", "<", ">", "="} {
		if strings.HasPrefix(s, o) {
			op, s = o, strings.TrimSpace(s[len(o):])
			break
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
		return Cond{}, fmt.Errorf("%q is not a number compared (>2000, <=1, 3), true or false", s)
	}
	return Cond{Op: op, Num: n}, nil
}

// Holds reports whether v meets the condition (words compare equal).
func (c Cond) Holds(v float64, word string) bool {
	switch c.Op {
	case "word":
		return word == c.Word
	case "<":
		return v < c.Num
	case "<=":
		return v <= c.Num
	case ">":
		return v > c.Num
	case ">=":
		return v >= c.Num
	}
	return v == c.Num
}

func (v *validator) auto(c *Config, owners map[string]string) {
	a := &c.Routing.Auto
	for i, n := range a.Names {
		p := fmt.Sprintf("routing.auto.names[%d]", i)
		if n == "" || n == ReservedModelName {
			continue
		}
		if prev, dup := owners[n]; dup {
			v.add(p, "%q is already used as %s", n, prev)
			continue
		}
		owners[n] = "an auto name"
	}
	byName := map[string]*Model{}
	for i := range c.Models {
		byName[c.Models[i].Name] = &c.Models[i]
	}
	for _, t := range []struct{ key, name string }{{"small", a.Small}, {"large", a.Large}} {
		if t.name != "" && byName[t.name] == nil {
			v.add("routing.auto."+t.key, "unknown model %q", t.name)
		}
	}
	for i, r := range a.Rules {
		p := fmt.Sprintf("routing.auto.rules[%d]", i)
		if r.Tier != TierSmall && r.Tier != TierLarge {
			v.add(p+".tier", "%q is not small or large", r.Tier)
		}
		if len(r.When) == 0 {
			v.add(p+".when", "a rule needs at least one condition")
		}
		for f, cond := range r.When {
			if !slices.Contains(RuleFeatures, f) {
				v.add(p+".when."+f, "unknown feature; one of %s", strings.Join(RuleFeatures, ", "))
				continue
			}
			if _, err := ParseCond(f, cond); err != nil {
				v.add(p+".when."+f, "%v", err)
			}
		}
	}
	if t := a.Scorer.ThresholdOr(); !(t >= 0 && t <= 1) {
		v.add("routing.auto.scorer.threshold", "must be from 0 to 1, got %v", t)
	}
	if len(a.Escalate.On) > 0 {
		v.words("routing.auto.escalate.on", "test", a.Escalate.On, EscalateOn)
	}
}
