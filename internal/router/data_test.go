package router

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/routing.jsonl and scorer.json")

// dataPath is the committed labelled set: requests in the OpenAI format,
// each labelled with the tier that answered it well.
const dataPath = "testdata/routing.jsonl"

// category is one kind of request the labelled set holds: how to make
// one, and how likely the small tier is to answer it badly.
type category struct {
	name   string
	pLarge float64
	make   func(r *rand.Rand) map[string]any
}

func pick[T any](r *rand.Rand, xs ...T) T { return xs[r.IntN(len(xs))] }

func user(text string) []any { return []any{map[string]any{"role": "user", "content": text}} }

func withSystem(sys string, msgs []any) []any {
	return append([]any{map[string]any{"role": "system", "content": sys}}, msgs...)
}

// filler is n words of plain prose, for long documents.
func filler(r *rand.Rand, n int) string {
	words := strings.Fields("the report notes that revenue grew in the third quarter while costs stayed flat and the team plans to expand into new markets next year")
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[r.IntN(len(words))])
	}
	return b.String()
}

// categories is the labelled set's make-up. The probabilities are a
// model of where a 7B model falls short of a 30B one (multi-step maths,
// code to debug, analysis, long documents, other languages), not
// measurements; an operator's own set comes from graded traffic
// (docs/routing.md).
var categories = []category{
	{"greeting", 0.02, func(r *rand.Rand) map[string]any {
		return map[string]any{"messages": user(pick(r, "Hi!", "Hello, how are you?", "Thanks, that helps.", "Good morning", "Can you hear me?"))}
	}},
	{"fact", 0.06, func(r *rand.Rand) map[string]any {
		c := pick(r, "France", "Japan", "Kenya", "Peru", "Canada", "Norway", "India")
		q := pick(r, "What is the capital of %s?", "What language is spoken in %s?", "What currency does %s use?")
		return map[string]any{"messages": user(fmt.Sprintf(q, c)), "max_tokens": 64}
	}},
	{"translate", 0.1, func(r *rand.Rand) map[string]any {
		return map[string]any{"messages": user(fmt.Sprintf("Translate '%s' into %s.", pick(r, "good night", "where is the station", "thank you very much"),
			pick(r, "French", "Spanish", "German", "Italian")))}
	}},
	{"arithmetic", 0.1, func(r *rand.Rand) map[string]any {
		return map[string]any{"messages": user(fmt.Sprintf("What is %d + %d?", r.IntN(100), r.IntN(100)))}
	}},
	{"summary", 0.15, func(r *rand.Rand) map[string]any {
		return map[string]any{"messages": user("Summarise in one sentence: " + filler(r, 60+r.IntN(80)))}
	}},
	{"long document", 0.7, func(r *rand.Rand) map[string]any {
		return map[string]any{"messages": withSystem("You are an analyst.", user("Read the report and list its five main risks: "+filler(r, 600+r.IntN(600)))), "max_tokens": 800}
	}},
	{"maths", 0.8, func(r *rand.Rand) map[string]any {
		return map[string]any{"messages": user(fmt.Sprintf(pick(r,
			"Solve the equation %d*x + %d = %d and prove the solution is unique.",
			"Calculate the derivative of x^%d + %d*x and explain each step.",
			"A bag has %d red and %d blue balls; compute the probability of drawing 2 red without replacement, step by step. Total %d."),
			2+r.IntN(5), r.IntN(20), 20+r.IntN(50)))}
	}},
	{"simple code", 0.3, func(r *rand.Rand) map[string]any {
		return map[string]any{"messages": user(fmt.Sprintf("Write a %s function that %s.", pick(r, "Python", "JavaScript", "Go"),
			pick(r, "reverses a string", "adds two numbers", "checks if a number is even")))}
	}},
	{"debug code", 0.85, func(r *rand.Rand) map[string]any {
		return map[string]any{"messages": user("This code has a bug and deadlocks under load; find it and design a fix:\n```go\nfunc (s *Server) handle() {\n\ts.mu.Lock();\n\tdefer s.mu.Unlock();\n\tfor _, c := range s.conns {\n\t\tc.send(s.next());\n\t}\n}\n```\nExplain why it fails."),
			"max_tokens": 1000}
	}},
	{"analysis", 0.75, func(r *rand.Rand) map[string]any {
		a, b := pick(r, "microservices", "PostgreSQL", "Rust", "event sourcing"), pick(r, "a monolith", "MongoDB", "Go", "CRUD tables")
		return map[string]any{"messages": user(fmt.Sprintf("Compare %s and %s step by step: the trade-offs, the pros and cons, and justify which to choose for a payments system.", a, b))}
	}},
	{"describe image", 0.2, func(r *rand.Rand) map[string]any {
		return map[string]any{"messages": []any{map[string]any{"role": "user", "content": []any{
			map[string]any{"type": "text", "text": pick(r, "What is in this picture?", "Describe this image briefly.")},
			map[string]any{"type": "image_url", "image_url": map[string]any{"url": "https://example.com/photo.jpg"}}}}}}
	}},
	{"chart analysis", 0.7, func(r *rand.Rand) map[string]any {
		return map[string]any{"messages": []any{map[string]any{"role": "user", "content": []any{
			map[string]any{"type": "text", "text": "Analyze the trends in this chart, compare the two series and explain why they diverge."},
			map[string]any{"type": "image_url", "image_url": map[string]any{"url": "https://example.com/chart.png"}}}}}}
	}},
	{"json extraction", 0.25, func(r *rand.Rand) map[string]any {
		return map[string]any{"messages": user("Extract the name and the date as JSON: Maria signed on 3 May 2024."),
			"response_format": map[string]any{"type": "json_object"}}
	}},
	{"tools", 0.6, func(r *rand.Rand) map[string]any {
		fn := func(name string) any {
			return map[string]any{"type": "function", "function": map[string]any{"name": name, "parameters": map[string]any{"type": "object"}}}
		}
		return map[string]any{"messages": user("Plan my trip: book the flight, then the hotel, and check the weather for each day."),
			"tools": []any{fn("book_flight"), fn("book_hotel"), fn("get_weather")}}
	}},
	{"other language", 0.7, func(r *rand.Rand) map[string]any {
		return map[string]any{"messages": user(pick(r, "请一步一步地比较这两种方案的优缺点，并解释原因。", "Сравните два подхода и объясните, почему один лучше.",
			"Analysez les avantages et les inconvénients de chaque option et justifiez votre choix."))}
	}},
	{"other language greeting", 0.1, func(r *rand.Rand) map[string]any {
		return map[string]any{"messages": user(pick(r, "你好！", "Привет!", "Bonjour !", "¡Hola!"))}
	}},
	{"long chat", 0.5, func(r *rand.Rand) map[string]any {
		var msgs []any
		for i := range 6 + r.IntN(8) {
			role := "user"
			if i%2 == 1 {
				role = "assistant"
			}
			msgs = append(msgs, map[string]any{"role": role, "content": filler(r, 20+r.IntN(40))})
		}
		msgs = append(msgs, map[string]any{"role": "user", "content": "Given all that, what should we do next?"})
		return map[string]any{"messages": msgs}
	}},
}

// generate makes the labelled set: n requests from the categories, each
// labelled large with its category's probability. Deterministic.
func generate(n int) []byte {
	r := rand.New(rand.NewPCG(20261201, 14))
	var out bytes.Buffer
	for range n {
		c := categories[r.IntN(len(categories))]
		req := c.make(r)
		req["model"] = "auto"
		label := "small"
		if r.Float64() < c.pLarge {
			label = "large"
		}
		line, _ := json.Marshal(map[string]any{"category": c.name, "label": label, "request": req})
		out.Write(line)
		out.WriteByte('\n')
	}
	return out.Bytes()
}

// TestRoutingData: the committed labelled set is the generator's output
// (go test ./internal/router -run TestRoutingData -update rewrites it).
func TestRoutingData(t *testing.T) {
	got := generate(1500)
	if *update {
		if err := os.WriteFile(dataPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(dataPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is not the generator's output: run go test ./internal/router -run TestRoutingData -update", dataPath)
	}
	sc := bufio.NewScanner(bytes.NewReader(want))
	sc.Buffer(nil, 1<<20)
	seen := map[string]bool{}
	for sc.Scan() {
		var l struct{ Category string }
		json.Unmarshal(sc.Bytes(), &l)
		seen[l.Category] = true
	}
	if len(seen) != len(categories) {
		t.Errorf("the set has %d of the %d categories", len(seen), len(categories))
	}
}
