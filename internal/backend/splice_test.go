package backend

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSpliceSpan(t *testing.T) {
	body := `{"model":"small","messages":[]}`
	tests := []struct {
		name string
		span [2]int
		repl string
		want string
	}{
		{"replace", [2]int{9, 16}, `"Qwen/Qwen2.5-Omni-7B"`, `{"model":"Qwen/Qwen2.5-Omni-7B","messages":[]}`},
		{"shorter", [2]int{9, 16}, `"s"`, `{"model":"s","messages":[]}`},
		{"equal is a no-op", [2]int{9, 16}, `"small"`, body},
		{"zero span", [2]int{}, `"x"`, body},
		{"span out of range", [2]int{9, 99}, `"x"`, body},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(spliceSpan([]byte(body), tt.span, []byte(tt.repl)))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestSpliceSpanEqualDoesNotCopy(t *testing.T) {
	body := []byte(`{"model":"small"}`)
	got := spliceSpan(body, [2]int{9, 16}, []byte(`"small"`))
	if &got[0] != &body[0] {
		t.Error("an unchanged body was copied")
	}
}

func TestForceStream(t *testing.T) {
	opts := `"stream_options":{"include_usage":true}`
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{"false replaced", `{"model":"m","stream":false}`, `{` + opts + `,"model":"m","stream":true}`, false},
		{"missing inserted", `{"model":"m"}`, `{"stream":true,` + opts + `,"model":"m"}`, false},
		{"whitespace kept", " {\n  \"model\": \"m\",\n  \"stream\" : false }", " {" + opts + ",\n  \"model\": \"m\",\n  \"stream\" : true }", false},
		{"options kept", `{"stream_options":{"include_usage":false},"model":"m"}`, `{"stream":true,"stream_options":{"include_usage":false},"model":"m"}`, false},
		{"empty object", `{}`, `{"stream":true,` + opts + `}`, false},
		{"nested stream ignored", `{"x":{"stream":false},"s":"\"stream\":false"}`, `{"stream":true,` + opts + `,"x":{"stream":false},"s":"\"stream\":false"}`, false},
		{"already true", `{"stream":true,` + opts + `}`, `{"stream":true,` + opts + `}`, false},
		{"not an object", `[1]`, ``, true},
		{"truncated", `{"model":"m"`, ``, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := forceStream([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestTopLevelValue(t *testing.T) {
	doc := `{"a":{"model":"no"},"b":[1,"}"],"m\"odel":"no","model" : "yes" ,"n":null}`
	s, e, ok, err := topLevelValue([]byte(doc), "model")
	if err != nil || !ok {
		t.Fatalf("ok=%v err=%v", ok, err)
	}
	if got := doc[s:e]; got != `"yes"` {
		t.Errorf("value = %s, want \"yes\"", got)
	}
	if _, _, ok, err := topLevelValue([]byte(doc), "absent"); ok || err != nil {
		t.Errorf("absent: ok=%v err=%v", ok, err)
	}
}
