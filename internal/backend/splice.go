package backend

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/omnigate/omnigate/internal/jsonscan"
)

// The request body is forwarded as the client sent it; these helpers change
// single top-level fields in place of re-encoding the document.

var errBadJSON = errors.New("malformed JSON body")

// spliceSpan returns body with body[span[0]:span[1]] replaced by repl. It
// returns body itself when the span is empty or already holds repl.
func spliceSpan(body []byte, span [2]int, repl []byte) []byte {
	s, e := span[0], span[1]
	if s == e || s < 0 || e > len(body) || s > e || bytes.Equal(body[s:e], repl) {
		return body
	}
	out := make([]byte, 0, len(body)-(e-s)+len(repl))
	out = append(out, body[:s]...)
	out = append(out, repl...)
	return append(out, body[e:]...)
}

// topLevelValue finds key among the members of the JSON object doc and
// returns the span of its value.
func topLevelValue(doc []byte, key string) (start, end int, ok bool, err error) {
	err = jsonscan.ObjectEach(doc, func(k, v []byte, off int) error {
		if !ok && jsonscan.Equal(k, key) {
			start, end, ok = off, off+len(v), true
		}
		return nil
	})
	if err != nil {
		return 0, 0, false, fmt.Errorf("%w: %w", errBadJSON, err)
	}
	return start, end, ok, nil
}

// Values forceStream writes.
var (
	streamTrue          = []byte("true")
	streamOptionsMember = []byte(`"stream_options":{"include_usage":true}`)
)

// forceStream rewrites a non-streaming request body to ask for a stream with
// a final usage chunk: an existing "stream" value is replaced by true, a
// missing one inserted after the opening brace, and "stream_options" added
// when absent.
func forceStream(body []byte) ([]byte, error) {
	ss, se, hasStream, err := topLevelValue(body, "stream")
	if err != nil {
		return nil, err
	}
	_, _, hasOpts, err := topLevelValue(body, "stream_options")
	if err != nil {
		return nil, err
	}
	if hasStream {
		body = spliceSpan(body, [2]int{ss, se}, streamTrue)
	}
	var ins []byte
	if !hasStream {
		ins = append(ins, `"stream":true`...)
	}
	if !hasOpts {
		if len(ins) > 0 {
			ins = append(ins, ',')
		}
		ins = append(ins, streamOptionsMember...)
	}
	if len(ins) == 0 {
		return body, nil
	}
	open := bytes.IndexByte(body, '{') + 1 // topLevelValue checked the object
	if rest := bytes.TrimLeft(body[open:], " \t\r\n"); len(rest) > 0 && rest[0] != '}' {
		ins = append(ins, ',')
	}
	out := make([]byte, 0, len(body)+len(ins))
	out = append(out, body[:open]...)
	out = append(out, ins...)
	return append(out, body[open:]...), nil
}

// quoteJSON returns s as a JSON string literal.
func quoteJSON(s string) []byte { return jsonscan.AppendString(nil, s) }
