package router

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/catalog"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/request"
	"github.com/omnigate/omnigate/internal/resilience"
)

func testCatalog(t *testing.T) *catalog.Catalog {
	t.Helper()
	cfg := config.Default()
	cat, err := catalog.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// names renders a chain as "model" or "model(classes)" for links that
// are not tried for every class.
func names(chain []catalog.Link) []string {
	var out []string
	for _, l := range chain {
		n := l.Model.Name
		if l.On != resilience.AnyClass {
			n += "(" + l.On.String() + ")"
		}
		out = append(out, n)
	}
	return out
}

func TestRoute(t *testing.T) {
	cat := testCatalog(t)
	r, err := New(cat, config.Routing{Fallbacks: map[string][]config.Fallback{
		"qwen3-omni-30b": {{Model: "qwen3-omni-7b"}, {Model: "qwen3-omni-30b"}},
		"qwen3-omni-7b":  {{Model: "qwen3-omni-30b", On: []string{"context_length", "overloaded"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		want []string
	}{
		{"qwen3-omni-30b", []string{"qwen3-omni-30b", "qwen3-omni-7b"}}, // itself is not repeated
		{"large", []string{"qwen3-omni-30b", "qwen3-omni-7b"}},
		{"qwen3-omni-7b", []string{"qwen3-omni-7b", "qwen3-omni-30b(overloaded+context_length)"}}, // not on to 30b's own fallbacks
		{"small", []string{"qwen3-omni-7b", "qwen3-omni-30b(overloaded+context_length)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			chain, err := r.Resolve(tc.name)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, names(chain)); diff != "" {
				t.Errorf("chain (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRouteUnknownModel(t *testing.T) {
	r, err := New(testCatalog(t), config.Routing{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = r.Route(&request.Request{Model: "gpt-4o"}, nil, nil)
	var e *apierror.Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v", err)
	}
	if e.Status != 404 || e.Param != "model" || e.Code != "model_not_found" {
		t.Errorf("got %+v", e)
	}
	for _, n := range []string{"qwen3-omni-7b", "qwen3-omni-30b", "small", "large", "gpt-4o"} {
		if !strings.Contains(e.Message, n) {
			t.Errorf("message %q does not mention %s", e.Message, n)
		}
	}
}

func TestNewRejectsUnknownFallback(t *testing.T) {
	if _, err := New(testCatalog(t), config.Routing{Fallbacks: map[string][]config.Fallback{"qwen3-omni-30b": {{Model: "nope"}}}}); err == nil {
		t.Error("unknown fallback accepted")
	}
	if _, err := New(testCatalog(t), config.Routing{Fallbacks: map[string][]config.Fallback{"qwen3-omni-30b": {{Model: "qwen3-omni-7b", On: []string{"nope"}}}}}); err == nil {
		t.Error("unknown error class accepted")
	}
}

func BenchmarkRoute(b *testing.B) {
	cat, err := catalog.New(config.Default())
	if err != nil {
		b.Fatal(err)
	}
	r, err := New(cat, config.Routing{Fallbacks: map[string][]config.Fallback{"qwen3-omni-30b": {{Model: "qwen3-omni-7b"}}}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := r.Route(&request.Request{Model: "large"}, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
}
