package batching

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/backend"
	"github.com/omnigate/omnigate/internal/jsonscan"
	"github.com/omnigate/omnigate/internal/request"
)

// answer is where the parts of a merged answer sit in its body.
type answer struct {
	list    [2]int  // the entries' array: embeddings' data, completions' choices
	entries []entry // by index
	usage   []count // the usage counts present
}

// entry is one element of the list and where its index value sits.
type entry struct {
	span, index [2]int
	tokens      int // the estimated tokens of its text (completions)
}

// number is an integer member and where its value sits.
type number struct {
	span  [2]int
	value int
}

// count is one of usage's counts.
type count struct {
	name string // prompt_tokens, completion_tokens or total_tokens
	number
}

// splitResponse reads the merged answer and makes each member's.
func splitResponse(resp *http.Response, members []*member) ([]*http.Response, error) {
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, invalid("reading the merged answer", err)
	}
	out := make([]*http.Response, len(members))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// Not what a Backend returns, but if one does: the same answer to all.
		for i := range members {
			out[i] = newResponse(resp, body, false)
		}
		return out, nil
	}
	sh, per := members[0].in.shape, members[0].in.n // the same for all: the key says so
	n := 0
	for _, m := range members {
		n += len(m.in.items) * per
	}
	a, err := parseAnswer(body, sh, n)
	if err != nil {
		return nil, invalid("splitting the merged answer", err)
	}
	own := make([][]entry, len(members))
	first := 0
	for i, m := range members {
		k := len(m.in.items) * per
		own[i] = a.entries[first : first+k]
		first += k
	}
	usage := splitUsage(a.usage, members, own)
	for i := range members {
		edits := make([]request.Edit, 0, 1+len(a.usage))
		edits = append(edits, request.Edit{Span: a.list, Value: memberList(body, own[i])})
		for j, u := range a.usage {
			edits = append(edits, request.Edit{Span: u.span, Value: strconv.AppendInt(nil, int64(usage[j][i]), 10)})
		}
		out[i] = newResponse(resp, request.Splice(body, edits...), true)
	}
	return out, nil
}

// parseAnswer reads an answer of n entries in sh's list:
// {"data": [{"index": i, …}, …], "usage": {"prompt_tokens": t, …}, …}.
func parseAnswer(body []byte, sh *shape, n int) (answer, error) {
	var a answer
	d := jsonscan.NewDecoder(body)
	var keys jsonscan.Keys
	var seenList, seenUsage bool
	a.entries = make([]entry, n)
	found := make([]bool, n)
	err := d.ObjectUnique(&keys, func(key []byte) error {
		switch string(key) {
		case sh.list:
			if seenList {
				return fmt.Errorf("two %s members", sh.list)
			}
			seenList = true
			start := d.Offset()
			count := 0
			err := d.Array(func(int) error {
				e, i, err := readEntry(&d, sh)
				if err != nil {
					return err
				}
				if i < 0 || i >= n || found[i] {
					return fmt.Errorf("%s has index %d, want each of 0 to %d once", sh.list, i, n-1)
				}
				found[i], a.entries[i] = true, e
				count++
				return nil
			})
			if err != nil {
				return err
			}
			if count != n {
				return fmt.Errorf("%s has %d entries, want %d", sh.list, count, n)
			}
			a.list = [2]int{start, d.Offset()}
		case "usage":
			if seenUsage {
				return errors.New("two usage members")
			}
			seenUsage = true
			if k, err := d.Peek(); err != nil || k != jsonscan.Object {
				return nil // null or odd: left as it is
			}
			return d.Object(func(key []byte) error {
				name := countName(key)
				if name == "" {
					return nil
				}
				v, ok, err := readInt(&d)
				if err != nil || !ok {
					return err
				}
				a.usage = append(a.usage, count{name: name, number: v})
				return nil
			})
		}
		return nil
	})
	if err == nil {
		err = d.End()
	}
	if err == nil && !seenList {
		err = fmt.Errorf("no %s member", sh.list)
	}
	return a, err
}

// The usage counts that are split.
const (
	promptTokens     = "prompt_tokens"
	completionTokens = "completion_tokens"
	totalTokens      = "total_tokens"
)

// countName is key's name among the usage counts that are split, or "".
func countName(key []byte) string {
	switch string(key) {
	case promptTokens:
		return promptTokens
	case completionTokens:
		return completionTokens
	case totalTokens:
		return totalTokens
	}
	return ""
}

// readEntry reads one element of the list, an object with an integer
// index (and, for sh.text, a string whose tokens are estimated).
func readEntry(d *jsonscan.Decoder, sh *shape) (entry, int, error) {
	var e entry
	idx := -1
	start := d.Offset()
	if k, err := d.Peek(); err != nil || k != jsonscan.Object {
		return e, 0, fmt.Errorf("a %s entry is not an object", sh.list)
	}
	err := d.Object(func(key []byte) error {
		switch {
		case string(key) == "index":
			v, ok, err := readInt(d)
			if err != nil || !ok {
				return fmt.Errorf("a %s entry's index is not an integer", sh.list)
			}
			e.index, idx = v.span, v.value
		case sh.text != "" && string(key) == sh.text:
			if k, err := d.Peek(); err != nil || k != jsonscan.String {
				return err // null or odd: no tokens
			}
			raw, escaped, err := d.ReadRawString()
			if err != nil {
				return err
			}
			e.tokens = stringTokens(raw, escaped)
		}
		return nil
	})
	e.span = [2]int{start, d.Offset()}
	if err == nil && idx < 0 {
		err = fmt.Errorf("a %s entry has no index", sh.list)
	}
	return e, idx, err
}

// readInt reads a non-negative integer; ok false (the value left unread)
// when the value is not one.
func readInt(d *jsonscan.Decoder) (number, bool, error) {
	k, err := d.Peek()
	if err != nil || k != jsonscan.Number {
		return number{}, false, err
	}
	start := d.Offset()
	lit, err := d.ReadNumber()
	if err != nil {
		return number{}, false, err
	}
	v, err := jsonscan.ParseInt(lit)
	if err != nil || v < 0 || v > 1<<40 {
		return number{}, true, errors.New("a count is not a non-negative integer")
	}
	return number{span: [2]int{start, d.Offset()}, value: int(v)}, true, nil
}

// memberList is the list of one member's entries, renumbered from 0.
func memberList(body []byte, entries []entry) []byte {
	size := 2
	for _, e := range entries {
		size += e.span[1] - e.span[0] + 4
	}
	out := make([]byte, 0, size)
	out = append(out, '[')
	for i, e := range entries {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, body[e.span[0]:e.index[0]]...)
		out = strconv.AppendInt(out, int64(i), 10)
		out = append(out, body[e.index[1]:e.span[1]]...)
	}
	return append(out, ']')
}

// splitUsage splits each usage count among the members: parts[j][i] is
// count j's part for member i. prompt_tokens goes by the members' estimated
// input tokens, completion_tokens by the estimated tokens of the texts of
// their own entries (own[i]), total_tokens is a member's two parts added
// up when the engine's total is their sum (else it is split by both
// weights together).
func splitUsage(usage []count, members []*member, own [][]entry) [][]int {
	in := make([]int, len(members))
	gen := make([]int, len(members))
	for i, m := range members {
		for _, t := range m.in.tokens {
			in[i] += t
		}
		for _, e := range own[i] {
			gen[i] += e.tokens
		}
	}
	parts := make([][]int, len(usage))
	sum := make([]int, len(members)) // the prompt and completion parts
	counted := 0                     // the prompt and completion totals
	for j, u := range usage {
		w := in
		switch u.name {
		case totalTokens:
			continue
		case completionTokens:
			w = gen
		}
		parts[j] = splitTotal(u.value, w)
		counted += u.value
		for i, p := range parts[j] {
			sum[i] += p
		}
	}
	for j, u := range usage {
		if u.name != totalTokens {
			continue
		}
		if u.value == counted && counted > 0 {
			parts[j] = sum
			continue
		}
		both := make([]int, len(members))
		for i := range both {
			both[i] = in[i] + gen[i]
		}
		parts[j] = splitTotal(u.value, both)
	}
	return parts
}

// newResponse is a member's own response: src's status and headers
// with body.
func newResponse(src *http.Response, body []byte, json bool) *http.Response {
	h := src.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	if json {
		h.Set("Content-Type", "application/json")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Del("Content-Encoding")
	return &http.Response{
		Status: src.Status, StatusCode: src.StatusCode,
		Proto: src.Proto, ProtoMajor: src.ProtoMajor, ProtoMinor: src.ProtoMinor,
		Header: h, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)),
	}
}

// invalid is every member's error when the merged answer cannot be split.
func invalid(what string, err error) *apierror.Error {
	return &apierror.Error{Status: http.StatusBadGateway, Type: apierror.TypeServer, Code: backend.CodeInvalidResponse,
		Message: "The upstream's answer to a batched request could not be split.",
		Err:     &backend.ConnError{Err: fmt.Errorf("%s: %w", what, err)}}
}
