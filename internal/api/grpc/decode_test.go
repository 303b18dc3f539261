package grpcapi

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	pb "github.com/omnigate/omnigate/proto/omnigate/v1"
)

// chatAnswer has every field the messages name, and some they do not.
const chatAnswer = `{"id":"chatcmpl-1","object":"chat.completion","created":1733000000,"model":"qwen3-omni-7b",
"choices":[{"index":0,"message":{"role":"assistant","content":"Red, green\nand \"blue\".","refusal":null,
"reasoning_content":"colours","tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}],
"audio":{"id":"audio_1","data":"UklGRg==","expires_at":1733003600,"transcript":"Red"}},
"logprobs":{"content":[{"token":"Red","logprob":-0.25,"bytes":[82,101,100],"top_logprobs":[{"token":"Red","logprob":-0.25,"bytes":[82,101,100]},{"token":"Blue","logprob":-1.5,"bytes":null}]}],"refusal":null},
"finish_reason":"stop","stop_reason":null}],
"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19,"prompt_tokens_details":{"cached_tokens":4,"audio_tokens":0},
"completion_tokens_details":{"reasoning_tokens":3,"audio_tokens":1,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},
"system_fingerprint":"fp_1","service_tier":"default","prompt_logprobs":null,"kv_transfer_params":{"x":[1,2]}}`

// reference reads data as protojson does (unknown fields dropped): the
// oracle for the shapes it can read.
func reference(t *testing.T, data string, m proto.Message) proto.Message {
	t.Helper()
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal([]byte(data), m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestDecodeChat: every field the message names is read as protojson
// reads it; the rest is skipped.
func TestDecodeChat(t *testing.T) {
	want := reference(t, chatAnswer, new(pb.ChatCompletionResponse))
	got := new(pb.ChatCompletionResponse)
	if err := decodeChat([]byte(chatAnswer), got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("(-protojson +decodeChat):\n%s", diff)
	}
	if got.Choices[0].Message.GetContent() != "Red, green\nand \"blue\"." || got.Choices[0].Message.Refusal != nil {
		t.Errorf("message %v", got.Choices[0].Message)
	}
}

// TestDecodeLenient: nulls, values of another shape and unknown keys
// leave a field unset rather than fail the answer.
func TestDecodeLenient(t *testing.T) {
	tests := []struct {
		name, data string
		want       *pb.ChatCompletionResponse
	}{
		{"nulls", `{"id":null,"created":null,"choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":null},"logprobs":null,"finish_reason":null}],"usage":null}`,
			&pb.ChatCompletionResponse{Choices: []*pb.ChatChoice{{Message: &pb.AssistantMessage{Role: "assistant"}}}}},
		{"other shapes", `{"id":7,"created":"soon","model":["m"],"choices":{"0":1},"usage":"none"}`, &pb.ChatCompletionResponse{}},
		{"float created", `{"created":1.7e9,"choices":[]}`, &pb.ChatCompletionResponse{Created: 1700000000}},
		{"unknown", `{"x":{"y":[{"z":"\u00e9"}]},"object":"chat.completion"}`, &pb.ChatCompletionResponse{Object: "chat.completion"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := new(pb.ChatCompletionResponse)
			if err := decodeChat([]byte(tt.data), got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	for _, bad := range []string{`{"id":"x"`, `[]x`, `{"id":"x"} {}`, ``} {
		if err := decodeChat([]byte(bad), new(pb.ChatCompletionResponse)); err == nil {
			t.Errorf("decodeChat(%q) took it", bad)
		}
	}
}

// TestChunkReader: one reused message reads event after event, each as
// protojson reads it.
func TestChunkReader(t *testing.T) {
	events := []string{
		`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hel\nlo"},"logprobs":null,"finish_reason":null}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t","type":"function","function":{"name":"f","arguments":""}}]}}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"audio":{"id":"a","data":"AAAA","transcript":"x"}}}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`,
	}
	var cr chunkReader
	for i, ev := range events {
		want := reference(t, ev, new(pb.ChatCompletionChunk))
		got, err := cr.read([]byte(ev))
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
			t.Errorf("event %d (-protojson +chunkReader):\n%s", i, diff)
		}
	}
}

// TestDecodeCompletion: a completion with logprobs; an echoed first token
// without one reads NaN.
func TestDecodeCompletion(t *testing.T) {
	const data = `{"id":"cmpl-1","object":"text_completion","created":5,"model":"m","choices":[{"index":0,"text":" upon a time",
"logprobs":{"tokens":["Once"," upon"],"token_logprobs":[null,-0.5],"top_logprobs":[null,{" upon":-0.5,"\u00e9":-2}],"text_offset":[0,4]},
"finish_reason":"length"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`
	got := new(pb.CompletionResponse)
	if err := decodeCompletion([]byte(data), got); err != nil {
		t.Fatal(err)
	}
	want := &pb.CompletionResponse{Id: "cmpl-1", Object: "text_completion", Created: 5, Model: "m",
		Choices: []*pb.CompletionChoice{{Text: " upon a time", FinishReason: "length", Logprobs: &pb.CompletionLogprobs{
			Tokens: []string{"Once", " upon"}, TokenLogprobs: []float64{math.NaN(), -0.5},
			TopLogprobs: []*pb.TokenAlternatives{{}, {Logprobs: map[string]float64{" upon": -0.5, "é": -2}}}, TextOffset: []int32{0, 4}}}},
		Usage: &pb.Usage{PromptTokens: 1, CompletionTokens: 2, TotalTokens: 3}}
	if diff := cmp.Diff(want, got, protocmp.Transform(), cmp.Comparer(func(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) })); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestDecodeEmbedding: floats or base64, as the answer has them.
func TestDecodeEmbedding(t *testing.T) {
	const data = `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,-1,3e-3]},{"object":"embedding","index":1,"embedding":"AAAAPw=="}],
"model":"m","usage":{"prompt_tokens":2,"total_tokens":2}}`
	got := new(pb.EmbeddingResponse)
	if err := decodeEmbedding([]byte(data), got); err != nil {
		t.Fatal(err)
	}
	want := &pb.EmbeddingResponse{Object: "list", Model: "m", Usage: &pb.Usage{PromptTokens: 2, TotalTokens: 2}, Data: []*pb.Embedding{
		{Object: "embedding", Embedding: &pb.Embedding_Floats{Floats: &pb.Vector{Values: []float32{0.5, -1, 3e-3}}}},
		{Object: "embedding", Index: 1, Embedding: &pb.Embedding_Base64{Base64: "AAAAPw=="}}}}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestEventError: an engine's error event becomes the error the client is
// told, its status from a numeric code.
func TestEventError(t *testing.T) {
	tests := []struct {
		name, data string
		status     int
		code, msg  string
	}{
		{"vllm", `{"error":{"message":"CUDA error","type":"InternalServerError","param":null,"code":500}}`, 500, "", "CUDA error"},
		{"openai", `{"error":{"message":"cut","type":"server_error","param":null,"code":"upstream_stream_error"}}`, 502, "upstream_stream_error", "cut"},
		{"bare", `{"error":"boom"}`, 502, "", "The upstream failed mid-stream (HTTP 502 Bad Gateway)."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := eventError([]byte(tt.data), 502)
			if e.Status != tt.status || e.Code != tt.code || e.Message != tt.msg || e.Type == "" {
				t.Errorf("%+v", e)
			}
		})
	}
}
