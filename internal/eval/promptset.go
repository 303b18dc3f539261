// Package eval compares models, and the deployments serving them, on a
// prompt set: each item is asked of every target as a client would ask
// it (temperature 0, logprobs on), and the answers are scored against the
// items' references and against the first target's answers.
package eval

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultMaxTokens is an item's max_tokens when it sets none.
const DefaultMaxTokens = 256

// Match is how an answer is checked against an item's reference.
type Match string

// The match modes.
const (
	// MatchExact: the answer equals the reference once both are
	// normalised (Normalize).
	MatchExact Match = "exact"
	// MatchContains: the normalised reference appears in the normalised
	// answer as whole words.
	MatchContains Match = "contains"
	// MatchChoice: the answer's first choice letter (Choice) is the
	// reference's.
	MatchChoice Match = "choice"
)

// Item is one prompt of a set.
type Item struct {
	ID string
	// Messages is the chat messages, as the set gave them (a prompt
	// becomes one user message).
	Messages json.RawMessage
	// Reference is the expected answer; "" when the item has none.
	Reference string
	Match     Match
	MaxTokens int
	Line      int // in the set's file, from 1
}

// Correct reports whether answer matches the item's reference; false when
// the item has none.
func (it *Item) Correct(answer string) bool {
	if it.Reference == "" {
		return false
	}
	switch it.Match {
	case MatchContains:
		return containsWords(Normalize(answer), Normalize(it.Reference))
	case MatchChoice:
		c := Choice(answer)
		return c != 0 && c == Choice(it.Reference)
	default:
		return Normalize(answer) == Normalize(it.Reference)
	}
}

// Normalize folds case, collapses white space to single spaces and drops
// trailing punctuation: "  The  answer is Paris.\n" is "the answer is paris".
func Normalize(s string) string {
	s = strings.Join(strings.Fields(strings.ToLower(s)), " ")
	return strings.TrimRightFunc(s, func(r rune) bool { return unicode.IsPunct(r) || unicode.IsSpace(r) })
}

// Choice returns the first capital letter A to E in s that stands alone
// (no letter or digit either side: "B", "(C)", "D.", "answer: E"), or 0.
func Choice(s string) rune {
	prev := ' '
	for i, r := range s {
		if r >= 'A' && r <= 'E' && !isWordRune(prev) {
			next, _ := utf8.DecodeRuneInString(s[i+1:])
			if !isWordRune(next) {
				return r
			}
		}
		prev = r
	}
	return 0
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// containsWords reports whether sub occurs in s with no letter or digit
// touching it on either side.
func containsWords(s, sub string) bool {
	if sub == "" {
		return false
	}
	for from := 0; ; {
		i := strings.Index(s[from:], sub)
		if i < 0 {
			return false
		}
		i += from
		before, _ := utf8.DecodeLastRuneInString(s[:i])
		after, _ := utf8.DecodeRuneInString(s[i+len(sub):])
		if !isWordRune(before) && !isWordRune(after) {
			return true
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		from = i + size
	}
}

// line is an item as written; pointers tell a field left out from a zero.
type line struct {
	ID        *string         `json:"id"`
	Messages  json.RawMessage `json:"messages"`
	Prompt    *string         `json:"prompt"`
	Reference *string         `json:"reference"`
	Match     *string         `json:"match"`
	MaxTokens *int            `json:"max_tokens"`
}

// ReadItems reads a prompt set: JSON lines, one item each, blank lines
// skipped. The first bad line ends the read with an error naming its
// number and the field at fault.
func ReadItems(r io.Reader) ([]Item, error) {
	var items []Item
	seen := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 64<<20)
	for n := 1; sc.Scan(); n++ {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		it, err := parseItem(text)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if first, ok := seen[it.ID]; ok {
			return nil, fmt.Errorf("line %d: \"id\": %q is also the id on line %d", n, it.ID, first)
		}
		seen[it.ID] = n
		it.Line = n
		items = append(items, it)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, errors.New("no items")
	}
	return items, nil
}

// parseItem checks one line and returns its item.
func parseItem(text []byte) (Item, error) {
	var l line
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return Item{}, decodeError(err)
	}
	if dec.More() {
		return Item{}, errors.New("more than one JSON value on the line")
	}
	var it Item
	switch {
	case l.ID == nil:
		return it, errors.New(`"id" is required`)
	case *l.ID == "":
		return it, errors.New(`"id" is empty`)
	}
	it.ID = *l.ID
	hasMessages := len(l.Messages) > 0 && string(l.Messages) != "null"
	switch {
	case hasMessages && l.Prompt != nil:
		return it, errors.New(`"messages" and "prompt": give one, not both`)
	case hasMessages:
		if err := checkMessages(l.Messages); err != nil {
			return it, err
		}
		it.Messages = l.Messages
	case l.Prompt != nil:
		if strings.TrimSpace(*l.Prompt) == "" {
			return it, errors.New(`"prompt" is empty`)
		}
		it.Messages, _ = json.Marshal([]map[string]string{{"role": "user", "content": *l.Prompt}})
	default:
		return it, errors.New(`"messages" or "prompt" is required`)
	}
	it.Match = MatchExact
	if l.Match != nil {
		switch m := Match(*l.Match); m {
		case MatchExact, MatchContains, MatchChoice:
			it.Match = m
		default:
			return it, fmt.Errorf(`"match": unknown mode %q (exact, contains or choice)`, *l.Match)
		}
	}
	if l.Reference != nil {
		switch {
		case strings.TrimSpace(*l.Reference) == "":
			return it, errors.New(`"reference" is empty (leave it out for an item without one)`)
		case it.Match == MatchChoice && Choice(*l.Reference) == 0:
			return it, fmt.Errorf(`"reference": match choice needs a letter A to E, got %q`, *l.Reference)
		}
		it.Reference = *l.Reference
	}
	it.MaxTokens = DefaultMaxTokens
	if l.MaxTokens != nil {
		if *l.MaxTokens < 1 {
			return it, fmt.Errorf(`"max_tokens": must be at least 1, got %d`, *l.MaxTokens)
		}
		it.MaxTokens = *l.MaxTokens
	}
	return it, nil
}

// checkMessages checks that raw is a non-empty array of messages, each an
// object with a role.
func checkMessages(raw json.RawMessage) error {
	var msgs []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &msgs); err != nil {
		return errors.New(`"messages": must be an array of message objects`)
	}
	if len(msgs) == 0 {
		return errors.New(`"messages": is empty`)
	}
	for i, m := range msgs {
		var role string
		if r, ok := m["role"]; !ok || json.Unmarshal(r, &role) != nil || role == "" {
			return fmt.Errorf(`"messages[%d]": needs a "role" string`, i)
		}
		if _, ok := m["content"]; !ok && role != "assistant" {
			return fmt.Errorf(`"messages[%d]": needs a "content"`, i)
		}
	}
	return nil
}

// decodeError says what was wrong with a line that did not decode.
func decodeError(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("not valid JSON: %v", err)
	case errors.As(err, &typ) && typ.Field == "":
		return errors.New("an item must be a JSON object")
	case errors.As(err, &typ):
		return fmt.Errorf("%q: must be %s, not a JSON %s", typ.Field, kindOf(typ.Type.String()), typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fmt.Errorf("unknown field %s (an item has id, messages or prompt, reference, match, max_tokens)", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return err
}

// kindOf names the JSON a Go field type takes.
func kindOf(goType string) string {
	switch strings.TrimPrefix(goType, "*") {
	case "string":
		return "a string"
	case "int":
		return "an integer"
	}
	return "of type " + goType
}
