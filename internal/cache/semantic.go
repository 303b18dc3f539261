package cache

import (
	"bytes"
	"crypto/sha256"
	"strings"

	"github.com/omnigate/omnigate/internal/jsonscan"
)

// MaxSemanticText is the longest last user turn (in bytes) the semantic
// cache embeds: the longer a prompt, the less one changed word moves its
// embedding, so a long prompt that differs in a number or a "not" would
// look the same. Longer prompts are cached exactly only.
const MaxSemanticText = 2048

// SemanticKey splits a chat request body into what the semantic cache
// compares by embedding and what it requires to be equal. scopeKey covers
// everything in the request that changes its answer — the model, scope,
// system prompt, earlier turns, every parameter, in MakeKey's canonical
// form — except the content of the last message, and text is that
// content: the last user turn's text (a string, or the text parts of an
// array joined by newlines).
//
// ok is false when the request is not semantically cacheable: not a chat
// request, a last message that is not the user's (an assistant prefill or
// a tool result decides the answer as much as the question does), a last
// user turn with any part that is not text (a different image must never
// hit), or with no text, or text longer than MaxSemanticText.
func SemanticKey(model, scope string, body []byte) (scopeKey Key, text string, ok bool) {
	h := sha256.New()
	w := canon{h: h}
	w.str('S', nil) // a semantic scope never equals an exact key
	w.str('m', []byte(model))
	w.str('s', []byte(scope))
	var msgs []byte
	notChat := false
	d := jsonscan.NewDecoder(body)
	if err := w.object(&d, func(k, v []byte) bool {
		switch string(k) {
		case "messages":
			msgs = v
			return false
		case "prompt", "input":
			notChat = true
		}
		return !ignored[string(k)]
	}); err != nil || msgs == nil || notChat {
		return Key{}, "", false
	}
	var items [][]byte
	md := jsonscan.NewDecoder(msgs)
	if err := md.Array(func(int) error {
		v, err := md.Skip()
		items = append(items, v)
		return err
	}); err != nil || len(items) == 0 {
		return Key{}, "", false
	}
	w.tag('M')
	for _, it := range items[:len(items)-1] {
		id := jsonscan.NewDecoder(it)
		if w.value(&id) != nil {
			return Key{}, "", false
		}
	}
	// The last message with its content left out: its role, name and
	// anything else stay in the scope.
	var content []byte
	user := false
	ld := jsonscan.NewDecoder(items[len(items)-1])
	if k, err := ld.Peek(); err != nil || k != jsonscan.Object {
		return Key{}, "", false
	}
	if err := w.object(&ld, func(k, v []byte) bool {
		switch string(k) {
		case "content":
			content = v
			return false
		case "role":
			user = bytes.Equal(bytes.TrimSpace(v), []byte(`"user"`))
		}
		return true
	}); err != nil || !user || content == nil {
		return Key{}, "", false
	}
	text, ok = turnText(content)
	if !ok || len(text) > MaxSemanticText || strings.TrimSpace(text) == "" {
		return Key{}, "", false
	}
	h.Sum(scopeKey[:0])
	return scopeKey, text, true
}

// turnText is the text of a message's content: a string, or an array of
// parts each {"type":"text","text":...} and nothing else; false for any
// other part or shape.
func turnText(content []byte) (string, bool) {
	d := jsonscan.NewDecoder(content)
	k, err := d.Peek()
	if err != nil {
		return "", false
	}
	switch k {
	case jsonscan.String:
		s, err := readString(&d)
		return s, err == nil
	case jsonscan.Array:
	default:
		return "", false
	}
	var parts []string
	err = d.Array(func(int) error {
		if k, err := d.Peek(); err != nil || k != jsonscan.Object {
			return errNotText
		}
		var typ, txt string
		hasText := false
		err := d.Object(func(key []byte) error {
			var err error
			switch string(key) {
			case "type":
				typ, err = readString(&d)
			case "text":
				txt, err = readString(&d)
				hasText = true
			default:
				return errNotText // a part with more than text in it
			}
			return err
		})
		if err != nil {
			return err
		}
		if typ != "text" || !hasText {
			return errNotText
		}
		parts = append(parts, txt)
		return nil
	})
	if err != nil || len(parts) == 0 {
		return "", false
	}
	return strings.Join(parts, "\n"), true
}

// errNotText stops the walk of a content array at a part that is not text.
var errNotText = &jsonscan.Error{Msg: "not a text part"}

// readString reads the string at d, unescaped; an error for any other value.
func readString(d *jsonscan.Decoder) (string, error) {
	raw, escaped, err := d.ReadRawString()
	if err != nil {
		return "", err
	}
	if escaped {
		return string(jsonscan.AppendUnescaped(nil, raw)), nil
	}
	return string(raw), nil
}
