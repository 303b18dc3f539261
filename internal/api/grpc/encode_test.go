package grpcapi

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/request"
	pb "github.com/omnigate/omnigate/proto/omnigate/v1"
)

func text(s string) *pb.ChatMessage_Text { return &pb.ChatMessage_Text{Text: s} }

func user(s string) *pb.ChatMessage { return &pb.ChatMessage{Role: "user", Content: text(s)} }

func mustStruct(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAppendChat: a chat request becomes the JSON body the HTTP API takes,
// byte for byte, and the parser takes it.
func TestAppendChat(t *testing.T) {
	parts := &pb.ChatMessage_Parts{Parts: &pb.ContentParts{Parts: []*pb.ContentPart{
		{Part: &pb.ContentPart_Text{Text: "What is in these?"}},
		{Part: &pb.ContentPart_ImageUrl{ImageUrl: &pb.ImageURL{Url: "https://example.com/a.png", Detail: "low"}}},
		{Part: &pb.ContentPart_InputAudio{InputAudio: &pb.InputAudio{Data: "UklGRg==", Format: "wav"}}},
		{Part: &pb.ContentPart_VideoUrl{VideoUrl: &pb.VideoURL{Url: "https://example.com/v.mp4"}}},
		{Part: &pb.ContentPart_AudioUrl{AudioUrl: &pb.AudioURL{Url: "https://example.com/a.mp3"}}},
		{Part: &pb.ContentPart_Video{Video: &pb.VideoFrames{Frames: []string{"https://example.com/1.jpg", "https://example.com/2.jpg"}}}},
	}}}
	tests := []struct {
		name   string
		req    *pb.ChatCompletionRequest
		stream bool
		want   string
	}{
		{"plain", &pb.ChatCompletionRequest{Model: "m", Messages: []*pb.ChatMessage{user("hi")}}, false,
			`{"model":"m","messages":[{"role":"user","content":"hi"}]}`},
		{"stream", &pb.ChatCompletionRequest{Model: "m", Messages: []*pb.ChatMessage{user("hi")}, StreamOptions: &pb.StreamOptions{IncludeUsage: proto.Bool(true)}}, true,
			`{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`},
		{"sampling", &pb.ChatCompletionRequest{Model: "m", Messages: []*pb.ChatMessage{user("hi")},
			FrequencyPenalty: proto.Float64(0.5), PresencePenalty: proto.Float64(-1), Temperature: proto.Float64(0), TopP: proto.Float64(1e-7),
			MaxTokens: proto.Int64(64), N: proto.Int32(2), Seed: proto.Int64(-3), Logprobs: proto.Bool(true), TopLogprobs: proto.Int32(3),
			LogitBias: map[string]float64{"50256": -100, "11": 2.5}, User: "u1", Store: proto.Bool(false),
			Metadata: map[string]string{"b": "2", "a": "1"}, ReasoningEffort: "low", ServiceTier: "auto"}, false,
			`{"model":"m","messages":[{"role":"user","content":"hi"}],"frequency_penalty":0.5,"logit_bias":{"11":2.5,"50256":-100},` +
				`"logprobs":true,"top_logprobs":3,"max_tokens":64,"n":2,"presence_penalty":-1,"seed":-3,"temperature":0,"top_p":1e-7,` +
				`"user":"u1","store":false,"metadata":{"a":"1","b":"2"},"reasoning_effort":"low","service_tier":"auto"}`},
		{"multimodal", &pb.ChatCompletionRequest{Model: "m", Messages: []*pb.ChatMessage{{Role: "user", Content: parts}}}, false,
			`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"What is in these?"},` +
				`{"type":"image_url","image_url":{"url":"https://example.com/a.png","detail":"low"}},` +
				`{"type":"input_audio","input_audio":{"data":"UklGRg==","format":"wav"}},` +
				`{"type":"video_url","video_url":{"url":"https://example.com/v.mp4"}},` +
				`{"type":"audio_url","audio_url":{"url":"https://example.com/a.mp3"}},` +
				`{"type":"video","video":["https://example.com/1.jpg","https://example.com/2.jpg"]}]}]}`},
		{"audio out", &pb.ChatCompletionRequest{Model: "m", Messages: []*pb.ChatMessage{user("sing")}, Modalities: []string{"text", "audio"},
			Audio: &pb.AudioParams{Voice: "Cherry", Format: "wav"}}, false,
			`{"model":"m","messages":[{"role":"user","content":"sing"}],"modalities":["text","audio"],"audio":{"voice":"Cherry","format":"wav"}}`},
		{"tools", &pb.ChatCompletionRequest{Model: "m",
			Messages: []*pb.ChatMessage{user("weather?"),
				{Role: "assistant", ToolCalls: []*pb.ToolCall{{Id: "c1", Function: &pb.FunctionCall{Name: "get_weather", Arguments: `{"city":"Oslo"}`}}}},
				{Role: "tool", ToolCallId: "c1", Content: text("sunny")}},
			Tools: []*pb.Tool{{Function: &pb.FunctionDefinition{Name: "get_weather", Description: "Weather now.", Strict: proto.Bool(true),
				Parameters: mustStruct(t, map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}, "required": []any{"city"}})}}},
			ToolChoice: &pb.ToolChoice{Choice: &pb.ToolChoice_Function{Function: &pb.NamedFunction{Name: "get_weather"}}}, ParallelToolCalls: proto.Bool(false)}, false,
			`{"model":"m","messages":[{"role":"user","content":"weather?"},` +
				`{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}}]},` +
				`{"role":"tool","content":"sunny","tool_call_id":"c1"}],` +
				`"tools":[{"type":"function","function":{"name":"get_weather","description":"Weather now.",` +
				`"parameters":{"properties":{"city":{"type":"string"}},"required":["city"],"type":"object"},"strict":true}}],` +
				`"tool_choice":{"type":"function","function":{"name":"get_weather"}},"parallel_tool_calls":false}`},
		{"tool choice mode", &pb.ChatCompletionRequest{Model: "m", Messages: []*pb.ChatMessage{user("hi")}, ToolChoice: &pb.ToolChoice{Choice: &pb.ToolChoice_Mode{Mode: "none"}}}, false,
			`{"model":"m","messages":[{"role":"user","content":"hi"}],"tool_choice":"none"}`},
		{"json schema", &pb.ChatCompletionRequest{Model: "m", Messages: []*pb.ChatMessage{user("hi")},
			ResponseFormat: &pb.ResponseFormat{Format: &pb.ResponseFormat_JsonSchema{JsonSchema: &pb.JSONSchema{Name: "s", Strict: proto.Bool(true),
				Schema: mustStruct(t, map[string]any{"type": "object"})}}}}, false,
			`{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_schema","json_schema":{"name":"s","schema":{"type":"object"},"strict":true}}}`},
		{"json object", &pb.ChatCompletionRequest{Model: "m", Messages: []*pb.ChatMessage{user("hi")},
			ResponseFormat: &pb.ResponseFormat{Format: &pb.ResponseFormat_JsonObject{JsonObject: &pb.ResponseFormatJSONObject{}}}}, false,
			`{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"}}`},
		{"stop text", &pb.ChatCompletionRequest{Model: "m", Messages: []*pb.ChatMessage{user("hi")}, Stop: &pb.Stop{Stop: &pb.Stop_Text{Text: "\n"}}}, false,
			`{"model":"m","messages":[{"role":"user","content":"hi"}],"stop":"\n"}`},
		{"stop list", &pb.ChatCompletionRequest{Model: "m", Messages: []*pb.ChatMessage{user("hi")},
			Stop: &pb.Stop{Stop: &pb.Stop_Sequences{Sequences: &pb.StopSequences{Sequences: []string{"a", "b"}}}}}, false,
			`{"model":"m","messages":[{"role":"user","content":"hi"}],"stop":["a","b"]}`},
		{"extra", &pb.ChatCompletionRequest{Model: "m", Messages: []*pb.ChatMessage{user("hi")},
			Extra: mustStruct(t, map[string]any{"top_k": 20, "repetition_penalty": 1.05, "chat_template_kwargs": map[string]any{"enable_thinking": false}, "tags": []any{"x", nil}})}, false,
			`{"model":"m","messages":[{"role":"user","content":"hi"}],"chat_template_kwargs":{"enable_thinking":false},"repetition_penalty":1.05,"tags":["x",null],"top_k":20}`},
		{"escapes", &pb.ChatCompletionRequest{Model: "m", Messages: []*pb.ChatMessage{user("say \"hi\"\t\u2028 ok")}}, false,
			`{"model":"m","messages":[{"role":"user","content":"say \"hi\"\t\u2028 ok"}]}`},
		{"assistant refusal and audio", &pb.ChatCompletionRequest{Model: "m", Messages: []*pb.ChatMessage{user("hi"),
			{Role: "assistant", Name: "bot", Refusal: proto.String("no"), Audio: &pb.MessageAudio{Id: "audio_1"}, Content: text("")}, user("again")}}, false,
			`{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"","name":"bot","refusal":"no","audio":{"id":"audio_1"}},{"role":"user","content":"again"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := appendChat(nil, tt.req, tt.stream)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
			var r request.Request
			if err := request.Parse(request.Chat, got, &r); err != nil {
				t.Errorf("the parser refuses it: %v", err)
			}
			if r.Stream != tt.stream {
				t.Errorf("parsed stream %v, want %v", r.Stream, tt.stream)
			}
		})
	}
}

// TestAppendOther: completions and embeddings requests, every input shape.
func TestAppendOther(t *testing.T) {
	tests := []struct {
		name string
		ep   request.Endpoint
		enc  func() ([]byte, error)
		want string
	}{
		{"completion", request.Completions, func() ([]byte, error) {
			return appendCompletion(nil, &pb.CompletionRequest{Model: "m", Prompt: &pb.Input{Input: &pb.Input_Text{Text: "Once"}},
				MaxTokens: proto.Int64(8), Echo: proto.Bool(true), Logprobs: proto.Int32(2), BestOf: proto.Int32(1), Suffix: proto.String("end"),
				Stop: &pb.Stop{Stop: &pb.Stop_Text{Text: "."}}})
		}, `{"model":"m","prompt":"Once","best_of":1,"echo":true,"logprobs":2,"max_tokens":8,"stop":".","suffix":"end"}`},
		{"completion texts", request.Completions, func() ([]byte, error) {
			return appendCompletion(nil, &pb.CompletionRequest{Model: "m", Prompt: &pb.Input{Input: &pb.Input_Texts{Texts: &pb.Texts{Texts: []string{"a", "b"}}}}})
		}, `{"model":"m","prompt":["a","b"]}`},
		{"completion tokens", request.Completions, func() ([]byte, error) {
			return appendCompletion(nil, &pb.CompletionRequest{Model: "m", Prompt: &pb.Input{Input: &pb.Input_Tokens{Tokens: &pb.Tokens{Tokens: []int32{1, 2, 3}}}}})
		}, `{"model":"m","prompt":[1,2,3]}`},
		{"embedding token lists", request.Embeddings, func() ([]byte, error) {
			return appendEmbedding(nil, &pb.EmbeddingRequest{Model: "m", Input: &pb.Input{Input: &pb.Input_TokenLists{TokenLists: &pb.TokenLists{
				Lists: []*pb.Tokens{{Tokens: []int32{1}}, {Tokens: []int32{2, 3}}}}}}, EncodingFormat: "base64", Dimensions: proto.Int32(64), User: "u"})
		}, `{"model":"m","input":[[1],[2,3]],"encoding_format":"base64","dimensions":64,"user":"u"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.enc()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
			var r request.Request
			if err := request.Parse(tt.ep, got, &r); err != nil {
				t.Errorf("the parser refuses it: %v", err)
			}
		})
	}
}

// TestAppendRefuses: what has no JSON form, or is the call's to decide,
// is refused naming the field.
func TestAppendRefuses(t *testing.T) {
	base := func() *pb.ChatCompletionRequest {
		return &pb.ChatCompletionRequest{Model: "m", Messages: []*pb.ChatMessage{user("hi")}}
	}
	tests := []struct {
		name  string
		edit  func(*pb.ChatCompletionRequest)
		param string
	}{
		{"NaN temperature", func(r *pb.ChatCompletionRequest) { r.Temperature = proto.Float64(math.NaN()) }, "temperature"},
		{"infinite bias", func(r *pb.ChatCompletionRequest) { r.LogitBias = map[string]float64{"7": math.Inf(1)} }, "logit_bias.7"},
		{"stream in extra", func(r *pb.ChatCompletionRequest) { r.Extra = mustStruct(t, map[string]any{"stream": true}) }, "extra.stream"},
		{"NaN in extra", func(r *pb.ChatCompletionRequest) {
			r.Extra = &structpb.Struct{Fields: map[string]*structpb.Value{"a": structpb.NewListValue(&structpb.ListValue{
				Values: []*structpb.Value{structpb.NewNumberValue(1), structpb.NewNumberValue(math.NaN())}})}}
		}, "extra.a[1]"},
		{"empty part", func(r *pb.ChatCompletionRequest) {
			r.Messages = append(r.Messages, &pb.ChatMessage{Role: "user", Content: &pb.ChatMessage_Parts{Parts: &pb.ContentParts{Parts: []*pb.ContentPart{{}}}}})
		}, "messages[1].content[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := base()
			tt.edit(r)
			_, err := appendChat(nil, r, false)
			e, ok := err.(*apierror.Error)
			if !ok || e.Status != 400 || e.Param != tt.param {
				t.Errorf("error %v, want a 400 naming %s", err, tt.param)
			}
		})
	}
}
