package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/omnigate/omnigate/internal/apierror"
)

// Continuing a final assistant message, as vLLM does with
// "continue_final_message": true and "add_generation_prompt": false: the
// chat template leaves the last assistant turn open and the model writes
// on from its last character.
//
// The simulator makes this exact, so that a gateway can resume a stream
// that died on another replica: the answer is seeded by the conversation
// without the final assistant message (the seed the original request had),
// the engine draws that same full answer and emits only what comes after
// the given text. When the text is a prefix of the seeded answer, text +
// continuation is the uncut answer byte for byte, with its finish_reason,
// for any cut point, also inside a token (the rest of that token comes
// first).
//
// Token accounting follows vLLM: the final message's tokens are prompt
// tokens, completion_tokens counts the new tokens only and max_tokens
// bounds them. The text delivered before the cut spent the tokens it holds
// whole (see delivered); a token cut inside is generated again, as one new
// token carrying its rest. So when the original request had max_tokens N
// and k tokens were delivered, a continuation with max_tokens N-k stops
// where the uncut answer stops, with the same finish_reason, and
// k + completion_tokens is the uncut completion_tokens. Stop strings are
// matched in the whole answer, as they were in the uncut one.
//
// A text that is not a prefix of the seeded answer (a client wrote its
// own) is continued deterministically too: by a fresh answer of the same
// kind drawn from the seed mixed with the text, its first word joined to
// the text (a space unless the text ends in one, a capital only after a
// full stop). Stop strings then apply to the new text only.

// continuation is the final assistant message a request continues.
type continuation struct {
	prefix string // its text
}

// finalMessage checks a continue_final_message request and reads its final
// assistant message. addGen is add_generation_prompt as sent (nil: absent,
// which means true).
func finalMessage(msgs []chatMessage, addGen *bool) (*continuation, error) {
	switch {
	case addGen == nil:
		return nil, apierror.Invalid("add_generation_prompt", "`continue_final_message` requires `add_generation_prompt` to be false (it defaults to true).")
	case *addGen:
		return nil, apierror.Invalid("add_generation_prompt", "Cannot set both `continue_final_message` and `add_generation_prompt` to True.")
	}
	last := len(msgs) - 1
	m := msgs[last]
	if m.Role != "assistant" {
		return nil, apierror.Invalid("continue_final_message", "Cannot set `continue_final_message` to True when the last message is not from the assistant (messages[%d] has role %q).", last, m.Role)
	}
	if tc := bytes.TrimSpace(m.ToolCalls); len(tc) > 0 && string(tc) != "null" && string(tc) != "[]" {
		return nil, apierror.Invalid("continue_final_message", "`continue_final_message` cannot continue an assistant message with tool_calls; only text can be continued.")
	}
	prefix, err := messageText(m.Content, last)
	if err != nil {
		return nil, err
	}
	return &continuation{prefix: prefix}, nil
}

// messageText is the text of a message's content: a string, null, or text
// parts joined with newlines (as vLLM's string content format joins them).
func messageText(raw json.RawMessage, i int) (string, error) {
	c := bytes.TrimSpace(raw)
	switch {
	case len(c) == 0 || string(c) == "null":
		return "", nil
	case c[0] == '"':
		var s string
		if err := json.Unmarshal(c, &s); err != nil {
			return "", malformed(err)
		}
		return s, nil
	case c[0] == '[':
		var parts []contentPart
		if err := json.Unmarshal(c, &parts); err != nil {
			return "", apierror.Invalid(fmt.Sprintf("messages[%d].content", i), "messages[%d].content: %v", i, err)
		}
		texts := make([]string, len(parts))
		for j, part := range parts {
			if part.Type != "text" {
				param := fmt.Sprintf("messages[%d].content[%d]", i, j)
				return "", apierror.Invalid(param, "%s: `continue_final_message` can continue text only, not a %q part", param, part.Type)
			}
			texts[j] = part.Text
		}
		return strings.Join(texts, "\n"), nil
	}
	return "", apierror.Invalid(fmt.Sprintf("messages[%d].content", i), "messages[%d].content must be a string or an array of content parts", i)
}

// continueChoice draws what choice c writes after the request's final
// assistant message, within limit new tokens: the rest of its seeded
// answer, or, for a text that is not a prefix of it, a fresh answer (see
// the comment at the top of this file). It sets c.ans, c.first and, for a
// fresh answer, c.seed.
func (r *genRequest) continueChoice(c *choice, lengths [2]int, limit int) error {
	if len(r.tools) > 0 && len(r.callsFor(c.seed)) > 0 {
		return apierror.Invalid("continue_final_message", "`continue_final_message` cannot continue this conversation: its answer is a tool call, and only text can be continued.")
	}
	draw := func(limit int, stops []string) answer { return r.draw(c.seed, lengths, limit, stops) }
	prefix := r.cont.prefix
	if a, first, ok := continueFrom(draw, prefix, limit, r.stops); ok {
		c.ans, c.first = a, first
		return nil
	}
	h := seedHash{h: c.seed}
	h.str(prefix)
	c.seed, c.first = h.h, 0
	c.ans = r.draw(c.seed, lengths, limit, nil)
	if r.format == nil {
		c.ans.joinAfter(prefix)
	}
	c.ans.applyStops(r.stops)
	return nil
}

// continueFrom is the part of an answer after prefix, and the position of
// its first token in the whole answer; ok is false when prefix is not text
// the answer could have delivered. draw draws the answer with a token cap
// and stop strings; limit caps the new tokens.
//
// The cap of the whole answer is the tokens delivered plus limit, as the
// uncut answer's max_tokens was. One case is ambiguous: a stop string that
// begins at the cut, inside a token, cut that token short in the uncut
// answer if its match fit under the cap. That token then was delivered
// (its visible text ends at the cut) and the answer is over; this reading
// is tried first, since it is what a stream cut between chunks produces.
func continueFrom(draw func(limit int, stops []string) answer, prefix string, limit int, stops []string) (answer, int, bool) {
	raw := draw(math.MaxInt, nil)
	if !strings.HasPrefix(raw.text, prefix) {
		return answer{}, 0, false
	}
	p := len(prefix)
	k := delivered(raw.tokens, p)
	if k < len(raw.tokens) && tokenStart(raw.tokens, k) < p && stopBegins(raw.text[p:], stops) {
		if a := draw(k+1+limit, stops); len(a.text) == p {
			return a.after(p, k+1), k + 1, true
		}
	}
	a := draw(k+limit, stops)
	if len(a.text) < p { // the uncut answer ended before the cut
		return answer{}, 0, false
	}
	return a.after(p, k), k, true
}

// delivered is how many tokens a text cut after p bytes holds whole: those
// that end at or before the cut, not counting empty ones at the cut (they
// come after it).
func delivered(tokens []string, p int) int {
	off := 0
	for k, t := range tokens {
		if off >= p || off+len(t) > p {
			return k
		}
		off += len(t)
	}
	return len(tokens)
}

// tokenStart is the byte offset of token k in the text the tokens spell.
func tokenStart(tokens []string, k int) int {
	off := 0
	for _, t := range tokens[:k] {
		off += len(t)
	}
	return off
}

// stopBegins reports whether one of the stop strings begins text.
func stopBegins(text string, stops []string) bool {
	for _, s := range stops {
		if s != "" && strings.HasPrefix(text, s) {
			return true
		}
	}
	return false
}

// after is the answer from byte p of its text on, token k (the first not
// delivered) cut to the part after p.
func (a answer) after(p, k int) answer {
	out := answer{text: a.text[p:], finish: a.finish, tokens: make([]string, len(a.tokens)-k)}
	copy(out.tokens, a.tokens[k:])
	if len(out.tokens) > 0 {
		out.tokens[0] = out.tokens[0][p-tokenStart(a.tokens, k):]
	}
	return out
}

// joinAfter makes a fresh text answer read on from prefix: its first word
// gets a space unless prefix ends in whitespace, and loses its capital
// unless prefix ends a sentence.
func (a *answer) joinAfter(prefix string) {
	if prefix == "" || len(a.tokens) == 0 {
		return
	}
	t := a.tokens[0]
	trimmed := strings.TrimRightFunc(prefix, unicode.IsSpace)
	last, _ := utf8.DecodeLastRuneInString(trimmed)
	if trimmed != "" && !strings.ContainsRune(".!?", last) {
		t = strings.ToLower(t[:1]) + t[1:]
	}
	if len(trimmed) == len(prefix) {
		t = " " + t
	}
	a.tokens[0] = t
	a.text = strings.Join(a.tokens, "")
}
