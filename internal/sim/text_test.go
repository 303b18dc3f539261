package sim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCountTokens(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"", 0},
		{"   \n\t", 0},
		{"hello", 1},
		{"hello world", 2},
		{"tokenizer", 2},
		{"internationalization", 4},
		{"Hello, world!", 4},
		{"a1b2c3", 2},
		{"你好世界", 4},
		{"naïve café", 2},
		{"x = 42;", 4},
		{"🙂", 1},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := countTokens(tc.in); got != tc.want {
				t.Errorf("countTokens(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

func TestGenerate(t *testing.T) {
	seed := choiceSeed(hashOf("prompt"), nil, nil, 0)
	a := generate(seed, [2]int{20, 40}, 1000, nil)
	t.Run("deterministic", func(t *testing.T) {
		if diff := cmp.Diff(a, generate(seed, [2]int{20, 40}, 1000, nil), cmp.AllowUnexported(answer{})); diff != "" {
			t.Error(diff)
		}
	})
	t.Run("length and finish", func(t *testing.T) {
		if n := len(a.tokens); n < 20 || n > 40 || a.finish != "stop" || !strings.HasSuffix(a.text, ".") {
			t.Errorf("%d tokens, finish %s, text %q", n, a.finish, a.text)
		}
	})
	t.Run("tokens match the tokenizer", func(t *testing.T) {
		if got := countTokens(a.text); got != len(a.tokens) {
			t.Errorf("countTokens(text) = %d for %d generated tokens: %q", got, len(a.tokens), a.text)
		}
	})
	t.Run("max tokens gives a prefix", func(t *testing.T) {
		b := generate(seed, [2]int{20, 40}, 7, nil)
		if len(b.tokens) != 7 || b.finish != "length" || !strings.HasPrefix(a.text, b.text) {
			t.Errorf("capped: %d tokens, %s, %q (full %q)", len(b.tokens), b.finish, b.text, a.text)
		}
	})
	t.Run("seed and temperature", func(t *testing.T) {
		s1, s2, zero, one := int64(1), int64(2), 0.0, 1.0
		if choiceSeed(7, &s1, &one, 0) == choiceSeed(7, &s2, &one, 0) {
			t.Error("seed ignored")
		}
		if choiceSeed(7, &s1, &zero, 0) != choiceSeed(7, &s2, &zero, 0) {
			t.Error("greedy decoding depends on the seed")
		}
		if choiceSeed(7, nil, nil, 0) == choiceSeed(7, nil, nil, 1) {
			t.Error("choices share a seed")
		}
	})
}

func TestStopStrings(t *testing.T) {
	seed := choiceSeed(hashOf("stop test"), nil, nil, 0)
	full := generate(seed, [2]int{30, 30}, 100, nil)
	// Stop at the third token's text (it starts at a token boundary).
	third := full.tokens[2]
	at := len(full.tokens[0]) + len(full.tokens[1])
	got := generate(seed, [2]int{30, 30}, 100, []string{"zzz-never", third})
	if idx := strings.Index(full.text, third); idx < at {
		at = idx // the same text appeared earlier
	}
	if got.text != full.text[:at] || got.finish != "stop" {
		t.Errorf("stop %q: text %q finish %s; full %q", third, got.text, got.finish, full.text)
	}
	if strings.Join(got.tokens, "") != got.text {
		t.Errorf("tokens %q do not spell the text %q", got.tokens, got.text)
	}
	// A stop string spanning two tokens ends generation at the second.
	span := full.tokens[5][1:] + full.tokens[6]
	got = generate(seed, [2]int{30, 30}, 100, []string{span})
	if i := strings.Index(full.text, span); got.text != full.text[:i] {
		t.Errorf("spanning stop: %q", got.text)
	}
	// No match: unchanged.
	if got := generate(seed, [2]int{30, 30}, 100, []string{"@@"}); got.text != full.text || got.finish != "stop" {
		t.Errorf("no match changed the answer: %q", got.text)
	}
}

func TestProfiles(t *testing.T) {
	if diff := cmp.Diff([]string{"instant", "qwen3-omni-30b", "qwen3-omni-7b"}, ProfileNames()); diff != "" {
		t.Errorf("ProfileNames (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		name        string
		maxLen      int
		audio, zero bool
	}{
		{"qwen3-omni-7b", 32768, true, false},
		{"qwen3-omni-30b", 65536, true, false},
		{"instant", 32768, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustProfile(t, tc.name)
			if p.Name != tc.name || p.MaxModelLen != tc.maxLen || p.AudioOutput() != tc.audio || p.zeroLatency() != tc.zero {
				t.Errorf("%+v", p)
			}
		})
	}
	p7, p30 := mustProfile(t, "qwen3-omni-7b"), mustProfile(t, "qwen3-omni-30b")
	if !(p30.MaxNumSeqs > p7.MaxNumSeqs && p30.KVCacheTokens > p7.KVCacheTokens && p30.DecodePerSeq < p7.DecodePerSeq) {
		t.Error("the 30b tier should batch more and grow its step more slowly")
	}
	if _, err := LoadProfile("qwen3-omni-1t"); err == nil || !strings.Contains(err.Error(), "instant") {
		t.Errorf("unknown profile: %v", err)
	}
}

func TestLoadProfileFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	p, err := LoadProfile(write("mine.yaml", "max_model_len: 8192\ndecode_base: 20ms\nanswer_tokens: [3, 5]\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Profile{Name: "mine", MaxModelLen: 8192, MaxNumSeqs: 256, MaxNumBatchedTokens: 8192, BlockSize: 16,
		DecodeBase: 20e6, AnswerTokens: [2]int{3, 5}, EmbeddingDims: 256}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	for _, tc := range []struct{ name, body, want string }{
		{"unknown key", "max_model_len: 10\nmax_seqs: 3\n", "max_seqs"},
		{"bad range", "max_model_len: 10\nanswer_tokens: [5, 2]\n", "answer_tokens"},
		{"negative", "max_model_len: 10\ndecode_base: -1ms\n", "decode_base"},
		{"no length", "decode_base: 1ms\n", "max_model_len"},
		{"tiny cache", "max_model_len: 10\nkv_cache_tokens: 8\n", "kv_cache_tokens"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadProfile(write(strings.ReplaceAll(tc.name, " ", "-")+".yaml", tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want mention of %s", err, tc.want)
			}
		})
	}
}

func TestSplitTokens(t *testing.T) {
	for _, in := range []string{
		"", " ", "hello", "hello world", "internationalization", `{"city":"Paris","days":12}`,
		"a  b\n", "  lead", "你好, world", "naïve café!", "x = 42;", "🙂🙂", "abcdefghij_klm", "tab\tand\nnewline ",
	} {
		t.Run(in, func(t *testing.T) {
			pieces := splitTokens([]string{"before"}, in)[1:]
			if got := strings.Join(pieces, ""); got != in {
				t.Errorf("pieces %q spell %q", pieces, got)
			}
			if want := countTokens(in); len(pieces) != want && !(want == 0 && len(pieces) <= 1) {
				t.Errorf("%d pieces %q, countTokens %d", len(pieces), pieces, want)
			}
			for _, p := range pieces {
				if countTokens(p) > 1 {
					t.Errorf("piece %q costs %d tokens", p, countTokens(p))
				}
			}
		})
	}
}
