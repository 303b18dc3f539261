package backend

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/config"
)

// TestPrepare: the upstream model name and, for a stream-only deployment,
// stream:true with a usage chunk, spliced at the recorded spans in one
// pass.
func TestPrepare(t *testing.T) {
	opts := `"stream_options":{"include_usage":true}`
	tests := []struct {
		name, in, want string
		aggregate      bool
	}{
		{"rename", `{"model":"small","messages":[]}`, `{"model":"Qwen/Qwen2.5-Omni-7B","messages":[]}`, false},
		{"same name is no copy", `{"model":"Qwen/Qwen2.5-Omni-7B"}`, `{"model":"Qwen/Qwen2.5-Omni-7B"}`, false},
		{"false replaced", `{"model":"m","stream":false}`, `{` + opts + `,"model":"Qwen/Qwen2.5-Omni-7B","stream":true}`, true},
		{"missing inserted", `{"model":"m"}`, `{"stream":true,` + opts + `,"model":"Qwen/Qwen2.5-Omni-7B"}`, true},
		{"whitespace kept", " {\n  \"model\": \"m\",\n  \"stream\" : false }", " {" + opts + ",\n  \"model\": \"Qwen/Qwen2.5-Omni-7B\",\n  \"stream\" : true }", true},
		{"options kept", `{"stream_options":{"include_usage":false},"model":"m"}`, `{"stream":true,"stream_options":{"include_usage":false},"model":"Qwen/Qwen2.5-Omni-7B"}`, true},
		{"null options replaced", `{"model":"m","stream":null,"stream_options":null}`, `{"model":"Qwen/Qwen2.5-Omni-7B","stream":true,"stream_options":{"include_usage":true}}`, true},
		{"nested stream ignored", `{"model":"m","x":{"stream":false},"s":"\"stream\":false"}`, `{"stream":true,` + opts + `,"model":"Qwen/Qwen2.5-Omni-7B","x":{"stream":false},"s":"\"stream\":false"}`, true},
	}
	o, err := NewOpenAI(config.Deployment{Name: "d", URL: "http://127.0.0.1:1/v1", UpstreamModel: "Qwen/Qwen2.5-Omni-7B"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := chatRequest(t, tt.in, "small", false)
			got := o.prepare(r, tt.aggregate)
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if tt.in == tt.want && &got[0] != &r.Body[0] {
				t.Error("an unchanged body was copied")
			}
		})
	}
}
