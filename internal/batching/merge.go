package batching

import (
	"errors"
	"time"

	"github.com/omnigate/omnigate/internal/backend"
	"github.com/omnigate/omnigate/internal/jsonscan"
)

// inputs is where a batchable request's inputs sit in its body.
type inputs struct {
	shape  *shape
	span   [2]int   // the input value (a string or an array), in Body
	items  [][2]int // each input string, quotes included, in Body
	tokens []int    // each input's estimated tokens
	n      int      // answers per input: completions' n, else 1
}

// errSkip stops a scan of a body that is not batchable.
var errSkip = errors.New("not batchable")

// parseRequest finds r's inputs when r can be batched: a non-streaming
// request to an endpoint this package batches (see shapeOf) whose input
// is one string or 1 to maxInputs-1 strings, with no guarded member set.
func parseRequest(r *backend.Request, maxInputs int) (inputs, bool) {
	sh := shapeOf(r.Endpoint)
	if r.Stream || sh == nil {
		return inputs{}, false
	}
	in := inputs{shape: sh, n: 1}
	d := jsonscan.NewDecoder(r.Body)
	var keys jsonscan.Keys
	seenInput, seenN := false, false
	err := d.ObjectUnique(&keys, func(key []byte) error {
		switch {
		case string(key) == sh.input:
			if seenInput {
				return errSkip
			}
			seenInput = true
			return in.read(&d, maxInputs)
		case sh.choices && string(key) == "n":
			if seenN {
				return errSkip
			}
			seenN = true
			k, err := d.Peek()
			if err != nil || k == jsonscan.Null {
				return err // null: left unread, the default
			}
			v, ok, err := readInt(&d)
			if err != nil || !ok || v.value < 1 {
				return errSkip // the engine's to refuse
			}
			in.n = v.value
		case sh.isGuarded(key):
			// Null and false are left unread (and so checked for repeats).
			k, err := d.Peek()
			if err != nil || k == jsonscan.Null || k == jsonscan.Bool && d.Data()[d.Offset()] == 'f' {
				return err
			}
			return errSkip
		}
		return nil
	})
	if err != nil || d.End() != nil || len(in.items) == 0 || len(in.items) >= maxInputs {
		return inputs{}, false
	}
	return in, true
}

// read reads the input value at d: a string, or an array of fewer than
// maxInputs strings.
func (in *inputs) read(d *jsonscan.Decoder, maxInputs int) error {
	k, err := d.Peek()
	if err != nil {
		return err
	}
	start := d.Offset()
	switch k {
	case jsonscan.String:
		if err := in.add(d); err != nil {
			return err
		}
	case jsonscan.Array:
		err := d.Array(func(int) error {
			if k, err := d.Peek(); err != nil || k != jsonscan.String || len(in.items) >= maxInputs {
				return errSkip
			}
			return in.add(d)
		})
		if err != nil {
			return err
		}
	default:
		return errSkip
	}
	in.span = [2]int{start, d.Offset()}
	return nil
}

// add reads the input string at d.
func (in *inputs) add(d *jsonscan.Decoder) error {
	start := d.Offset()
	raw, escaped, err := d.ReadRawString()
	if err != nil {
		return err
	}
	in.items = append(in.items, [2]int{start, d.Offset()})
	in.tokens = append(in.tokens, stringTokens(raw, escaped))
	return nil
}

// batchKey is what requests must share to merge: the endpoint, the public
// model name and every byte of the body but the input (so, for
// completions, the same n, max_tokens, temperature, seed, stop, user…).
func batchKey(r *backend.Request, in inputs) string {
	b := make([]byte, 0, len(r.Endpoint)+len(r.PublicModel)+2+len(r.Body)-(in.span[1]-in.span[0]))
	b = append(b, r.Endpoint...)
	b = append(b, 0)
	b = append(b, r.PublicModel...)
	b = append(b, 0)
	b = append(b, r.Body[:in.span[0]]...)
	b = append(b, r.Body[in.span[1]:]...)
	return string(b)
}

// mergeRequest is the one request for members: the first's, with an
// input array of every member's inputs in order.
func mergeRequest(members []*member) *backend.Request {
	first := members[0]
	body, span := first.r.Body, first.in.span
	size := len(body) - (span[1] - span[0]) + 2
	for _, m := range members {
		for _, it := range m.in.items {
			size += it[1] - it[0] + 1
		}
	}
	out := make([]byte, 0, size)
	out = append(out, body[:span[0]]...)
	out = append(out, '[')
	n := 0
	for _, m := range members {
		for _, it := range m.in.items {
			if n > 0 {
				out = append(out, ',')
			}
			out = append(out, m.r.Body[it[0]:it[1]]...)
			n++
		}
	}
	out = append(out, ']')
	out = append(out, body[span[1]:]...)

	r := *first.r
	r.Body = out
	delta := len(out) - len(body)
	shift := func(s [2]int) [2]int {
		if s != [2]int{} && s[0] >= span[1] {
			return [2]int{s[0] + delta, s[1] + delta}
		}
		return s
	}
	r.ModelSpan, r.StreamSpan, r.StreamOptionsSpan = shift(r.ModelSpan), shift(r.StreamSpan), shift(r.StreamOptionsSpan)
	r.Deadline = latestDeadline(members)
	return &r
}

// latestDeadline is the latest of the members' deadlines; none when one
// of them has none.
func latestDeadline(members []*member) time.Time {
	var t time.Time
	for _, m := range members {
		d := m.r.Deadline
		if d.IsZero() {
			return time.Time{}
		}
		if d.After(t) {
			t = d
		}
	}
	return t
}
