package sim

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/jsonscan"
)

// jsonFormat is a response_format that asks for JSON: any object
// (json_object, or json_schema without a schema) or a value of the schema.
type jsonFormat struct {
	schema *schema // nil: any JSON object
}

// responseFormat is the wire shape of response_format.
type responseFormat struct {
	Type       string `json:"type"`
	JSONSchema *struct {
		Name   string          `json:"name"`
		Schema json.RawMessage `json:"schema"`
	} `json:"json_schema"`
}

// parseResponseFormat reads response_format; "text" (or none) is nil.
func parseResponseFormat(rf *responseFormat) (*jsonFormat, error) {
	if rf == nil {
		return nil, nil
	}
	switch rf.Type {
	case "text":
		return nil, nil
	case "json_object":
		return &jsonFormat{}, nil
	case "json_schema":
		if rf.JSONSchema == nil {
			return nil, apierror.Invalid("response_format.json_schema", "response_format.json_schema is required when response_format.type is \"json_schema\"")
		}
		raw := bytes.TrimSpace(rf.JSONSchema.Schema)
		if len(raw) == 0 || string(raw) == "null" || string(raw) == "{}" {
			return &jsonFormat{}, nil
		}
		s, err := parseSchema(raw)
		if err != nil {
			return nil, apierror.Invalid("response_format.json_schema.schema", "response_format.json_schema.schema is not a JSON schema the simulator can read: %v", err)
		}
		return &jsonFormat{schema: s}, nil
	}
	return nil, apierror.Invalid("response_format.type", "response_format.type must be \"text\", \"json_object\" or \"json_schema\", got %q", rf.Type)
}

// answer is a JSON answer, cut as the tokenizer counts it. A schema decides
// its size; a bare object holds the words of the choice's text answer, one
// sentence per member, so its length follows answer_tokens. Past limit
// tokens it is cut mid-JSON with finish_reason "length", as vLLM's guided
// decoding is; stop strings apply as to text.
func (f *jsonFormat) answer(seed uint64, lengths [2]int, limit int, stops []string) answer {
	var b []byte
	if f.schema != nil {
		b = newValueGen(seed, f.schema).value(nil, f.schema, 0)
	} else {
		b = sentenceObject(seed, lengths)
	}
	text := string(b)
	a := answer{tokens: splitTokens(nil, text), text: text, finish: "stop"}
	if len(a.tokens) > limit {
		a.tokens, a.finish = a.tokens[:limit], "length"
		a.text = strings.Join(a.tokens, "")
	}
	a.applyStops(stops)
	return a
}

// sentenceObject is {"word": "Sentence.", …}: the choice's text answer
// split at its full stops, each sentence under a distinct vocabulary word.
func sentenceObject(seed uint64, lengths [2]int) []byte {
	words := generate(seed, lengths, math.MaxInt, nil)
	b := []byte{'{'}
	key := mix(seed, 0x6a736f6e) // "json"
	start, n := 0, 0
	for i, t := range words.tokens {
		if t != "." && i != len(words.tokens)-1 {
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		w := vocab.spaced[(key+uint64(n))%uint64(len(vocab.spaced))]
		b = jsonscan.AppendString(b, w[1:])
		b = append(b, ':')
		b = jsonscan.AppendString(b, strings.TrimLeft(strings.Join(words.tokens[start:i+1], ""), " "))
		start = i + 1
		n++
	}
	return append(b, '}')
}
