package grpcapi

import (
	"encoding/json"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/omnigate/omnigate/internal/grpcserver"
	pb "github.com/omnigate/omnigate/proto/omnigate/v1"
)

// The conversions on the gRPC path, three ways: protojson, encoding/json
// (into structs mirroring the JSON, then copied into the message) and the
// hand-written reader and writer this package uses. The figures are in
// docs/grpc.md.

// benchChat is a short chat answer, as an engine sends it.
const benchChat = `{"id":"chatcmpl-1","object":"chat.completion","created":1733000000,"model":"qwen3-omni-7b","choices":[{"index":0,` +
	`"message":{"role":"assistant","content":"Hello there, how can I help you today?","refusal":null,"tool_calls":[]},"logprobs":null,` +
	`"finish_reason":"stop","stop_reason":null}],"usage":{"prompt_tokens":9,"completion_tokens":10,"total_tokens":19},"prompt_logprobs":null}`

// benchChunk is one event of a stream.
const benchChunk = `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1733000000,"model":"qwen3-omni-7b","choices":[{"index":0,` +
	`"delta":{"content":" there"},"logprobs":null,"finish_reason":null}]}`

// mirror types for encoding/json.
type (
	jsonChat struct {
		ID                string       `json:"id"`
		Object            string       `json:"object"`
		Created           int64        `json:"created"`
		Model             string       `json:"model"`
		Choices           []jsonChoice `json:"choices"`
		Usage             *jsonUsage   `json:"usage"`
		SystemFingerprint string       `json:"system_fingerprint"`
	}
	jsonChoice struct {
		Index        int32    `json:"index"`
		Message      *jsonMsg `json:"message"`
		Delta        *jsonMsg `json:"delta"`
		FinishReason *string  `json:"finish_reason"`
	}
	jsonMsg struct {
		Role      string     `json:"role"`
		Content   *string    `json:"content"`
		Refusal   *string    `json:"refusal"`
		ToolCalls []jsonCall `json:"tool_calls"`
	}
	jsonCall struct {
		Index    *int32 `json:"index"`
		ID       string `json:"id"`
		Type     string `json:"type"`
		Function struct {
			Name      string `json:"name"`
			Arguments string `json:"arguments"`
		} `json:"function"`
	}
	jsonUsage struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
		TotalTokens      int64 `json:"total_tokens"`
	}
)

func (m *jsonMsg) proto() *pb.AssistantMessage {
	if m == nil {
		return nil
	}
	out := &pb.AssistantMessage{Role: m.Role, Content: m.Content, Refusal: m.Refusal}
	for _, c := range m.ToolCalls {
		out.ToolCalls = append(out.ToolCalls, &pb.ToolCall{Index: c.Index, Id: c.ID, Type: c.Type,
			Function: &pb.FunctionCall{Name: c.Function.Name, Arguments: c.Function.Arguments}})
	}
	return out
}

func (u *jsonUsage) proto() *pb.Usage {
	if u == nil {
		return nil
	}
	return &pb.Usage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.TotalTokens}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func BenchmarkDecodeChat(b *testing.B) {
	data := []byte(benchChat)
	b.Run("protojson", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var out pb.ChatCompletionResponse
			if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var j jsonChat
			if err := json.Unmarshal(data, &j); err != nil {
				b.Fatal(err)
			}
			out := &pb.ChatCompletionResponse{Id: j.ID, Object: j.Object, Created: j.Created, Model: j.Model, Usage: j.Usage.proto(), SystemFingerprint: j.SystemFingerprint}
			for _, c := range j.Choices {
				out.Choices = append(out.Choices, &pb.ChatChoice{Index: c.Index, Message: c.Message.proto(), FinishReason: deref(c.FinishReason)})
			}
		}
	})
	b.Run("hand_written", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var out pb.ChatCompletionResponse
			if err := decodeChat(data, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDecodeChunk(b *testing.B) {
	data := []byte(benchChunk)
	b.Run("protojson", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var out pb.ChatCompletionChunk
			if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var j jsonChat
			if err := json.Unmarshal(data, &j); err != nil {
				b.Fatal(err)
			}
			out := &pb.ChatCompletionChunk{Id: j.ID, Object: j.Object, Created: j.Created, Model: j.Model, Usage: j.Usage.proto()}
			for _, c := range j.Choices {
				out.Choices = append(out.Choices, &pb.ChunkChoice{Index: c.Index, Delta: c.Delta.proto(), FinishReason: deref(c.FinishReason)})
			}
		}
	})
	b.Run("hand_written", func(b *testing.B) {
		b.ReportAllocs()
		var cr chunkReader // one per stream
		for b.Loop() {
			if _, err := cr.read(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkChunkToWire is what a stream event costs from its JSON to the
// bytes gRPC sends: read into the message and marshalled (what the codec
// would do with it), or written as wire format and copied (what
// the server does with it, grpcserver.Encoded).
func BenchmarkChunkToWire(b *testing.B) {
	data := []byte(benchChunk)
	b.Run("read_and_marshal", func(b *testing.B) {
		b.ReportAllocs()
		var cr chunkReader
		for b.Loop() {
			c, err := cr.read(data)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := proto.Marshal(c); err != nil {
				b.Fatal(err)
			}
		}
	})
	// wire: the events of one stream, which start alike (the head's wire
	// reused); wire_first: each as a stream's first.
	for _, first := range []bool{false, true} {
		name := "wire"
		if first {
			name = "wire_first"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var cw chunkWriter
			for b.Loop() {
				if first {
					cw.head = cw.head[:0]
				}
				w, err := cw.write(data)
				if err != nil {
					b.Fatal(err)
				}
				_ = append([]byte(nil), w...) // the copy the server makes of a message this small
			}
		})
	}
}

// BenchmarkChatToWire is BenchmarkChunkToWire for a whole chat answer.
func BenchmarkChatToWire(b *testing.B) {
	data := []byte(benchChat)
	b.Run("read_and_marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var out pb.ChatCompletionResponse
			if err := decodeChat(data, &out); err != nil {
				b.Fatal(err)
			}
			if _, err := proto.Marshal(&out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("wire", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := writeChat(make([]byte, 0, len(data)), data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchRequest is the chat request of the load harness's small mode.
var benchRequest = &pb.ChatCompletionRequest{Model: "bench-model", Messages: []*pb.ChatMessage{
	{Role: "system", Content: &pb.ChatMessage_Text{Text: "You are a helpful assistant."}},
	{Role: "user", Content: &pb.ChatMessage_Text{Text: "Say hello."}}},
	MaxTokens: proto.Int64(64), Temperature: proto.Float64(0.7)}

type jsonRequest struct {
	Model       string         `json:"model"`
	Messages    []jsonReqMsg   `json:"messages"`
	MaxTokens   *int64         `json:"max_tokens,omitempty"`
	Temperature *float64       `json:"temperature,omitempty"`
	TopP        *float64       `json:"top_p,omitempty"`
	Stream      bool           `json:"stream,omitempty"`
	Extra       map[string]any `json:"-"`
}

type jsonReqMsg struct {
	Role    string `json:"role"`
	Content any    `json:"content,omitempty"`
}

func BenchmarkEncodeChat(b *testing.B) {
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r := benchRequest
			j := jsonRequest{Model: r.Model, MaxTokens: r.MaxTokens, Temperature: r.Temperature, TopP: r.TopP}
			for _, m := range r.Messages {
				j.Messages = append(j.Messages, jsonReqMsg{Role: m.Role, Content: m.GetText()})
			}
			if _, err := json.Marshal(&j); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hand_written", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 4096) // pooled on the request path
		for b.Loop() {
			var err error
			if buf, err = appendChat(buf[:0], benchRequest, false); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// discard is a Holder that keeps nothing.
type discard struct{ grpc.ServerStream }

func (discard) Hold(grpcserver.Encoded) error { return nil }
func (discard) Flush() error                  { return nil }
func (discard) Send(*pb.ChatCompletionChunk) error {
	return nil
}

// BenchmarkChunkSinkStream: a stream of 20 events, read from the engine
// in one piece, through a new sink as each call makes one: the SSE
// parsing and the writing into wire format, per stream.
func BenchmarkChunkSinkStream(b *testing.B) {
	var body []byte
	for range 20 {
		body = append(append(append(body, "data: "...), benchChunk...), "\n\n"...)
	}
	body = append(body, "data: [DONE]\n\n"...)
	b.ReportAllocs()
	for b.Loop() {
		k := newChunkSink(discard{})
		if _, err := k.Write(body); err != nil {
			b.Fatal(err)
		}
		k.Flush()
		k.finish()
		k.free()
	}
}
