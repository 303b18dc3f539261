package openai

import (
	"slices"

	"github.com/omnigate/omnigate/internal/jsonscan"
)

// Edit replaces body[Span[0]:Span[1]] with Value. An empty span inserts.
type Edit struct {
	Span  [2]int
	Value []byte
}

// Splice returns a new buffer holding body with the edits applied in one
// pass. Edits may come in any order but must not overlap; a span outside
// body or overlapping another is a programming error and panics.
func Splice(body []byte, edits ...Edit) []byte {
	var arr [8]Edit
	sorted := append(arr[:0], edits...)
	slices.SortStableFunc(sorted, func(a, b Edit) int { return a.Span[0] - b.Span[0] })
	size := len(body)
	prev := 0
	for _, e := range sorted {
		if e.Span[0] < prev || e.Span[1] < e.Span[0] || e.Span[1] > len(body) {
			panic("openai.Splice: edit spans overlap or fall outside the body")
		}
		prev = e.Span[1]
		size += len(e.Value) - (e.Span[1] - e.Span[0])
	}
	out := make([]byte, 0, size)
	pos := 0
	for _, e := range sorted {
		out = append(out, body[pos:e.Span[0]]...)
		out = append(out, e.Value...)
		pos = e.Span[1]
	}
	return append(out, body[pos:]...)
}

// SetModel returns a copy of body with the model value replaced by name
// (added when the body has none), and updates r's spans and Model to
// describe the new body.
func SetModel(body []byte, r *Request, name string) []byte {
	if r.ModelSpan == [2]int{} {
		quoted := jsonscan.AppendString(nil, name)
		out := AddField(body, "model", quoted)
		r.shift(0, len(out)-len(body))
		start := openBrace(body) + 1 + len(`"model":`)
		r.ModelSpan = [2]int{start, start + len(quoted)}
		r.Model = name
		return out
	}
	s, e := r.ModelSpan[0], r.ModelSpan[1]
	out := make([]byte, 0, len(body)-(e-s)+len(name)+2)
	out = append(out, body[:s]...)
	out = jsonscan.AppendString(out, name)
	end := len(out)
	out = append(out, body[e:]...)
	r.shift(e, end-e)
	r.ModelSpan[1] = end
	r.Model = name
	return out
}

// shift moves the spans that start at or after pos by delta.
func (r *Request) shift(pos, delta int) {
	for _, sp := range [...]*[2]int{&r.ModelSpan, &r.StreamSpan, &r.MaxTokensSpan, &r.TemperatureSpan, &r.TopPSpan, &r.NSpan} {
		if *sp != [2]int{} && sp[0] >= pos {
			sp[0] += delta
			sp[1] += delta
		}
	}
}

// AddField returns a copy of body, a JSON object, with "key":value inserted
// as its first member. value must be valid JSON. The body must not already
// have key (JSON allows duplicates, but engines differ on which one wins).
func AddField(body []byte, key string, value []byte) []byte {
	i := openBrace(body)
	out := make([]byte, 0, len(body)+len(key)+len(value)+4)
	out = append(out, body[:i+1]...)
	out = jsonscan.AppendString(out, key)
	out = append(out, ':')
	out = append(out, value...)
	if !emptyObject(body) {
		out = append(out, ',')
	}
	return append(out, body[i+1:]...)
}

// openBrace finds the object's '{'; it panics if body is not an object.
func openBrace(body []byte) int {
	for i, c := range body {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return i
		}
		break
	}
	panic("openai.AddField: body is not a JSON object")
}

func emptyObject(body []byte) bool {
	for _, c := range body[openBrace(body)+1:] {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c == '}'
	}
	return false
}
