package request

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/omnigate/omnigate/internal/apierror"
)

// FuzzParse: Parse never panics, accepts only what encoding/json accepts
// and only with unique top-level keys, fails only with 400s, and what it
// accepts survives the edits the gateway makes (normalizing integers, a
// rename, a token limit) as valid JSON whose re-parse is the view Edit kept
// up to date.
func FuzzParse(f *testing.F) {
	for _, s := range []string{chatSmall, chatMultimodal, chatEverything, chat(`"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"auto"`),
		`{"model":"m","prompt":[[1,2]],"max_tokens":3}`, `{"model":"m","input":["a"]}`, `{"model":"m",}`,
		chat(`"max_tokens":null`), chat(`"n":2.0,"seed":1e1,"max_tokens":5e2`), chat(`"top_k":1,"top\u005fk":2`)} {
		f.Add(uint8(Chat), []byte(s))
	}
	f.Fuzz(func(t *testing.T, ep uint8, body []byte) {
		ep = ep%3 + 1
		var r Request
		err := Parse(Endpoint(ep), body, &r)
		if err != nil {
			var ae *apierror.Error
			if !errors.As(err, &ae) || ae.Status != 400 {
				t.Fatalf("Parse error %v is not a 400 *apierror.Error", err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("Parse accepted %q, encoding/json rejects it", body)
		}
		if k, ok := repeatedKey(body); ok {
			t.Fatalf("Parse accepted %q, which has %q twice", body, k)
		}
		out := r.Normalize(body)
		out = r.Edit(out, Edit{Span: r.ModelSpan, Value: []byte(`"renamed"`)})
		r.Model = "renamed"
		if Endpoint(ep) != Embeddings {
			out = r.SetMaxTokens(out, 4096)
		}
		var r2 Request
		if err := Parse(Endpoint(ep), out, &r2); err != nil {
			t.Fatalf("edited body %q does not parse: %v", out, err)
		}
		if r2 != r || r.NumNonCanonical != 0 {
			t.Fatalf("edited view %+v, re-parse %+v", r, r2)
		}
	})
}

// repeatedKey returns a key the top-level object has twice, decoded.
func repeatedKey(body []byte) (string, bool) {
	var members map[string]json.RawMessage
	if json.Unmarshal(body, &members) != nil {
		return "", false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	seen := map[string]bool{}
	dec.Token() // {
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		k := tok.(string)
		if seen[k] {
			return k, true
		}
		seen[k] = true
		var v json.RawMessage
		if dec.Decode(&v) != nil {
			return "", false
		}
	}
	return "", false
}
