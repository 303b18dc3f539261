package request

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/catalog"
)

// chat wraps extra top-level members into a valid chat body.
func chat(extra string) string {
	if extra != "" {
		extra = "," + extra
	}
	return `{"model":"m","messages":[{"role":"user","content":"hi"}]` + extra + `}`
}

// msgs wraps messages into a chat body.
func msgs(m string) string { return `{"model":"m","messages":[` + m + `]}` }

// part wraps one content part into a chat body.
func part(p string) string { return msgs(`{"role":"user","content":[` + p + `]}`) }

type errView struct {
	Status int
	Param  string
}

// errCase is a body Parse rejects, the parameter the 400 names and part of
// its message.
type errCase struct {
	name  string
	ep    Endpoint
	body  string
	param string
	msg   string
}

func TestParseErrors(t *testing.T) {
	tests := []errCase{
		{"syntax", Chat, `{"model":"m",}`, "", "invalid JSON at byte 13"},
		{"truncated", Chat, `{"model":"m","messages":[`, "", "unexpected end of input"},
		{"syntax wins over semantics", Chat, `{"model":1,"messages":[}`, "", "invalid JSON at byte 23"},
		{"bad utf8", Chat, "{\"model\":\"\xff\"}", "", "invalid UTF-8"},
		{"trailing", Chat, chat("") + `x`, "", "after top-level value"},
		{"not object", Chat, `[1]`, "", "must be a JSON object, but got an array"},
		{"model missing", Chat, `{"messages":[{"role":"user","content":"hi"}]}`, "model", "Missing required parameter: 'model'."},
		{"model number", Chat, `{"model":7,"messages":[]}`, "model", "Invalid type for 'model': expected a string, but got an integer instead."},
		{"model null", Chat, `{"model":null}`, "model", "expected a string, but got null"},
		{"messages missing", Chat, `{"model":"m"}`, "messages", "Missing required parameter: 'messages'."},
		{"messages object", Chat, `{"model":"m","messages":{}}`, "messages", "expected an array, but got an object"},
		{"messages empty", Chat, `{"model":"m","messages":[]}`, "messages", "empty array"},
		{"message not object", Chat, msgs(`"hi"`), "messages[0]", "expected an object, but got a string"},
		{"role missing", Chat, msgs(`{"content":"hi"}`), "messages[0].role", "Missing required parameter"},
		{"role bad", Chat, msgs(`{"role":"user","content":"a"},{"role":"robot","content":"x"}`), "messages[1].role", "Invalid value: 'robot'. Supported values are"},
		{"role number", Chat, msgs(`{"role":1,"content":"x"}`), "messages[0].role", "expected a string, but got an integer"},
		{"content number", Chat, msgs(`{"role":"user","content":1.5}`), "messages[0].content", "expected one of a string or an array of objects, but got a decimal"},
		{"content missing", Chat, msgs(`{"role":"user"}`), "messages[0].content", "Missing required parameter"},
		{"content empty array", Chat, msgs(`{"role":"user","content":[]}`), "messages[0].content", "empty array"},
		{"assistant empty", Chat, msgs(`{"role":"assistant"}`), "messages[0].content", "either 'content' or 'tool_calls'"},
		{"tool without id", Chat, msgs(`{"role":"tool","content":"42"}`), "messages[0].tool_call_id", "Missing required parameter"},
		{"tool_calls bad type", Chat, msgs(`{"role":"assistant","tool_calls":[{"id":"c","type":"fn","function":{"name":"f","arguments":"{}"}}]}`), "messages[0].tool_calls[0].type", "Invalid value: 'fn'"},
		{"tool_calls no function", Chat, msgs(`{"role":"assistant","tool_calls":[{"id":"c","type":"function"}]}`), "messages[0].tool_calls[0].function", "Missing"},
		{"part not object", Chat, part(`"x"`), "messages[0].content[0]", "expected an object, but got a string"},
		{"part type missing", Chat, part(`{"text":"x"}`), "messages[0].content[0].type", "Missing required parameter"},
		{"part type unknown", Chat, part(`{"type":"text","text":"a"},{"type":"file","file":{}}`), "messages[0].content[1].type", "Invalid value: 'file'"},
		{"text part without text", Chat, part(`{"type":"text"}`), "messages[0].content[0].text", "Missing required parameter"},
		{"text part number", Chat, part(`{"type":"text","text":3}`), "messages[0].content[0].text", "expected a string"},
		{"image_url string", Chat, part(`{"type":"image_url","image_url":"http://x/y.png"}`), "messages[0].content[0].image_url", "expected an object, but got a string"},
		{"image url missing", Chat, part(`{"type":"image_url","image_url":{}}`), "messages[0].content[0].image_url.url", "Missing required parameter"},
		{"image url ftp", Chat, part(`{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"ftp://x/y.png"}}`), "messages[0].content[1].image_url.url", "expected an http(s) URL or a base64 data URL"},
		{"image data url not image", Chat, part(`{"type":"image_url","image_url":{"url":"data:text/plain;base64,aGk="}}`), "messages[0].content[0].image_url.url", "data:image/"},
		{"image data url not base64", Chat, part(`{"type":"image_url","image_url":{"url":"data:image/png;base64,%%%"}}`), "messages[0].content[0].image_url.url", "base64 data URL"},
		{"image data url no base64 marker", Chat, part(`{"type":"image_url","image_url":{"url":"data:image/png,abc"}}`), "messages[0].content[0].image_url.url", "base64 data URL"},
		{"image detail", Chat, part(`{"type":"image_url","image_url":{"url":"https://x/a.png","detail":"max"}}`), "messages[0].content[0].image_url.detail", "Invalid value: 'max'. Supported values are: 'auto', 'low', and 'high'."},
		{"input_audio no format", Chat, part(`{"type":"input_audio","input_audio":{"data":"UklGRg=="}}`), "messages[0].content[0].input_audio.format", "Missing required parameter"},
		{"input_audio bad data", Chat, part(`{"type":"input_audio","input_audio":{"data":"not base64!","format":"wav"}}`), "messages[0].content[0].input_audio.data", "base64"},
		{"input_audio data number", Chat, part(`{"type":"input_audio","input_audio":{"data":5,"format":"wav"}}`), "messages[0].content[0].input_audio.data", "expected a string"},
		{"audio_url bad", Chat, part(`{"type":"audio_url","audio_url":{"url":"file:///etc/passwd"}}`), "messages[0].content[0].audio_url.url", "http(s) URL"},
		{"video_url missing payload", Chat, part(`{"type":"video_url"}`), "messages[0].content[0].video_url", "Missing required parameter"},
		{"video frames not array", Chat, part(`{"type":"video","video":"http://x/1.jpg"}`), "messages[0].content[0].video", "expected an array of strings"},
		{"video frames empty", Chat, part(`{"type":"video","video":[]}`), "messages[0].content[0].video", "empty array"},
		{"video frame bad", Chat, part(`{"type":"video","video":["https://x/1.jpg",2]}`), "messages[0].content[0].video[1]", "expected a string, but got an integer"},
		{"temperature string", Chat, chat(`"temperature":"0.5"`), "temperature", "Invalid type for 'temperature': expected a decimal, but got a string instead."},
		{"top_p bool", Chat, chat(`"top_p":true`), "top_p", "expected a decimal, but got a boolean"},
		{"max_tokens zero", Chat, chat(`"max_tokens":0`), "max_tokens", "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got 0 instead."},
		{"max_tokens decimal", Chat, chat(`"max_tokens":10.5`), "max_tokens", "expected an integer, but got a decimal"},
		{"max_tokens string", Chat, chat(`"max_tokens":"10"`), "max_tokens", "expected an integer, but got a string"},
		{"max_completion_tokens negative", Chat, chat(`"max_completion_tokens":-1`), "max_completion_tokens", "below minimum value"},
		{"both max tokens", Chat, chat(`"max_tokens":5,"max_completion_tokens":5`), "max_tokens", "Only one of"},
		{"n zero", Chat, chat(`"n":0`), "n", "below minimum value"},
		{"n decimal", Chat, chat(`"n":1.5`), "n", "expected an integer, but got a decimal"},
		{"stop number", Chat, chat(`"stop":1`), "stop", "expected one of a string or an array of strings, but got an integer"},
		{"stop too long", Chat, chat(`"stop":["a","b","c","d","e"]`), "stop", "array too long"},
		{"stop element", Chat, chat(`"stop":["a",null]`), "stop[1]", "expected a string, but got null"},
		{"seed decimal", Chat, chat(`"seed":1.5`), "seed", "expected an integer"},
		{"seed huge", Chat, chat(`"seed":1e300`), "seed", "integer above maximum value"},
		{"presence_penalty high", Chat, chat(`"presence_penalty":2.5`), "presence_penalty", "Invalid 'presence_penalty': decimal above maximum value. Expected a value <= 2, but got 2.5 instead."},
		{"frequency_penalty low", Chat, chat(`"frequency_penalty":-3`), "frequency_penalty", "below minimum value. Expected a value >= -2"},
		{"frequency_penalty string", Chat, chat(`"frequency_penalty":"1"`), "frequency_penalty", "expected a decimal"},
		{"response_format string", Chat, chat(`"response_format":"json"`), "response_format", "expected an object, but got a string"},
		{"response_format no type", Chat, chat(`"response_format":{}`), "response_format.type", "Missing required parameter"},
		{"response_format bad type", Chat, chat(`"response_format":{"type":"xml"}`), "response_format.type", "Invalid value: 'xml'"},
		{"json_schema missing", Chat, chat(`"response_format":{"type":"json_schema"}`), "response_format.json_schema", "Missing required parameter"},
		{"json_schema name missing", Chat, chat(`"response_format":{"type":"json_schema","json_schema":{"schema":{}}}`), "response_format.json_schema.name", "Missing"},
		{"tools object", Chat, chat(`"tools":{}`), "tools", "expected an array"},
		{"tool not object", Chat, chat(`"tools":[1]`), "tools[0]", "expected an object, but got an integer"},
		{"tool bad type", Chat, chat(`"tools":[{"type":"retrieval"}]`), "tools[0].type", "Invalid value: 'retrieval'"},
		{"tool no function", Chat, chat(`"tools":[{"type":"function"}]`), "tools[0].function", "Missing required parameter"},
		{"tool no name", Chat, chat(`"tools":[{"type":"function","function":{"description":"d"}}]`), "tools[0].function.name", "Missing required parameter"},
		{"tool bad name", Chat, chat(`"tools":[{"type":"function","function":{"name":"get weather"}}]`), "tools[0].function.name", "does not match pattern"},
		{"tool parameters", Chat, chat(`"tools":[{"type":"function","function":{"name":"f","parameters":[]}}]`), "tools[0].function.parameters", "expected an object"},
		{"tool_choice bad string", Chat, chat(`"tool_choice":"always"`), "tool_choice", "Invalid value: 'always'. Supported values are: 'none', 'auto', and 'required'."},
		{"tool_choice number", Chat, chat(`"tool_choice":1`), "tool_choice", "expected one of a string or an object"},
		{"tool_choice no function", Chat, chat(`"tool_choice":{"type":"function"}`), "tool_choice.function", "Missing"},
		{"logprobs string", Chat, chat(`"logprobs":"yes"`), "logprobs", "expected a boolean"},
		{"top_logprobs high", Chat, chat(`"logprobs":true,"top_logprobs":21`), "top_logprobs", "above maximum value. Expected a value <= 20"},
		{"top_logprobs without logprobs", Chat, chat(`"top_logprobs":3`), "top_logprobs", "'logprobs' must be set to true"},
		{"user number", Chat, chat(`"user":5`), "user", "expected a string"},
		{"stream string", Chat, chat(`"stream":"true"`), "stream", "expected a boolean, but got a string"},
		{"stream_options without stream", Chat, chat(`"stream_options":{"include_usage":true}`), "stream_options", "only allowed when 'stream' is enabled"},
		{"stream_options array", Chat, chat(`"stream":true,"stream_options":[]`), "stream_options", "expected an object"},
		{"include_usage string", Chat, chat(`"stream":true,"stream_options":{"include_usage":"yes"}`), "stream_options.include_usage", "expected a boolean"},
		{"modalities string", Chat, chat(`"modalities":"audio"`), "modalities", "expected an array"},
		{"modalities bad", Chat, chat(`"modalities":["text","image"]`), "modalities[1]", "Invalid value: 'image'. Supported values are: 'text' and 'audio'."},
		{"audio missing", Chat, chat(`"modalities":["text","audio"]`), "audio", "required when 'modalities' includes 'audio'"},
		{"audio no voice", Chat, chat(`"audio":{"format":"wav"}`), "audio.voice", "Missing"},
		{"audio format number", Chat, chat(`"audio":{"voice":"Cherry","format":1}`), "audio.format", "expected a string"},
		{"prompt missing", Completions, `{"model":"m"}`, "prompt", "Missing required parameter: 'prompt'."},
		{"prompt object", Completions, `{"model":"m","prompt":{}}`, "prompt", "expected one of a string, an array of strings"},
		{"prompt empty", Completions, `{"model":"m","prompt":[]}`, "prompt", "empty array"},
		{"prompt mixed", Completions, `{"model":"m","prompt":["a",1]}`, "prompt[1]", "same type as the first"},
		{"prompt token negative", Completions, `{"model":"m","prompt":[[1,-2]]}`, "prompt[0][1]", "below minimum value"},
		{"completions logprobs high", Completions, `{"model":"m","prompt":"a","logprobs":6}`, "logprobs", "above maximum value"},
		{"completions temperature", Completions, `{"model":"m","prompt":"a","temperature":[]}`, "temperature", "expected a decimal, but got an array"},
		{"input missing", Embeddings, `{"model":"m"}`, "input", "Missing required parameter: 'input'."},
		{"input number", Embeddings, `{"model":"m","input":5}`, "input", "Invalid type for 'input'"},
		{"encoding_format", Embeddings, `{"model":"m","input":"a","encoding_format":"int8"}`, "encoding_format", "Invalid value: 'int8'. Supported values are: 'float' and 'base64'."},
		{"dimensions", Embeddings, `{"model":"m","input":"a","dimensions":0}`, "dimensions", "below minimum value"},

		// A token limit sent as null counts as sent.
		{"both max tokens, one null", Chat, chat(`"max_tokens":null,"max_completion_tokens":5`), "max_tokens", "Only one of"},
		{"both max tokens null", Chat, chat(`"max_completion_tokens":null,"max_tokens":null`), "max_tokens", "Only one of"},

		// Integers: any integral number, nothing else.
		{"max_tokens fraction", Chat, chat(`"max_tokens":1.55e1`), "max_tokens", "expected an integer, but got a decimal"},
		{"n tiny", Chat, chat(`"n":1e-400`), "n", "expected an integer, but got a decimal"},
		{"max_tokens huge", Chat, chat(`"max_tokens":1e400`), "max_tokens", "integer above maximum value. Expected a value <= 4611686018427387904, but got 1e400 instead."},
		{"seed 2^63", Chat, chat(`"seed":9223372036854775808`), "seed",
			"Invalid 'seed': integer above maximum value. Expected a value <= 9223372036854775807, but got 9223372036854775808 instead."},
		{"seed -2^63-1", Chat, chat(`"seed":-9223372036854775809`), "seed",
			"Invalid 'seed': integer below minimum value. Expected a value >= -9223372036854775808, but got -9223372036854775809 instead."},
		{"seed 2^63 as decimal", Chat, chat(`"seed":9.223372036854775808e18`), "seed", "integer above maximum value"},
		{"token id decimal", Completions, `{"model":"m","prompt":[1,2.0]}`, "prompt[1]", "expected an integer, but got a decimal"},
		{"token id exponent", Embeddings, `{"model":"m","input":[[1e1]]}`, "input[0][0]", "expected an integer, but got a decimal"},
		{"token id null", Completions, `{"model":"m","prompt":[[1,null]]}`, "prompt[0][1]", "expected an integer, but got null"},

		// Enumerated values are compared decoded, and named so.
		{"role escaped bad", Chat, msgs(`{"role":"r\u006fbot","content":"x"}`), "messages[0].role", "Invalid value: 'robot'. Supported values are"},
		{"part type escaped bad", Chat, part(`{"type":"fil\u0065","file":{}}`), "messages[0].content[0].type", "Invalid value: 'file'."},
		{"tool name escaped bad", Chat, chat(`"tools":[{"type":"function","function":{"name":"get\u0020weather"}}]`), "tools[0].function.name", "does not match pattern"},

		// tool_choice needs tools, and the function it names among them.
		{"tool_choice without tools", Chat, chat(`"tool_choice":"auto"`), "tool_choice",
			"Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified."},
		{"tool_choice required, tools null", Chat, chat(`"tools":null,"tool_choice":"required"`), "tool_choice", "only allowed when 'tools' are specified"},
		{"tool_choice, tools empty", Chat, chat(`"tool_choice":"auto","tools":[]`), "tool_choice", "only allowed when 'tools' are specified"},
		{"tool_choice function without tools", Chat, chat(`"tool_choice":{"type":"function","function":{"name":"f"}}`), "tool_choice", "only allowed when 'tools'"},
		{"tool_choice function not in tools", Chat, chat(`"tool_choice":{"type":"function","function":{"name":"f"}},` +
			`"tools":[{"type":"function","function":{"name":"g"}},{"type":"function","function":{"name":"ff"}}]`), "tool_choice",
			"Invalid value for 'tool_choice': function 'f' is not in 'tools'."},
		{"tool_choice function named escaped", Chat, chat(`"tools":[{"type":"function","function":{"name":"g"}}],` +
			`"tool_choice":{"type":"function","function":{"name":"\u0066"}}`), "tool_choice", "function 'f' is not in 'tools'"},
	}
	checkErrors(t, tests)
}

// checkErrors checks that Parse rejects each body as the case says.
func checkErrors(t *testing.T, tests []errCase) {
	t.Helper()
	var r Request
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Parse(tt.ep, []byte(tt.body), &r)
			var ae *apierror.Error
			if !errors.As(err, &ae) {
				t.Fatalf("Parse(%s) = %v, want *apierror.Error", tt.body, err)
			}
			if diff := cmp.Diff(errView{400, tt.param}, errView{ae.Status, ae.Param}); diff != "" {
				t.Errorf("Parse(%s): %v (-want +got):\n%s", tt.body, err, diff)
			}
			if !strings.Contains(ae.Message, tt.msg) {
				t.Errorf("message %q does not contain %q", ae.Message, tt.msg)
			}
			if ae.Type != apierror.TypeInvalidRequest {
				t.Errorf("type %q", ae.Type)
			}
		})
	}
}

func TestParseGood(t *testing.T) {
	const png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
	tests := []struct {
		name string
		ep   Endpoint
		body string
		want Request
	}{
		{"minimal", Chat, `{"model":"qwen3-omni-7b","messages":[{"role":"user","content":"Hello!"}]}`,
			Request{Endpoint: Chat, Model: "qwen3-omni-7b", ModelSpan: [2]int{9, 24}, N: 1, PromptChars: 6}},
		{"sampling", Chat, `{"model":"small","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi ☃"}],` +
			`"temperature":0.7,"top_p":1,"max_tokens":100,"n":2,"stream":true,"stream_options":{"include_usage":true},"stop":["\n"],"seed":-5,` +
			`"presence_penalty":0,"frequency_penalty":-2,"logprobs":true,"top_logprobs":2,"user":"u1","top_k":20,"chat_template_kwargs":{"enable_thinking":false}}`,
			Request{Endpoint: Chat, Model: "small", ModelSpan: [2]int{9, 16}, Stream: true,
				MaxTokens: 100, MaxTokensParam: "max_tokens",
				Temperature: 0.7, HasTemperature: true, TopP: 1, HasTopP: true,
				N: 2, PromptChars: 13}},
		{"nulls are absent", Chat, chat(`"temperature":null,"stop":null,"tools":null,"stream":null,"stream_options":null,"response_format":null,"audio":null,"modalities":null,"tool_choice":null`),
			Request{Endpoint: Chat, Model: "m", ModelSpan: [2]int{9, 12}, N: 1, PromptChars: 2 + 4}},
		{"null max_tokens is kept, to be replaced", Chat, chat(`"max_tokens":null`),
			Request{Endpoint: Chat, Model: "m", ModelSpan: [2]int{9, 12}, N: 1, PromptChars: 2, MaxTokensParam: "max_tokens"}},
		{"null max_completion_tokens", Chat, chat(`"max_completion_tokens":null`),
			Request{Endpoint: Chat, Model: "m", ModelSpan: [2]int{9, 12}, N: 1, PromptChars: 2, MaxTokensParam: "max_completion_tokens"}},
		{"multimodal", Chat, msgs(`{"role":"user","content":[{"type":"text","text":"What is in these?"},` +
			`{"type":"image_url","image_url":{"url":"https://example.com/a.jpg","detail":"low"}},` +
			`{"image_url":{"url":"data:image/png;base64,` + png + `"},"type":"image_url"},` +
			`{"type":"input_audio","input_audio":{"data":"UklGRiQAAABXQVZFZm10","format":"wav"}},` +
			`{"type":"input_audio","input_audio":{"data":"data:;base64,SUQzBAAAAAAA","format":"mp3"}}]},` +
			`{"role":"assistant","content":"ok"},{"role":"user","content":[{"type":"video_url","video_url":{"url":"https:\/\/example.com\/v.mp4"}},` +
			`{"type":"video","video":["https://x/1.jpg","https://x/2.jpg"]},{"type":"audio_url","audio_url":{"url":"http://x/a.wav"}}]}`),
			Request{Endpoint: Chat, Model: "m", ModelSpan: [2]int{9, 12}, N: 1, PromptChars: 17 + 2,
				Media: Media{Image: 2, Audio: 3, Video: 2,
					FirstImage: PartRef{0, 1}, LastImage: PartRef{0, 2}, FirstAudio: PartRef{0, 3}, LastAudio: PartRef{2, 2},
					FirstVideo: PartRef{2, 0}, LastVideo: PartRef{2, 1}}}},
		{"tools", Chat, `{"model":"m","messages":[{"role":"user","content":"weather?"},` +
			`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},` +
			`{"role":"tool","tool_call_id":"call_1","content":"sunny"}],` +
			`"tools":[{"type":"function","function":{"name":"get_weather","description":"d","parameters":{"type":"object","properties":{}},"strict":true}}],` +
			`"tool_choice":{"type":"function","function":{"name":"get_weather"}},"parallel_tool_calls":false,` +
			`"response_format":{"type":"json_schema","json_schema":{"name":"w","schema":{"type":"object"},"strict":true}}}`,
			Request{Endpoint: Chat, Model: "m", ModelSpan: [2]int{9, 12}, N: 1,
				PromptChars: 8 + 5 + len(`[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{}"}}]`) +
					len(`[{"type":"function","function":{"name":"get_weather","description":"d","parameters":{"type":"object","properties":{}},"strict":true}}]`)}},
		{"audio out", Chat, chat(`"modalities":["text","audio"],"audio":{"voice":"Cherry","format":"wav"},"max_completion_tokens":50,"tool_choice":"none","response_format":{"type":"json_object"}`),
			Request{Endpoint: Chat, Model: "m", ModelSpan: [2]int{9, 12}, N: 1, PromptChars: 2,
				Modalities: catalog.Modalities(catalog.Text | catalog.Audio), AudioRequested: true,
				MaxTokens: 50, MaxTokensParam: "max_completion_tokens"}},
		{"escaped model", Chat, `{"model":"qwen\u0033","messages":[{"role":"developer","content":[{"type":"text","text":"x"}]}]}`,
			Request{Endpoint: Chat, Model: "qwen3", ModelSpan: [2]int{9, 21}, N: 1, PromptChars: 1}},
		{"completions", Completions, `{"model":"m","prompt":["ab","cde"],"max_tokens":16,"echo":true,"logprobs":2,"best_of":2,"suffix":null}`,
			Request{Endpoint: Completions, Model: "m", ModelSpan: [2]int{9, 12}, N: 1, PromptChars: 5,
				MaxTokens: 16, MaxTokensParam: "max_tokens"}},
		{"completions tokens", Completions, `{"model":"m","prompt":[[1,2],[3]]}`,
			Request{Endpoint: Completions, Model: "m", ModelSpan: [2]int{9, 12}, N: 1, PromptChars: 12}},
		{"embeddings", Embeddings, `{"model":"m","input":"héllo","encoding_format":"base64","dimensions":256,"user":"u"}`,
			Request{Endpoint: Embeddings, Model: "m", ModelSpan: [2]int{9, 12}, N: 1, PromptChars: 5}},
		{"escaped role and part type", Chat, msgs(`{"role":"\u0075ser","content":[{"type":"te\u0078t","text":"hi"}]},{"role":"\u0061ssistant","content":"ok"}`),
			Request{Endpoint: Chat, Model: "m", ModelSpan: [2]int{9, 12}, N: 1, PromptChars: 4}},
		{"seed at the int64 bounds", Chat, chat(`"seed":9223372036854775807,"user":"u","n":2,"stop":"x"`),
			Request{Endpoint: Chat, Model: "m", ModelSpan: [2]int{9, 12}, N: 2, PromptChars: 2}},
		{"seed at the int64 bounds, negative", Completions, `{"model":"m","prompt":"ab","seed":-9223372036854775808}`,
			Request{Endpoint: Completions, Model: "m", ModelSpan: [2]int{9, 12}, N: 1, PromptChars: 2}},
		{"tool_choice before tools", Chat, chat(`"tool_choice":{"type":"function","function":{"name":"get_w\u0065ather"}},` +
			`"tools":[{"type":"function","function":{"name":"other"}},{"type":"function","function":{"name":"get_weather"}}]`),
			Request{Endpoint: Chat, Model: "m", ModelSpan: [2]int{9, 12}, N: 1,
				PromptChars: 2 + len(`[{"type":"function","function":{"name":"other"}},{"type":"function","function":{"name":"get_weather"}}]`)}},
		{"tool_choice none without tools", Chat, chat(`"tool_choice":"none"`),
			Request{Endpoint: Chat, Model: "m", ModelSpan: [2]int{9, 12}, N: 1, PromptChars: 2}},
		{"repeats inside skipped objects are the engine's", Chat, chat(`"logit_bias":{"1":2,"1":3},` +
			`"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","type":"object"}}}]`),
			Request{Endpoint: Chat, Model: "m", ModelSpan: [2]int{9, 12}, N: 1,
				PromptChars: 2 + len(`[{"type":"function","function":{"name":"f","parameters":{"type":"object","type":"object"}}}]`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !json.Valid([]byte(tt.body)) {
				t.Fatal("test body is not JSON")
			}
			r := Request{Model: "stale", MaxTokens: 9, Stream: true} // reused: must be reset
			if err := Parse(tt.ep, []byte(tt.body), &r); err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want := tt.want
			body := tt.body
			for _, f := range []struct {
				key  string
				span *[2]int
			}{{want.MaxTokensParam, &want.MaxTokensSpan}, {"temperature", &want.TemperatureSpan}, {"top_p", &want.TopPSpan}, {"n", &want.NSpan}} {
				if f.key == "" || (f.key == "temperature" && !want.HasTemperature) || (f.key == "top_p" && !want.HasTopP) || (f.key == "n" && want.N == 1) {
					continue
				}
				at := strings.Index(body, `"`+f.key+`":`) + len(f.key) + 3
				end := at + strings.IndexAny(body[at:], ",}")
				*f.span = [2]int{at, end}
			}
			// stream and stream_options: their spans, null included.
			for _, f := range []struct {
				key  string
				span *[2]int
			}{{"stream", &want.StreamSpan}, {"stream_options", &want.StreamOptionsSpan}} {
				at := strings.Index(body, `"`+f.key+`":`)
				if at < 0 {
					continue
				}
				at += len(f.key) + 3
				end := at + strings.IndexAny(body[at:], ",}")
				if body[at] == '{' {
					end = at + strings.IndexByte(body[at:], '}') + 1
				}
				*f.span = [2]int{at, end}
			}
			// messages: the span of its closing bracket.
			if at := strings.Index(body, `"messages":`); at >= 0 {
				c := r.MessagesClose
				start := at + len(`"messages":`)
				if c[1] != c[0]+1 || body[c[0]] != ']' || !json.Valid([]byte(body[start:c[1]])) {
					t.Errorf("MessagesClose %v does not close the messages array", c)
				}
				want.MessagesClose = c
				if p := r.PromptSpan; p[1] != c[1] || !json.Valid([]byte(body[p[0]:p[1]])) {
					t.Errorf("PromptSpan %v is not the messages array", p)
				}
				want.PromptSpan = r.PromptSpan
			}
			if at := strings.Index(body, `"prompt":`); at >= 0 && tt.ep == Completions {
				if p := r.PromptSpan; !json.Valid([]byte(body[p[0]:p[1]])) {
					t.Errorf("PromptSpan %v is not the prompt", p)
				}
				want.PromptSpan = r.PromptSpan
			}
			if at := strings.Index(body, `"user":`); at >= 0 {
				if p := r.UserSpan; !json.Valid([]byte(body[p[0]:p[1]])) {
					t.Errorf("UserSpan %v is not the user", p)
				}
				want.UserSpan = r.UserSpan
			}
			// The routing features have a test of their own (TestParseShape).
			if diff := cmp.Diff(want, r, cmpopts.IgnoreFields(Request{}, "Turns", "Tools", "JSONOut", "Logprobs", "LastUserSpan")); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
			for _, sp := range [][2]int{r.ModelSpan, r.StreamSpan, r.StreamOptionsSpan, r.MaxTokensSpan, r.TemperatureSpan, r.TopPSpan, r.NSpan} {
				if sp != [2]int{} && !json.Valid([]byte(tt.body[sp[0]:sp[1]])) {
					t.Errorf("span %v = %q is not a JSON value", sp, tt.body[sp[0]:sp[1]])
				}
			}
		})
	}
}

func TestParseNoAllocs(t *testing.T) {
	body := []byte(chatSmall)
	var r Request
	if err := Parse(Chat, body, &r); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(50, func() { _ = Parse(Chat, body, &r) }); n != 0 {
		t.Errorf("Parse of a small chat body allocates %v times; want 0", n)
	}
	mm := []byte(chatMultimodal)
	if n := testing.AllocsPerRun(50, func() { _ = Parse(Chat, mm, &r) }); n != 0 {
		t.Errorf("Parse of a multimodal chat body allocates %v times; want 0", n)
	}
	for _, tt := range []struct {
		ep   Endpoint
		body string
	}{
		{Chat, chatEverything},
		{Completions, `{"model":"m","prompt":[[1,2],[3]],"max_tokens":1.6e1,"echo":true,"logprobs":2,"best_of":2.0,"suffix":"s","n":1,"top_k":5}`},
		{Embeddings, `{"model":"m","input":["a","b"],"encoding_format":"float","dimensions":256.0,"user":"u","extra":{"a":1}}`},
	} {
		body := []byte(tt.body)
		if err := Parse(tt.ep, body, &r); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(50, func() { _ = Parse(tt.ep, body, &r) }); n != 0 {
			t.Errorf("Parse of %s allocates %v times; want 0", body, n)
		}
	}
}

// chatEverything has every parameter Parse reads, values with escapes,
// integers written as decimals, and parameters it does not know.
const chatEverything = `{"model":"qwen3","messages":[{"role":"system","content":"Be brief."},` +
	`{"role":"\u0075ser","name":"u","content":[{"type":"te\u0078t","text":"hi"},{"type":"image_url","image_url":{"url":"https:\/\/x\/a.png","detail":"low"}}]},` +
	`{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},` +
	`{"role":"tool","tool_call_id":"c1","content":"sunny"}],` +
	`"tool_choice":{"type":"function","function":{"name":"get_w\u0065ather"}},` +
	`"tools":[{"type":"function","function":{"name":"get_weather","description":"d","parameters":{"type":"object"},"strict":true}}],` +
	`"parallel_tool_calls":false,"store":false,"response_format":{"type":"json_schema","json_schema":{"name":"w","schema":{},"strict":true,"description":"d"}},` +
	`"modalities":["text","audio"],"audio":{"voice":"Cherry","format":"wav"},"max_completion_tokens":5.12e2,"temperature":0.7,"top_p":1,` +
	`"n":1.0,"stream":true,"stream_options":{"include_usage":true},"stop":["\n"],"seed":9223372036854775807,"presence_penalty":0,` +
	`"frequency_penalty":0,"logprobs":true,"top_logprobs":2,"user":"u","logit_bias":{"1":-100},"top_k":20,"chat_template_kwargs":{"enable_thinking":false}}`

const chatSmall = `{"model":"qwen3-omni-7b","messages":[{"role":"system","content":"You are a helpful assistant."},` +
	`{"role":"user","content":"What is the capital of France? Answer in one word."}],` +
	`"temperature":0.7,"top_p":0.9,"max_tokens":256,"stream":true,"stream_options":{"include_usage":true}}`

const chatMultimodal = `{"model":"qwen3-omni-30b","messages":[{"role":"user","content":[` +
	`{"type":"text","text":"Describe the picture and the sound."},` +
	`{"type":"image_url","image_url":{"url":"https://example.com/cat.jpg","detail":"high"}},` +
	`{"type":"input_audio","input_audio":{"data":"UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQAAAAA=","format":"wav"}},` +
	`{"type":"video_url","video_url":{"url":"https://example.com/clip.mp4"}}]}],` +
	`"modalities":["text","audio"],"audio":{"voice":"Cherry","format":"wav"},"max_completion_tokens":512,"temperature":0.2}`

// TestParseShape: what Parse records of a request's shape, for routing.
func TestParseShape(t *testing.T) {
	type shape struct {
		Turns, Tools      int
		JSONOut, Logprobs bool
		LastUser          string
	}
	for _, tc := range []struct {
		name string
		ep   Endpoint
		body string
		want shape
	}{
		{"one turn", Chat, `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, shape{Turns: 1, LastUser: `"hi"`}},
		{"last user of several", Chat, `{"model":"m","messages":[{"role":"system","content":"s"},{"content":"q1","role":"user"},` +
			`{"role":"assistant","content":"a"},{"role":"user","content":[{"type":"text","text":"q2"}]}]}`,
			shape{Turns: 4, LastUser: `[{"type":"text","text":"q2"}]`}},
		{"tools, JSON, logprobs", Chat, `{"model":"m","messages":[{"role":"user","content":"x"}],"logprobs":true,` +
			`"response_format":{"type":"json_object"},"tools":[{"type":"function","function":{"name":"a"}},{"type":"function","function":{"name":"b"}}]}`,
			shape{Turns: 1, Tools: 2, JSONOut: true, Logprobs: true, LastUser: `"x"`}},
		{"text format", Chat, `{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"text"}}`, shape{Turns: 1, LastUser: `"x"`}},
		{"completion", Completions, `{"model":"m","prompt":"abc","logprobs":2}`, shape{Turns: 1, Logprobs: true, LastUser: `"abc"`}},
		{"embeddings", Embeddings, `{"model":"m","input":"abc"}`, shape{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Request
			if err := Parse(tc.ep, []byte(tc.body), &r); err != nil {
				t.Fatal(err)
			}
			got := shape{Turns: r.Turns, Tools: r.Tools, JSONOut: r.JSONOut, Logprobs: r.Logprobs, LastUser: tc.body[r.LastUserSpan[0]:r.LastUserSpan[1]]}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
