package request

import (
	"slices"
	"strconv"
)

// The gateway forwards the client's bytes; what it must change (the model
// name, a clamped or defaulted value, an integer written 10.0) it splices
// in at the spans Parse recorded. This file is the one toolkit for that:
// Splice for a one-off change, Request.Edit when the view must keep
// describing the new body.

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
	sorted := sortEdits(arr[:0], edits, len(body))
	return splice(body, sorted)
}

func sortEdits(dst, edits []Edit, n int) []Edit {
	sorted := append(dst, edits...)
	slices.SortStableFunc(sorted, func(a, b Edit) int { return a.Span[0] - b.Span[0] })
	prev := 0
	for _, e := range sorted {
		if e.Span[0] < prev || e.Span[1] < e.Span[0] || e.Span[1] > n {
			panic("request.Splice: edit spans overlap or fall outside the body")
		}
		prev = e.Span[1]
	}
	return sorted
}

// splice applies sorted, checked edits.
func splice(body []byte, sorted []Edit) []byte {
	size := len(body)
	for _, e := range sorted {
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

// Edit returns body (the body r was parsed from) with the edits applied,
// and moves r's spans so that r describes the new body exactly as a fresh
// Parse of it would, with no re-scan. An edit that replaces a recorded
// value must cover exactly its span, and writes it canonically (it leaves
// NonCanonical); the caller updates the parsed field itself (see
// SetMaxTokens).
func (r *Request) Edit(body []byte, edits ...Edit) []byte {
	var arr [8]Edit
	sorted := sortEdits(arr[:0], edits, len(body))
	for _, sp := range r.spans() {
		if *sp != ([2]int{}) {
			*sp = moveSpan(*sp, sorted, false)
		}
	}
	if r.PromptSpan != ([2]int{}) {
		r.PromptSpan = moveSpan(r.PromptSpan, sorted, true)
	}
	if r.LastUserSpan != ([2]int{}) {
		r.LastUserSpan = moveSpan(r.LastUserSpan, sorted, true)
	}
	kept := r.NonCanonical[:0]
	for _, x := range r.NonCanonical[:r.NumNonCanonical] {
		if !replaced(x.Span, sorted) {
			x.Span = moveSpan(x.Span, sorted, false)
			kept = append(kept, x)
		}
	}
	clear(r.NonCanonical[len(kept):r.NumNonCanonical])
	r.NumNonCanonical = len(kept)
	return splice(body, sorted)
}

// spans lists the recorded spans, for Edit.
// (PromptSpan and LastUserSpan, whose values edits may reach into, are
// moved apart.)
func (r *Request) spans() [9]*[2]int {
	return [...]*[2]int{&r.ModelSpan, &r.StreamSpan, &r.StreamOptionsSpan, &r.MaxTokensSpan, &r.TemperatureSpan, &r.TopPSpan, &r.NSpan, &r.MessagesClose,
		&r.UserSpan}
}

// replaced reports whether one of the edits replaces the value at sp.
func replaced(sp [2]int, edits []Edit) bool {
	for _, e := range edits {
		if e.Span == sp {
			return true
		}
	}
	return false
}

// Normalize returns body with the integers listed in r.NonCanonical
// written plainly (10 for 10.0 or 1e1), so that no engine sees a form it
// may refuse, and updates r to describe the result. Without any it returns
// body itself. Call it right after Parse, before any other edit.
func (r *Request) Normalize(body []byte) []byte {
	if r.NumNonCanonical == 0 {
		return body
	}
	var edits [maxNonCanonical]Edit
	var digits [maxNonCanonical * 20]byte // an int64 has at most 20 characters
	buf := digits[:0]
	for i, x := range r.NonCanonical[:r.NumNonCanonical] {
		start := len(buf)
		buf = strconv.AppendInt(buf, x.Value, 10)
		edits[i] = Edit{Span: x.Span, Value: buf[start:]}
	}
	return r.Edit(body, edits[:r.NumNonCanonical]...)
}

// moveSpan is where sp lands after the sorted edits.
func moveSpan(sp [2]int, sorted []Edit, container bool) [2]int {
	start, end := 0, 0 // what the edits so far moved each end by
	for _, e := range sorted {
		d := len(e.Value) - (e.Span[1] - e.Span[0])
		switch {
		case e.Span == sp:
			at := sp[0] + start
			return [2]int{at, at + len(e.Value)}
		case e.Span[1] <= sp[0]:
			start, end = start+d, end+d // wholly before the value (an insertion at its start too)
		case e.Span[0] >= sp[1]:
			return [2]int{sp[0] + start, sp[1] + end}
		case container && e.Span[0] >= sp[0] && e.Span[1] <= sp[1]:
			end += d // inside it (a message appended to the messages): the value grows
		default:
			panic("request.Edit: an edit cuts into a recorded value")
		}
	}
	return [2]int{sp[0] + start, sp[1] + end}
}

// InsertAt is the offset just after the body's opening brace, where
// Insert puts a new member: before every recorded span.
func InsertAt(body []byte) int {
	for i, c := range body {
		if c == '{' {
			return i + 1
		}
	}
	panic("request.InsertAt: body is not a JSON object")
}

// Insert is the edit that adds "key":value as the body's first member.
// Parse accepted the body, so it has members (a model at least) and the new
// one is followed by a comma. key must need no escaping.
func Insert(body []byte, key string, value []byte) Edit {
	v := make([]byte, 0, len(key)+len(value)+4)
	v = append(v, '"')
	v = append(v, key...)
	v = append(v, '"', ':')
	v = append(v, value...)
	v = append(v, ',')
	at := InsertAt(body)
	return Edit{Span: [2]int{at, at}, Value: v}
}

// SetMaxTokens returns body with the token limit set to n: a value that
// was sent (null included) is replaced where it stands, under the name
// the client used, so the engine never sees two; otherwise "max_tokens"
// is inserted. r is updated to describe the result.
func (r *Request) SetMaxTokens(body []byte, n int) []byte {
	var num [20]byte
	v := strconv.AppendInt(num[:0], int64(n), 10)
	if r.MaxTokensParam == "" {
		r.MaxTokensParam = "max_tokens"
	}
	var out []byte
	if r.MaxTokensSpan != ([2]int{}) {
		out = r.Edit(body, Edit{Span: r.MaxTokensSpan, Value: v})
	} else {
		ins := Insert(body, "max_tokens", v)
		out = r.Edit(body, ins)
		start := ins.Span[0] + len(`"max_tokens":`)
		r.MaxTokensSpan = [2]int{start, start + len(v)}
	}
	r.MaxTokens = n
	return out
}
