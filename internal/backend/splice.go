package backend

import (
	"bytes"
	"encoding/json"
	"errors"
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
// returns the span of its value. Keys written with escapes are not matched.
func topLevelValue(doc []byte, key string) (start, end int, ok bool, err error) {
	i := skipWS(doc, 0)
	if i >= len(doc) || doc[i] != '{' {
		return 0, 0, false, errBadJSON
	}
	i = skipWS(doc, i+1)
	if i < len(doc) && doc[i] == '}' {
		return 0, 0, false, nil
	}
	for i < len(doc) {
		if doc[i] != '"' {
			return 0, 0, false, errBadJSON
		}
		ks := i
		i = skipString(doc, i)
		if i < 0 {
			return 0, 0, false, errBadJSON
		}
		match := i-ks == len(key)+2 && string(doc[ks+1:i-1]) == key
		i = skipWS(doc, i)
		if i >= len(doc) || doc[i] != ':' {
			return 0, 0, false, errBadJSON
		}
		vs := skipWS(doc, i+1)
		ve := skipValue(doc, vs)
		if ve < 0 {
			return 0, 0, false, errBadJSON
		}
		if match {
			return vs, ve, true, nil
		}
		i = skipWS(doc, ve)
		if i >= len(doc) {
			break
		}
		switch doc[i] {
		case ',':
			i = skipWS(doc, i+1)
		case '}':
			return 0, 0, false, nil
		default:
			return 0, 0, false, errBadJSON
		}
	}
	return 0, 0, false, errBadJSON
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at b[i] (a
// quote), or -1.
func skipString(b []byte, i int) int {
	i++
	for i < len(b) {
		j := bytes.IndexAny(b[i:], `"\`)
		if j < 0 {
			return -1
		}
		i += j
		if b[i] == '"' {
			return i + 1
		}
		i += 2 // backslash and the escaped byte
	}
	return -1
}

// skipValue returns the index just past the value starting at b[i], or -1.
// It checks nesting and strings, not the spelling of literals and numbers:
// the upstream validates the document anyway.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				if i < 0 {
					return -1
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	default:
		s := i
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
			i++
		}
		if i == s {
			return -1
		}
		return i
	}
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
	open := skipWS(body, 0) + 1 // topLevelValue checked the brace
	if j := skipWS(body, open); j < len(body) && body[j] != '}' {
		ins = append(ins, ',')
	}
	out := make([]byte, 0, len(body)+len(ins))
	out = append(out, body[:open]...)
	out = append(out, ins...)
	return append(out, body[open:]...), nil
}

// quoteJSON returns s as a JSON string literal, without HTML escaping.
func quoteJSON(s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // cannot fail for a string
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
