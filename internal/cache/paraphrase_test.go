package cache

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/embedtest"
)

// paraphrase is one labelled case of testdata/paraphrases.jsonl: two
// prompts (texts, or for kind structural whole requests) and whether the
// second may be answered with the first's answer.
type paraphrase struct {
	Kind string          `json:"kind"` // paraphrase, number, negation, entity, unit, order, structural
	Hit  bool            `json:"hit"`
	Why  string          `json:"why"`
	A, B json.RawMessage // a string, or for structural cases a request
}

func loadParaphrases(t *testing.T) []paraphrase {
	t.Helper()
	f, err := os.Open("testdata/paraphrases.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []paraphrase
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		var p paraphrase
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			t.Fatalf("paraphrases.jsonl:%d: %v", n, err)
		}
		out = append(out, p)
	}
	return out
}

func (p paraphrase) texts() (string, string) {
	var a, b string
	json.Unmarshal(p.A, &a)
	json.Unmarshal(p.B, &b)
	return a, b
}

// asked wraps a prompt in the request the text cases share.
func asked(text string) []byte {
	b, _ := json.Marshal(map[string]any{"model": "m", "temperature": 0, "max_tokens": 200, "messages": []any{
		map[string]string{"role": "system", "content": "You are a helpful assistant."},
		map[string]string{"role": "user", "content": text},
	}})
	return b
}

// TestParaphraseScopes: the text cases reach the vector search (one
// semantic scope for both prompts), and no structural case does, whatever
// its text: those are told apart before any embedding.
func TestParaphraseScopes(t *testing.T) {
	for i, p := range loadParaphrases(t) {
		if p.Kind != "structural" {
			a, b := p.texts()
			ka, _, oka := SemanticKey("m", "", asked(a))
			kb, _, okb := SemanticKey("m", "", asked(b))
			if !oka || !okb || ka != kb {
				t.Errorf("case %d (%s): %q and %q are not compared by embedding", i+1, p.Kind, a, b)
			}
			continue
		}
		t.Run(p.Why, func(t *testing.T) {
			ka, _, oka := SemanticKey("m", "", p.A)
			kb, _, okb := SemanticKey("m", "", p.B)
			if oka && okb && ka == kb {
				t.Errorf("one semantic scope for\n%s\n%s", p.A, p.B)
			}
		})
	}
}

// TestParaphraseThreshold embeds the text cases with the test embedder
// (Universal Sentence Encoder lite) and reports precision (hits that are
// right) and recall (paraphrases that hit) at the default threshold and
// around it, and the closest pairs that must not hit; it fails if the
// default threshold makes a wrong hit. Run with -v for the table:
//
//	go test -run TestParaphraseThreshold -v ./internal/cache
func TestParaphraseThreshold(t *testing.T) {
	url := embedtest.Start(t)
	var cases []paraphrase
	var texts []string
	for _, p := range loadParaphrases(t) {
		if p.Kind == "structural" {
			continue
		}
		a, b := p.texts()
		cases = append(cases, p)
		texts = append(texts, a, b)
	}
	vecs := embedAll(t, url, texts)
	type scored struct {
		p      paraphrase
		sim    float32
		a, b   string
		expect bool
	}
	var all []scored
	for i, p := range cases {
		a, b := vecs[2*i], vecs[2*i+1]
		normalise(a)
		normalise(b)
		ta, tb := p.texts()
		all = append(all, scored{p, dot(a, b), ta, tb, p.Hit})
	}

	thresholds := []float32{0.80, 0.85, 0.88, 0.90, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98}
	var report strings.Builder
	positives := 0
	for _, s := range all {
		if s.expect {
			positives++
		}
	}
	// count is what threshold th serves: right and wrong hits, with the
	// literal check or on the similarity alone.
	count := func(th float32, literal bool) (tp, fp int) {
		for _, s := range all {
			if s.sim >= th && (!literal || LiteralsAgree(s.a, s.b)) {
				if s.expect {
					tp++
				} else {
					fp++
				}
			}
		}
		return tp, fp
	}
	ratio := func(n, d int) string {
		if d == 0 {
			return "—"
		}
		return fmt.Sprintf("%.3f", float64(n)/float64(d))
	}
	fmt.Fprintf(&report, "%d paraphrase pairs, %d pairs that must not hit (USE lite, 512 dims)\n\n", positives, len(all)-positives)
	fmt.Fprintf(&report, "| threshold | precision | recall | wrong hits | similarity alone: precision | recall | wrong hits |\n")
	fmt.Fprintf(&report, "| --- | --- | --- | --- | --- | --- | --- |\n")
	def := float32(config.DefaultSemanticThreshold)
	for _, th := range thresholds {
		tp, fp := count(th, true)
		tp0, fp0 := count(th, false)
		mark := ""
		if th == def {
			mark = " (default)"
		}
		fmt.Fprintf(&report, "| %.2f%s | %s | %s | %d | %s | %s | %d |\n", th, mark, ratio(tp, tp+fp), ratio(tp, positives), fp,
			ratio(tp0, tp0+fp0), ratio(tp0, positives), fp0)
		if th == def && fp > 0 {
			t.Errorf("%d wrong hits at the default threshold %.2f", fp, th)
		}
	}
	// The closest pairs that must not hit, and the farthest paraphrases.
	sort.Slice(all, func(i, j int) bool { return all[i].sim > all[j].sim })
	fmt.Fprintf(&report, "\nclosest pairs that must not hit:\n")
	n := 0
	for _, s := range all {
		if !s.expect && n < 100 {
			fmt.Fprintf(&report, "  %.4f %-8s literals agree: %-5v %q / %q\n", s.sim, s.p.Kind, LiteralsAgree(s.a, s.b), s.a, s.b)
			n++
		}
	}
	fmt.Fprintf(&report, "farthest paraphrases:\n")
	rev := slices.Clone(all)
	slices.Reverse(rev)
	n = 0
	for _, s := range rev {
		if s.expect && n < 100 {
			fmt.Fprintf(&report, "  %.4f literals agree: %-5v %q / %q\n", s.sim, LiteralsAgree(s.a, s.b), s.a, s.b)
			n++
		}
	}
	t.Log("\n" + report.String())
}

// embedAll embeds texts in one request to the embedder at url.
func embedAll(t *testing.T, url string, texts []string) [][]float32 {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"model": "use-lite", "input": texts})
	resp, err := http.Post(url+"/v1/embeddings", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Data []struct {
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || len(doc.Data) != len(texts) {
		t.Fatalf("embeddings: %d of %d, %v", len(doc.Data), len(texts), err)
	}
	out := make([][]float32, len(texts))
	for _, d := range doc.Data {
		out[d.Index] = d.Embedding
	}
	return out
}
