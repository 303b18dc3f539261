// Package limits checks a parsed request against one model's limits and
// capabilities, the same for every front end: media counts and kinds,
// audio output, max_tokens, temperature, top_p, n and the context window,
// rejecting or clamping as the model's on_violation says.
package limits

import (
	"strconv"
	"strings"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/catalog"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/request"
)

// Clamped is one parameter value that Check changed instead of rejecting.
type Clamped struct {
	Param    string  // as sent: max_tokens, max_completion_tokens, temperature, top_p, n
	From, To float64 // the value sent and the value to forward
	Span     [2]int  // where the value sits in the body Check's Request was parsed from
	Integer  bool    // To is written as an integer
}

// Clamp lists the parameters Check clamped; empty when none.
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

// Apply returns body (the body r was parsed from, r the view given to
// Check) with the clamped values spliced in, and updates r to describe it.
func (c Clamp) Apply(r *request.Request, body []byte) []byte {
	var arr [4]request.Edit
	edits := arr[:0]
	for _, x := range c {
		var v []byte
		if x.Integer {
			v = strconv.AppendInt(nil, int64(x.To), 10)
		} else {
			v = strconv.AppendFloat(nil, x.To, 'g', -1, 64)
		}
		edits = append(edits, request.Edit{Span: x.Span, Value: v})
	}
	out := r.Edit(body, edits...)
	for _, x := range c {
		x.set(r)
	}
	return out
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

// Check checks a parsed request against the model's limits and
// capabilities. Media and output-modality violations are always rejected;
// numeric parameters out of range are rejected, or clamped when the model's
// limits say on_violation: clamp, in which case the returned Clamp says what
// to change (r itself is not modified).
func Check(r *request.Request, m *catalog.Model) (Clamp, error) {
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
		// One estimate for the check and the message: chars/4, discounted
		// so only clear overruns fail here (the engine has the last word).
		est := (r.PromptChars + 3) / 4
		est -= est / contextSlack
		if est > w {
			return nil, contextError(promptParam(r.Endpoint), "The prompt is at least %d tokens, more than the context window of %s (%d tokens).", est, m.Name, w)
		}
		if maxTokens > 0 && est+maxTokens > w {
			room := w - est
			if !clamping || room < 1 {
				return nil, contextError(r.MaxTokensParam, "%s is %d but the prompt is at least %d tokens and %s has a context window of %d tokens, so at most %d are left for the answer.",
					r.MaxTokensParam, maxTokens, est, m.Name, w, max(room, 0))
			}
			c = c.set(Clamped{Param: r.MaxTokensParam, From: float64(r.MaxTokens), To: float64(room), Span: r.MaxTokensSpan, Integer: true})
		}
	}
	return c, nil
}

// CodeContextLength is OpenAI's code for a request that does not fit the
// context window; engines' errors are mapped to it too.
const CodeContextLength = "context_length_exceeded"

func contextError(param, format string, args ...any) *apierror.Error {
	e := apierror.Invalid(param, format, args...)
	e.Code = CodeContextLength
	return e
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

func promptParam(ep request.Endpoint) string {
	switch ep {
	case request.Completions:
		return "prompt"
	case request.Embeddings:
		return "input"
	}
	return "messages"
}

var mediaKinds = [...]catalog.Modality{catalog.Image, catalog.Audio, catalog.Video}

// checkMedia rejects media the model does not take, or more parts of a kind
// than its limit, naming the first (not accepted) or last (too many) part.
func checkMedia(r *request.Request, m *catalog.Model) error {
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

// set writes the clamped value into the view's parsed field.
func (x Clamped) set(r *request.Request) {
	switch x.Param {
	case "max_tokens", "max_completion_tokens":
		r.MaxTokens = int(x.To)
	case "temperature":
		r.Temperature = x.To
	case "top_p":
		r.TopP = x.To
	case "n":
		r.N = int(x.To)
	}
}

// DefaultMaxTokens is the token limit to send when the client sent none
// (or null): the model's ceiling, since without one an engine may generate
// up to the context window and a large tier run out of memory. 0: send
// nothing (no ceiling, or embeddings).
func DefaultMaxTokens(r *request.Request, m *catalog.Model) int {
	if r.Endpoint == request.Embeddings || r.MaxTokens > 0 {
		return 0
	}
	return m.Limits.MaxTokens
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
