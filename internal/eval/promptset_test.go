package eval

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadItems(t *testing.T) {
	set := `{"id": "q1", "prompt": "What is the capital of France?", "reference": "Paris"}

{"id": "q2", "messages": [{"role": "system", "content": "Answer with a letter."}, {"role": "user", "content": "Pick one"}], "reference": "C", "match": "choice", "max_tokens": 4}
{"id": "q3", "prompt": "Say anything."}
`
	items, err := ReadItems(strings.NewReader(set))
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		ID, Messages, Reference string
		Match                   Match
		MaxTokens, Line         int
	}
	var got []row
	for _, it := range items {
		got = append(got, row{it.ID, string(it.Messages), it.Reference, it.Match, it.MaxTokens, it.Line})
	}
	want := []row{
		{"q1", `[{"content":"What is the capital of France?","role":"user"}]`, "Paris", MatchExact, DefaultMaxTokens, 1},
		{"q2", `[{"role": "system", "content": "Answer with a letter."}, {"role": "user", "content": "Pick one"}]`, "C", MatchChoice, 4, 3},
		{"q3", `[{"content":"Say anything.","role":"user"}]`, "", MatchExact, DefaultMaxTokens, 4},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("items (-want +got):\n%s", diff)
	}
}

// TestReadItemsBadLines: each bad line is reported with its number and
// the field at fault.
func TestReadItemsBadLines(t *testing.T) {
	good := `{"id": "ok", "prompt": "hello"}` + "\n"
	for _, tc := range []struct {
		name, line, want string
	}{
		{"not JSON", `{"id": "q1", "prompt": `, `line 2: not valid JSON`},
		{"not an object", `["q1", "hello"]`, `line 2: an item must be a JSON object`},
		{"two values", `{"id": "q1", "prompt": "a"} {"id": "q2"}`, `line 2: more than one JSON value on the line`},
		{"no id", `{"prompt": "hello"}`, `line 2: "id" is required`},
		{"empty id", `{"id": "", "prompt": "hello"}`, `line 2: "id" is empty`},
		{"numeric id", `{"id": 7, "prompt": "hello"}`, `line 2: "id": must be a string, not a JSON number`},
		{"duplicate id", `{"id": "ok", "prompt": "again"}`, `line 2: "id": "ok" is also the id on line 1`},
		{"neither", `{"id": "q1"}`, `line 2: "messages" or "prompt" is required`},
		{"both", `{"id": "q1", "prompt": "a", "messages": [{"role": "user", "content": "b"}]}`, `line 2: "messages" and "prompt": give one, not both`},
		{"empty prompt", `{"id": "q1", "prompt": "  "}`, `line 2: "prompt" is empty`},
		{"messages not an array", `{"id": "q1", "messages": "hello"}`, `line 2: "messages": must be an array of message objects`},
		{"empty messages", `{"id": "q1", "messages": []}`, `line 2: "messages": is empty`},
		{"message without role", `{"id": "q1", "messages": [{"content": "hi"}]}`, `line 2: "messages[0]": needs a "role" string`},
		{"message without content", `{"id": "q1", "messages": [{"role": "user", "content": "a"}, {"role": "user"}]}`, `line 2: "messages[1]": needs a "content"`},
		{"unknown match", `{"id": "q1", "prompt": "a", "reference": "b", "match": "fuzzy"}`, `line 2: "match": unknown mode "fuzzy" (exact, contains or choice)`},
		{"choice without a letter", `{"id": "q1", "prompt": "a", "reference": "Paris", "match": "choice"}`, `line 2: "reference": match choice needs a letter A to E, got "Paris"`},
		{"empty reference", `{"id": "q1", "prompt": "a", "reference": ""}`, `line 2: "reference" is empty`},
		{"reference not a string", `{"id": "q1", "prompt": "a", "reference": 4}`, `line 2: "reference": must be a string, not a JSON number`},
		{"max_tokens zero", `{"id": "q1", "prompt": "a", "max_tokens": 0}`, `line 2: "max_tokens": must be at least 1, got 0`},
		{"max_tokens text", `{"id": "q1", "prompt": "a", "max_tokens": "many"}`, `line 2: "max_tokens": must be an integer, not a JSON string`},
		{"unknown field", `{"id": "q1", "prompt": "a", "refrence": "b"}`, `line 2: unknown field "refrence"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadItems(strings.NewReader(good + tc.line + "\n"))
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %v, want one starting %q", err, tc.want)
			}
		})
	}
	if _, err := ReadItems(strings.NewReader("\n\n")); err == nil || err.Error() != "no items" {
		t.Errorf("an empty set: error %v, want no items", err)
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"Paris":                     "paris",
		"  The  answer\tis\nParis.": "the answer is paris",
		"Paris!?…":                  "paris",
		"(Paris)":                   "(paris",
		"":                          "",
		"...":                       "",
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestMatchModes checks each mode on answers it should and should not take.
func TestMatchModes(t *testing.T) {
	for _, tc := range []struct {
		match     Match
		reference string
		answer    string
		want      bool
	}{
		{MatchExact, "Paris", "Paris", true},
		{MatchExact, "Paris", "  paris. ", true},
		{MatchExact, "Paris", "PARIS!", true},
		{MatchExact, "New York", "new   york", true},
		{MatchExact, "Paris", "Paris, France", false},
		{MatchExact, "Paris", "The capital is Paris.", false},
		{MatchExact, "Paris", "", false},

		{MatchContains, "Paris", "The capital of France is Paris.", true},
		{MatchContains, "paris", "PARIS", true},
		{MatchContains, "New York", "It is New  York, of course", true},
		{MatchContains, "4", "2 + 2 = 4", true},
		{MatchContains, "4", "2 + 12 = 14", false},
		{MatchContains, "Paris", "Parisian food", false},
		{MatchContains, "Paris", "Lyon", false},

		{MatchChoice, "B", "B", true},
		{MatchChoice, "B", "(B) Paris", true},
		{MatchChoice, "B", "The answer is B.", true},
		{MatchChoice, "B) Paris", "answer: B", true},
		{MatchChoice, "B", "C", false},
		{MatchChoice, "B", "Because of Brussels", false},
		{MatchChoice, "B", "b", false},
		{MatchChoice, "E", "Either way, E", true},
		{MatchChoice, "A", "I pick A", true},
		{MatchChoice, "C", "A cat, or C", false}, // the first letter standing alone is A
	} {
		it := Item{Reference: tc.reference, Match: tc.match}
		if got := it.Correct(tc.answer); got != tc.want {
			t.Errorf("%s %q against %q: %v, want %v", tc.match, tc.answer, tc.reference, got, tc.want)
		}
	}
	if (&Item{Match: MatchExact}).Correct("") {
		t.Error("an item without a reference counted an answer correct")
	}
}

func TestChoice(t *testing.T) {
	for in, want := range map[string]rune{
		"B": 'B', "(C)": 'C', "D.": 'D', "answer: E": 'E', "Answer: A": 'A',
		"BAD": 0, "F": 0, "a b c": 0, "": 0, "A1": 0, "«B»": 'B',
	} {
		if got := Choice(in); got != want {
			t.Errorf("Choice(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestExampleSet: the prompt set in examples/ reads, every item with a
// reference.
func TestExampleSet(t *testing.T) {
	f, err := os.Open("../../examples/eval-general-knowledge.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	items, err := ReadItems(f)
	if err != nil {
		t.Fatal(err)
	}
	modes := map[Match]int{}
	for _, it := range items {
		if it.Reference == "" {
			t.Errorf("%s has no reference", it.ID)
		}
		modes[it.Match]++
	}
	if len(items) != 10 || len(modes) != 3 {
		t.Errorf("%d items, match modes %v; want 10 using all three", len(items), modes)
	}
}
