package request

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/omnigate/omnigate/internal/apierror"
)

// FuzzParse: Parse never panics, accepts only what encoding/json accepts,
// fails only with 400s, and what it accepts survives the edits the gateway
// makes (a rename, a token limit) as valid JSON whose re-parse is the view
// Edit kept up to date.
func FuzzParse(f *testing.F) {
	for _, s := range []string{chatSmall, chatMultimodal, chat(`"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"auto"`),
		`{"model":"m","prompt":[[1,2]],"max_tokens":3}`, `{"model":"m","input":["a"]}`, `{"model":"m",}`} {
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
		out := r.Edit(body, Edit{Span: r.ModelSpan, Value: []byte(`"renamed"`)})
		r.Model = "renamed"
		if Endpoint(ep) != Embeddings {
			out = r.SetMaxTokens(out, 4096)
		}
		var r2 Request
		if err := Parse(Endpoint(ep), out, &r2); err != nil {
			t.Fatalf("edited body %q does not parse: %v", out, err)
		}
		if r2 != r {
			t.Fatalf("edited view %+v, re-parse %+v", r, r2)
		}
	})
}
