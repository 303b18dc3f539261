package request

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseDuplicateKeys(t *testing.T) {
	const tool = `{"type":"function","function":{"name":"f"}}`
	checkErrors(t, []errCase{
		{"top-level known", Chat, chat(`"max_tokens":5,"temperature":1,"max_tokens":100000`), "max_tokens", "Duplicate key 'max_tokens' in the request body."},
		{"top-level model", Chat, `{"model":"small","messages":[{"role":"user","content":"hi"}],"model":"big"}`, "model", "Duplicate key 'model'"},
		{"top-level, known to another endpoint", Chat, chat(`"prompt":"a","prompt":"b"`), "prompt", "Duplicate key 'prompt'"},
		{"top-level unknown", Chat, chat(`"top_k":1,"min_p":0.1,"top_k":-1`), "top_k", "Duplicate key 'top_k' in the request body."},
		{"top-level unknown, many keys before", Chat, chat(`"a0":0,"a1":1,"a2":2,"a3":3,"a4":4,"a5":5,"a6":6,"a7":7,"a8":8,"a9":9,"b0":0,"b1":1,` +
			`"b2":2,"b3":3,"b4":4,"b5":5,"b6":6,"b7":7,"b8":8,"b9":9,"c0":0,"c1":1,"c2":2,"c3":3,"c4":4,"c5":5,"c6":6,"c7":7,"c8":8,"c9":9,"d0":0,"d1":1,"c4":4`),
			"c4", "Duplicate key 'c4'"},
		{"escaped known", Chat, chat(`"max_tokens":5,"max\u005ftokens":100000`), "max_tokens", "Duplicate key 'max_tokens'"},
		{"escaped known first", Chat, chat(`"m\u0061x_tokens":5,"max_tokens":100000`), "max_tokens", "Duplicate key 'max_tokens'"},
		{"escaped unknown", Chat, chat(`"top_k":1,"top\u005fk":2`), "top_k", "Duplicate key 'top_k'"},
		{"completions", Completions, `{"model":"m","prompt":"a","echo":true,"echo":false}`, "echo", "Duplicate key 'echo'"},
		{"embeddings", Embeddings, `{"model":"m","input":"a","input":["b","c"]}`, "input", "Duplicate key 'input'"},
		{"message content", Chat, msgs(`{"role":"user","content":"a"},{"role":"user","content":"hi","content":"bye"}`), "messages[1].content",
			"Duplicate key 'messages[1].content' in the request body."},
		{"message role", Chat, msgs(`{"role":"user","content":"hi","role":"system"}`), "messages[0].role", "Duplicate key"},
		{"message name", Chat, msgs(`{"role":"user","name":"a","content":"hi","name":"b"}`), "messages[0].name", "Duplicate key"},
		{"message unknown", Chat, msgs(`{"role":"user","content":"hi","x":1,"x":2}`), "messages[0].x", "Duplicate key 'messages[0].x'"},
		{"message tool_call_id", Chat, msgs(`{"role":"tool","tool_call_id":"a","content":"1","tool_call_id":"b"}`), "messages[0].tool_call_id", "Duplicate key"},
		{"message tool_calls", Chat, msgs(`{"role":"assistant","tool_calls":[],"tool_calls":[]}`), "messages[0].tool_calls", "Duplicate key"},
		{"tool call id", Chat, msgs(`{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f"},"id":"b"}]}`),
			"messages[0].tool_calls[0].id", "Duplicate key"},
		{"tool call arguments", Chat, msgs(`{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"f","arguments":"{}","arguments":"{}"}}]}`),
			"messages[0].tool_calls[0].function.arguments", "Duplicate key"},
		{"part text", Chat, part(`{"type":"text","text":"a","text":"b"}`), "messages[0].content[0].text", "Duplicate key 'messages[0].content[0].text'"},
		{"part type", Chat, part(`{"type":"image_url","image_url":{"url":"https://x/a.png"},"type":"text","text":"a"}`), "messages[0].content[0].type", "Duplicate key"},
		{"part unknown", Chat, part(`{"type":"text","text":"a","cache_control":{},"cache_control":{}}`), "messages[0].content[0].cache_control", "Duplicate key"},
		{"image url", Chat, part(`{"type":"image_url","image_url":{"url":"https://x/a.png","url":"file:///etc/passwd"}}`), "messages[0].content[0].image_url.url", "Duplicate key"},
		{"image detail", Chat, part(`{"type":"image_url","image_url":{"detail":"low","url":"https://x/a.png","detail":"high"}}`), "messages[0].content[0].image_url.detail", "Duplicate key"},
		{"audio_url detail", Chat, part(`{"type":"audio_url","audio_url":{"detail":1,"url":"https://x/a.wav","detail":2}}`), "messages[0].content[0].audio_url.detail", "Duplicate key"},
		{"input_audio format", Chat, part(`{"type":"input_audio","input_audio":{"data":"UklG","format":"wav","format":"mp3"}}`), "messages[0].content[0].input_audio.format", "Duplicate key"},
		{"tool type", Chat, chat(`"tools":[` + tool + `,{"type":"function","function":{"name":"g"},"type":"function"}]`), "tools[1].type", "Duplicate key"},
		{"tool function", Chat, chat(`"tools":[{"type":"function","function":{"name":"g"},"function":{"name":"h"}}]`), "tools[0].function", "Duplicate key"},
		{"tool name", Chat, chat(`"tools":[{"type":"function","function":{"name":"g","name":"h"}}]`), "tools[0].function.name", "Duplicate key 'tools[0].function.name'"},
		{"tool parameters", Chat, chat(`"tools":[{"type":"function","function":{"name":"g","parameters":{},"parameters":{}}}]`), "tools[0].function.parameters", "Duplicate key"},
		{"tool_choice function", Chat, chat(`"tools":[` + tool + `],"tool_choice":{"type":"function","function":{"name":"f"},"function":{"name":"g"}}`), "tool_choice.function", "Duplicate key"},
		{"tool_choice name", Chat, chat(`"tools":[` + tool + `],"tool_choice":{"type":"function","function":{"name":"f","name":"g"}}`), "tool_choice.function.name", "Duplicate key"},
		{"response_format type", Chat, chat(`"response_format":{"type":"text","type":"json_object"}`), "response_format.type", "Duplicate key"},
		{"json_schema name", Chat, chat(`"response_format":{"type":"json_schema","json_schema":{"name":"a","name":"b"}}`), "response_format.json_schema.name", "Duplicate key"},
		{"json_schema schema", Chat, chat(`"response_format":{"type":"json_schema","json_schema":{"name":"a","schema":{},"schema":{}}}`), "response_format.json_schema.schema", "Duplicate key"},
		{"audio voice", Chat, chat(`"audio":{"voice":"a","format":"wav","voice":"b"}`), "audio.voice", "Duplicate key 'audio.voice'"},
		{"stream_options include_usage", Chat, chat(`"stream":true,"stream_options":{"include_usage":false,"include_usage":true}`), "stream_options.include_usage", "Duplicate key"},
		{"stream_options unknown", Chat, chat(`"stream":true,"stream_options":{"x":1,"x":1}`), "stream_options.x", "Duplicate key"},
		{"syntax errors still come first", Chat, chat(`"n":1,"n":2`) + `,`, "", "We could not parse the JSON body"},
	})
}

// TestParseEscapedKeys: a key written with escapes is the parameter it
// spells, as engines read it, never an unknown key the gateway passes on.
func TestParseEscapedKeys(t *testing.T) {
	checkErrors(t, []errCase{
		{"type checked", Chat, chat(`"max\u005ftokens":"many"`), "max_tokens", "Invalid type for 'max_tokens': expected an integer, but got a string instead."},
		{"range checked", Chat, chat(`"\u006e":0`), "n", "below minimum value"},
		{"nested", Chat, msgs(`{"r\u006fle":"robot","content":"x"}`), "messages[0].role", "Invalid value: 'robot'"},
		{"both token limits", Chat, chat(`"max_tokens":5,"max_completion\u005ftokens":5`), "max_tokens", "Only one of"},
	})
	body := chat(`"max\u005ftokens":7,"te\u006dperature":0.5`)
	var r Request
	if err := Parse(Chat, []byte(body), &r); err != nil {
		t.Fatal(err)
	}
	got := []any{r.MaxTokens, r.MaxTokensParam, body[r.MaxTokensSpan[0]:r.MaxTokensSpan[1]], r.Temperature, body[r.TemperatureSpan[0]:r.TemperatureSpan[1]]}
	if diff := cmp.Diff([]any{7, "max_tokens", "7", 0.5, "0.5"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
