package openai

import (
	"strconv"
	"strings"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/catalog"
	"github.com/omnigate/omnigate/internal/config"
)

// Clamped is one parameter value that Validate changed instead of rejecting.
type Clamped struct {
	Param    string  // as sent: max_tokens, max_completion_tokens, temperature, top_p, n
	From, To float64 // the value sent and the value to forward
	Span     [2]int  // where the value sits in the body Validate's Request was parsed from
	Integer  bool    // To is written as an integer
}

// Clamp lists the parameters Validate clamped; empty when none.
type Clamp []Clamped

// Header is the X-Omnigate-Clamped value: "max_tokens=4096, temperature=2".
func (c Clamp) Header() string {
	var b strings.Builder
	for i, x := range c {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(x.Param)
		b.WriteByte('=')
		b.WriteString(fmtFloat(x.To))
	}
	return b.String()
}

// Apply returns a copy of body (the body the Request given to Validate was
// parsed from) with the clamped values spliced in.
func (c Clamp) Apply(body []byte) []byte {
	var arr [4]Edit
	edits := arr[:0]
	for _, x := range c {
		var v []byte
		if x.Integer {
			v = strconv.AppendInt(nil, int64(x.To), 10)
		} else {
			v = strconv.AppendFloat(nil, x.To, 'g', -1, 64)
		}
		edits = append(edits, Edit{Span: x.Span, Value: v})
	}
	return Splice(body, edits...)
}

// set adds or updates the entry for param.
func (c Clamp) set(x Clamped) Clamp {
	for i := range c {
		if c[i].Param == x.Param {
			c[i].To = x.To
			return c
		}
	}
	return append(c, x)
}

// contextSlack is how far (a tenth) a chars/4 prompt estimate is discounted
// before it counts against the context window: only clear overruns fail
// here, the engine has the last word.
const contextSlack = 10

// Validate checks a parsed request against the model's limits and
// capabilities. Media and output-modality violations are always rejected;
// numeric parameters out of range are rejected, or clamped when the model's
// limits say on_violation: clamp, in which case the returned Clamp says what
// to change (r itself is not modified).
func Validate(r *Request, m *catalog.Model) (Clamp, error) {
	if err := checkMedia(r, m); err != nil {
		return nil, err
	}
	if r.AudioRequested && !m.AudioOut {
		param := "audio"
		if r.Modalities.Has(catalog.Audio) {
			param = "modalities"
		}
		return nil, apierror.Invalid(param, "The model %s cannot answer with audio.", m.Name)
	}
	lim := &m.Limits
	clamping := lim.OnViolation == "clamp"
	var c Clamp

	maxTokens := r.MaxTokens
	if lim.MaxTokens > 0 && maxTokens > lim.MaxTokens {
		if !clamping {
			return nil, apierror.Invalid(r.MaxTokensParam, "%s is %d but %s allows at most %d.", r.MaxTokensParam, maxTokens, m.Name, lim.MaxTokens)
		}
		c = append(c, Clamped{Param: r.MaxTokensParam, From: float64(maxTokens), To: float64(lim.MaxTokens), Span: r.MaxTokensSpan, Integer: true})
		maxTokens = lim.MaxTokens
	}
	var err error
	if r.HasTemperature {
		if c, err = checkRange(c, "temperature", r.Temperature, r.TemperatureSpan, lim.Temperature, m.Name, clamping); err != nil {
			return nil, err
		}
	}
	if r.HasTopP {
		if c, err = checkRange(c, "top_p", r.TopP, r.TopPSpan, lim.TopP, m.Name, clamping); err != nil {
			return nil, err
		}
	}
	if lim.MaxN > 0 && r.N > lim.MaxN {
		if !clamping {
			return nil, apierror.Invalid("n", "n is %d but %s allows at most %d.", r.N, m.Name, lim.MaxN)
		}
		c = append(c, Clamped{Param: "n", From: float64(r.N), To: float64(lim.MaxN), Span: r.NSpan, Integer: true})
	}

	if w := m.ContextWindow; w > 0 {
		est := (r.PromptChars + 3) / 4
		low := est - est/contextSlack
		if low > w {
			return nil, apierror.Invalid(promptParam(r.Endpoint), "The prompt is about %d tokens, more than the context window of %s (%d tokens).", est, m.Name, w)
		}
		if maxTokens > 0 && low+maxTokens > w {
			room := w - low
			if !clamping || room < 1 {
				return nil, apierror.Invalid(r.MaxTokensParam, "%s is %d but the prompt is about %d tokens and %s has a context window of %d tokens; at most %d tokens are left for the answer.",
					r.MaxTokensParam, maxTokens, est, m.Name, w, max(room, 0))
			}
			c = c.set(Clamped{Param: r.MaxTokensParam, From: float64(r.MaxTokens), To: float64(room), Span: r.MaxTokensSpan, Integer: true})
		}
	}
	return c, nil
}

func checkRange(c Clamp, param string, v float64, span [2]int, rg *config.Range, model string, clamping bool) (Clamp, error) {
	if rg == nil || (v >= rg.Min && v <= rg.Max) {
		return c, nil
	}
	if !clamping {
		return c, apierror.Invalid(param, "%s is %s but %s allows values in [%s, %s].", param, fmtFloat(v), model, fmtFloat(rg.Min), fmtFloat(rg.Max))
	}
	to := min(max(v, rg.Min), rg.Max)
	return append(c, Clamped{Param: param, From: v, To: to, Span: span}), nil
}

func promptParam(ep Endpoint) string {
	switch ep {
	case Completions:
		return "prompt"
	case Embeddings:
		return "input"
	}
	return "messages"
}

var mediaKinds = [...]catalog.Modality{catalog.Image, catalog.Audio, catalog.Video}

// checkMedia rejects media the model does not take, or more parts of a kind
// than its limit, naming the first (not accepted) or last (too many) part.
func checkMedia(r *Request, m *catalog.Model) error {
	for _, k := range mediaKinds {
		n := r.Media.Count(k)
		if n == 0 {
			continue
		}
		first, last := r.Media.Where(k)
		limit := mediaLimit(&m.Limits.Media, k)
		if !m.Input.Has(k) || (limit != nil && *limit == 0) {
			return apierror.Invalid(first.Param(), "The model %s does not accept %s input.", m.Name, k)
		}
		if limit != nil && n > *limit {
			return apierror.Invalid(last.Param(), "The request has %d %s parts but %s accepts at most %d.", n, k, m.Name, *limit)
		}
	}
	return nil
}

func mediaLimit(l *config.MediaLimit, k catalog.Modality) *int {
	switch k {
	case catalog.Image:
		return l.Image
	case catalog.Audio:
		return l.Audio
	}
	return l.Video
}
