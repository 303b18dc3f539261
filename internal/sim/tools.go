package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/omnigate/omnigate/internal/apierror"
)

// tool is one function tool of a chat request.
type tool struct {
	name   string
	params *schema
}

// Tool-choice modes; toolFunction calls the named function.
const (
	toolNone     = "none"
	toolAuto     = "auto"
	toolRequired = "required"
	toolFunction = "function"
)

// toolCall is one call of a tool-call answer.
type toolCall struct {
	id, name, args string
	first          int // index in answer.tokens of its opening token
}

// Wire shapes of tools and tool_choice.
type (
	toolDef struct {
		Type     string       `json:"type"`
		Function *functionDef `json:"function"`
	}
	functionDef struct {
		Name       string          `json:"name"`
		Parameters json.RawMessage `json:"parameters"`
	}
	namedToolChoice struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
)

// toolsPreamble is what Qwen's chat template writes into the system
// message when tools are given, around their JSON signatures; its tokens
// are part of the prompt.
const toolsPreamble = "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n" +
	"You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n" +
	"\n</tools>\n\nFor each function call, return a json object with function name and arguments " +
	"within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>"

var toolsPreambleTokens = countTokens(toolsPreamble)

// parseTools reads tools, tool_choice and parallel_tool_calls into r, and
// adds the tools' prompt tokens and hash to the prompt: the chat template
// writes them into the prompt, whatever tool_choice says.
func (r *genRequest) parseTools(b *chatBody, pi *promptInfo) error {
	for i, raw := range b.Tools {
		var d toolDef
		if err := json.Unmarshal(raw, &d); err != nil {
			return apierror.Invalid(fmt.Sprintf("tools[%d]", i), "tools[%d]: %v", i, err)
		}
		if d.Type != "function" || d.Function == nil || d.Function.Name == "" {
			return apierror.Invalid(fmt.Sprintf("tools[%d]", i), "tools[%d] must be {\"type\": \"function\", \"function\": {\"name\": …}}", i)
		}
		params, err := parseSchema(d.Function.Parameters)
		if err != nil {
			return apierror.Invalid(fmt.Sprintf("tools[%d].function.parameters", i), "tools[%d].function.parameters is not a JSON schema the simulator can read: %v", i, err)
		}
		r.tools = append(r.tools, tool{name: d.Function.Name, params: params})
	}
	if len(r.tools) > 0 {
		h := seedHash{h: pi.hash}
		pi.tokens += toolsPreambleTokens
		var buf bytes.Buffer
		for _, raw := range b.Tools {
			buf.Reset()
			json.Compact(&buf, raw) // valid: it was decoded above
			h.str(buf.String())
			pi.tokens += countTokens(buf.String())
		}
		pi.hash = h.h
	}
	r.parallelTools = b.ParallelToolCalls == nil || *b.ParallelToolCalls
	return r.parseToolChoice(b.ToolChoice)
}

// toolBlocks renders the tools into bh for prefix caching as the template
// writes them, ahead of the messages: a preamble, then each definition's
// compact JSON.
func toolBlocks(bh *blockHasher, tools []json.RawMessage) {
	bh.segment("tools", toolsPreambleTokens)
	var buf bytes.Buffer
	for _, raw := range tools {
		buf.Reset()
		if json.Compact(&buf, raw) == nil { // else parseTools rejects it
			bh.text(buf.String())
		}
	}
}

// parseToolChoice reads "none" | "auto" | "required" |
// {"type": "function", "function": {"name": …}}. Absent, it is "auto" when
// there are tools and "none" otherwise, as in OpenAI's API.
func (r *genRequest) parseToolChoice(raw json.RawMessage) error {
	raw = bytes.TrimSpace(raw)
	r.toolChoice = toolNone
	if len(r.tools) > 0 {
		r.toolChoice = toolAuto
	}
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return malformed(err)
		}
		switch s {
		case toolNone:
			r.toolChoice = s
			return nil
		case toolAuto, toolRequired:
			r.toolChoice = s
		default:
			return apierror.Invalid("tool_choice", "tool_choice must be \"none\", \"auto\", \"required\" or a named function, got %q", s)
		}
	} else {
		var n namedToolChoice
		if err := json.Unmarshal(raw, &n); err != nil || n.Type != "function" || n.Function.Name == "" {
			return apierror.Invalid("tool_choice", "tool_choice must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": …}}")
		}
		r.toolChoice, r.toolName = toolFunction, n.Function.Name
	}
	if len(r.tools) == 0 {
		return apierror.Invalid("tool_choice", "When using `tool_choice`, `tools` must be set.")
	}
	if r.toolChoice == toolFunction && r.tool(r.toolName) == nil {
		return apierror.Invalid("tool_choice", "Tool '%s' has not been passed in `tools`.", r.toolName)
	}
	return nil
}

func (r *genRequest) tool(name string) *tool {
	for i := range r.tools {
		if r.tools[i].name == name {
			return &r.tools[i]
		}
	}
	return nil
}

// callsFor decides which tools one choice calls; none means a text answer.
//
//   - "none" never calls; a named function is called once.
//   - "auto": after a tool result (the last message has role "tool") the
//     model answers in text. Otherwise, if the last user message names
//     tools (case-insensitive, as a whole word), it calls those; otherwise
//     the choice's seed calls one tool for 3 prompts in 4 and answers in
//     text for the rest.
//   - "required": the tools the last user message names, else one chosen
//     by the seed.
//
// Named tools are called in the order of "tools", all of them unless
// parallel_tool_calls is false (then the first).
func (r *genRequest) callsFor(seed uint64) []*tool {
	switch r.toolChoice {
	case toolNone:
		return nil
	case toolFunction:
		return []*tool{r.tool(r.toolName)}
	case toolAuto:
		if r.afterTool {
			return nil
		}
	}
	var named []*tool
	text := strings.ToLower(r.lastUser)
	for i := range r.tools {
		if mentions(text, strings.ToLower(r.tools[i].name)) {
			named = append(named, &r.tools[i])
			if !r.parallelTools {
				break
			}
		}
	}
	if len(named) > 0 {
		return named
	}
	d := mix(seed, 0x746f6f6c) // "tool"
	if r.toolChoice == toolAuto && d%4 == 0 {
		return nil
	}
	return []*tool{&r.tools[(d>>8)%uint64(len(r.tools))]}
}

// mentions reports whether text contains name as a whole word: not inside
// a longer identifier (letters, digits, '_' and '-' continue one).
func mentions(text, name string) bool {
	ident := func(c byte) bool {
		return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
	}
	for off := 0; off < len(text); {
		i := strings.Index(text[off:], name)
		if i < 0 {
			return false
		}
		i += off
		end := i + len(name)
		if (i == 0 || !ident(text[i-1])) && (end == len(text) || !ident(text[end])) {
			return true
		}
		off = i + 1
	}
	return false
}

// toolAnswer is a tool-call answer: per call one opening token (it carries
// the call's id and name, as a tool-call special token does) and then the
// arguments, cut as the tokenizer counts them. Past limit tokens the answer
// is cut, as OpenAI cuts it: finish_reason "length" and the last call's
// arguments incomplete.
func toolAnswer(seed uint64, tools []*tool, limit int) answer {
	a := answer{finish: "tool_calls"}
	for i, t := range tools {
		s := mix(seed, uint64(i)+1)
		args := string(newValueGen(s, t.params).value(nil, t.params, 0))
		a.calls = append(a.calls, toolCall{id: callID(s), name: t.name, args: args, first: len(a.tokens)})
		a.tokens = append(a.tokens, "")
		a.tokens = splitTokens(a.tokens, args)
	}
	if len(a.tokens) > limit {
		a.tokens, a.finish = a.tokens[:limit], "length"
		for len(a.calls) > 0 && a.calls[len(a.calls)-1].first >= limit {
			a.calls = a.calls[:len(a.calls)-1]
		}
		last := &a.calls[len(a.calls)-1]
		last.args = strings.Join(a.tokens[last.first+1:], "")
	}
	return a
}

// callAt is the call that token k of a tool-call answer belongs to.
func (a *answer) callAt(k int) int {
	j := 0
	for j+1 < len(a.calls) && a.calls[j+1].first <= k {
		j++
	}
	return j
}

// callID is a call's id, "call_" and 24 letters and digits as OpenAI's,
// drawn from the seed so the same request gets the same ids.
func callID(seed uint64) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := []byte("call_000000000000000000000000")
	for i := 5; i < len(b); i++ {
		b[i] = alphabet[mix(seed, uint64(i))%uint64(len(alphabet))]
	}
	return string(b)
}
