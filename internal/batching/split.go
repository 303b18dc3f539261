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

// answer is where the parts of a merged embeddings answer sit in its body.
type answer struct {
	data    [2]int   // the data array
	entries []entry  // by index
	usage   []number // usage's prompt_tokens and total_tokens, when present
}

// entry is one data element and where its index value sits.
type entry struct {
	span, index [2]int
}

// number is an integer member and where its value sits.
type number struct {
	span  [2]int
	value int
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
	n := 0
	for _, m := range members {
		n += len(m.in.items)
	}
	a, err := parseAnswer(body, n)
	if err != nil {
		return nil, invalid("splitting the merged answer", err)
	}
	usage := splitUsage(a.usage, members)
	first := 0
	for i, m := range members {
		k := len(m.in.items)
		edits := make([]request.Edit, 0, 1+len(a.usage))
		edits = append(edits, request.Edit{Span: a.data, Value: memberData(body, a.entries[first:first+k])})
		for j, u := range a.usage {
			edits = append(edits, request.Edit{Span: u.span, Value: strconv.AppendInt(nil, int64(usage[j][i]), 10)})
		}
		out[i] = newResponse(resp, request.Splice(body, edits...), true)
		first += k
	}
	return out, nil
}

// parseAnswer reads an embeddings answer of n inputs:
// {"data": [{"index": i, …}, …], "usage": {"prompt_tokens": t, …}, …}.
func parseAnswer(body []byte, n int) (answer, error) {
	var a answer
	d := jsonscan.NewDecoder(body)
	var keys jsonscan.Keys
	var seenData, seenUsage bool
	a.entries = make([]entry, n)
	found := make([]bool, n)
	err := d.ObjectUnique(&keys, func(key []byte) error {
		switch string(key) {
		case "data":
			if seenData {
				return errors.New("two data members")
			}
			seenData = true
			start := d.Offset()
			count := 0
			err := d.Array(func(int) error {
				e, i, err := readEntry(&d)
				if err != nil {
					return err
				}
				if i < 0 || i >= n || found[i] {
					return fmt.Errorf("data has index %d, want each of 0 to %d once", i, n-1)
				}
				found[i], a.entries[i] = true, e
				count++
				return nil
			})
			if err != nil {
				return err
			}
			if count != n {
				return fmt.Errorf("data has %d entries for %d inputs", count, n)
			}
			a.data = [2]int{start, d.Offset()}
		case "usage":
			if seenUsage {
				return errors.New("two usage members")
			}
			seenUsage = true
			if k, err := d.Peek(); err != nil || k != jsonscan.Object {
				return nil // null or odd: left as it is
			}
			return d.Object(func(key []byte) error {
				if string(key) != "prompt_tokens" && string(key) != "total_tokens" {
					return nil
				}
				v, ok, err := readInt(&d)
				if err != nil || !ok {
					return err
				}
				a.usage = append(a.usage, v)
				return nil
			})
		}
		return nil
	})
	if err == nil {
		err = d.End()
	}
	if err == nil && !seenData {
		err = errors.New("no data member")
	}
	return a, err
}

// readEntry reads one data element, an object with an integer index.
func readEntry(d *jsonscan.Decoder) (entry, int, error) {
	var e entry
	idx := -1
	start := d.Offset()
	if k, err := d.Peek(); err != nil || k != jsonscan.Object {
		return e, 0, errors.New("a data entry is not an object")
	}
	err := d.Object(func(key []byte) error {
		if string(key) != "index" {
			return nil
		}
		v, ok, err := readInt(d)
		if err != nil || !ok {
			return errors.New("a data entry's index is not an integer")
		}
		e.index, idx = v.span, v.value
		return nil
	})
	e.span = [2]int{start, d.Offset()}
	if err == nil && idx < 0 {
		err = errors.New("a data entry has no index")
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

// memberData is the data array of one member's entries, renumbered.
func memberData(body []byte, entries []entry) []byte {
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

// splitUsage splits each usage count among the members by their
// estimated tokens: parts[j][i] is count j's part for member i.
func splitUsage(usage []number, members []*member) [][]int {
	weights := make([]int, len(members))
	for i, m := range members {
		for _, t := range m.in.tokens {
			weights[i] += t
		}
	}
	parts := make([][]int, len(usage))
	for j, u := range usage {
		parts[j] = splitTotal(u.value, weights)
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
