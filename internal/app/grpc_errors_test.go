package app

import (
	"context"
	"math"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/sim"
	pb "github.com/omnigate/omnigate/proto/omnigate/v1"
)

// violation is what a status says of a bad request: the ErrorInfo's
// reason and domain, and the BadRequest's field ("" when it has none).
type violation struct {
	code           codes.Code
	reason, domain string
	field          string
}

func violationOf(err error) violation {
	st := status.Convert(err)
	v := violation{code: st.Code()}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			v.reason, v.domain = d.Reason, d.Domain
		case *errdetails.BadRequest:
			if len(d.FieldViolations) > 0 {
				v.field = d.FieldViolations[0].Field
			}
		}
	}
	return v
}

func msgs(ms ...*pb.ChatMessage) []*pb.ChatMessage { return ms }

func say(s string) *pb.ChatMessage {
	return &pb.ChatMessage{Role: "user", Content: &pb.ChatMessage_Text{Text: s}}
}

func withParts(ps ...*pb.ContentPart) *pb.ChatMessage {
	return &pb.ChatMessage{Role: "user", Content: &pb.ChatMessage_Parts{Parts: &pb.ContentParts{Parts: ps}}}
}

func image(url, detail string) *pb.ContentPart {
	return &pb.ContentPart{Part: &pb.ContentPart_ImageUrl{ImageUrl: &pb.ImageURL{Url: url, Detail: detail}}}
}

// TestGRPCBadRequests: every bad request is refused with the code its
// HTTP status maps to, and a BadRequest naming the parameter as the HTTP
// error's param does.
func TestGRPCBadRequests(t *testing.T) {
	et := tapEngine(t, "instant", sim.Faults{})
	cfg := engineConfig(et)
	cfg.Server.MaxBodyBytes = 8 << 10
	cfg.Models = append(cfg.Models, config.Model{Name: "text-only",
		Deployments: []config.Deployment{{Name: "t", Kind: "openai", URL: et.srv.URL + "/v1", UpstreamModel: "upstream/m"}}})
	_, _, client, _ := grpcGateway(t, cfg)
	chat := func(edit func(*pb.ChatCompletionRequest)) func(context.Context) error {
		return func(ctx context.Context) error {
			r := &pb.ChatCompletionRequest{Model: "m", Messages: msgs(say("hi"))}
			edit(r)
			_, err := client.ChatCompletion(ctx, r)
			return err
		}
	}
	stream := func(edit func(*pb.ChatCompletionRequest)) func(context.Context) error {
		return func(ctx context.Context) error {
			r := &pb.ChatCompletionRequest{Model: "m", Messages: msgs(say("hi"))}
			edit(r)
			st, err := client.StreamChatCompletion(ctx, r)
			if err != nil {
				return err
			}
			_, err = recvAll(t, st)
			return err
		}
	}
	completion := func(r *pb.CompletionRequest) func(context.Context) error {
		return func(ctx context.Context) error { _, err := client.Completion(ctx, r); return err }
	}
	embedding := func(r *pb.EmbeddingRequest) func(context.Context) error {
		return func(ctx context.Context) error { _, err := client.Embedding(ctx, r); return err }
	}
	bad := func(field string) violation {
		return violation{code: codes.InvalidArgument, reason: "invalid_request_error", domain: "omnigate", field: field}
	}
	tests := []struct {
		name string
		call func(context.Context) error
		md   []string
		want violation
	}{
		{"no model", chat(func(r *pb.ChatCompletionRequest) { r.Model = "" }), nil, bad("model")},
		{"unknown model", chat(func(r *pb.ChatCompletionRequest) { r.Model = "nope" }), nil,
			violation{codes.NotFound, "model_not_found", "omnigate", "model"}},
		{"no messages", chat(func(r *pb.ChatCompletionRequest) { r.Messages = nil }), nil, bad("messages")},
		{"no role", chat(func(r *pb.ChatCompletionRequest) { r.Messages[0].Role = "" }), nil, bad("messages[0].role")},
		{"unknown role", chat(func(r *pb.ChatCompletionRequest) { r.Messages[0].Role = "robot" }), nil, bad("messages[0].role")},
		{"no content", chat(func(r *pb.ChatCompletionRequest) { r.Messages[0].Content = nil }), nil, bad("messages[0].content")},
		{"no parts", chat(func(r *pb.ChatCompletionRequest) { r.Messages = msgs(withParts()) }), nil, bad("messages[0].content")},
		{"empty part", chat(func(r *pb.ChatCompletionRequest) { r.Messages = msgs(say("a"), withParts(&pb.ContentPart{})) }), nil, bad("messages[1].content[0]")},
		{"image not a URL", chat(func(r *pb.ChatCompletionRequest) { r.Messages = msgs(withParts(image("ftp://x/y.png", ""))) }), nil,
			bad("messages[0].content[0].image_url.url")},
		{"image detail", chat(func(r *pb.ChatCompletionRequest) { r.Messages = msgs(withParts(image("https://x/y.png", "huge"))) }), nil,
			bad("messages[0].content[0].image_url.detail")},
		{"audio not base64", chat(func(r *pb.ChatCompletionRequest) {
			r.Messages = msgs(withParts(&pb.ContentPart{Part: &pb.ContentPart_InputAudio{InputAudio: &pb.InputAudio{Data: "not base64!", Format: "wav"}}}))
		}), nil, bad("messages[0].content[0].input_audio.data")},
		{"audio without format", chat(func(r *pb.ChatCompletionRequest) {
			r.Messages = msgs(withParts(&pb.ContentPart{Part: &pb.ContentPart_InputAudio{InputAudio: &pb.InputAudio{Data: "UklGRg=="}}}))
		}), nil, bad("messages[0].content[0].input_audio.format")},
		{"image to a text model", chat(func(r *pb.ChatCompletionRequest) {
			r.Model, r.Messages = "text-only", msgs(withParts(image("https://x/y.png", "")))
		}), nil, bad("messages[0].content[0]")},
		{"temperature NaN", chat(func(r *pb.ChatCompletionRequest) { r.Temperature = proto.Float64(math.NaN()) }), nil, bad("temperature")},
		{"temperature too high", chat(func(r *pb.ChatCompletionRequest) { r.Temperature = proto.Float64(5) }), nil, bad("temperature")},
		{"top_p too high", chat(func(r *pb.ChatCompletionRequest) { r.TopP = proto.Float64(2) }), nil, bad("top_p")},
		{"max_tokens 0", chat(func(r *pb.ChatCompletionRequest) { r.MaxTokens = proto.Int64(0) }), nil, bad("max_tokens")},
		{"both max tokens", chat(func(r *pb.ChatCompletionRequest) { r.MaxTokens, r.MaxCompletionTokens = proto.Int64(5), proto.Int64(5) }), nil, bad("max_tokens")},
		{"n 0", chat(func(r *pb.ChatCompletionRequest) { r.N = proto.Int32(0) }), nil, bad("n")},
		{"presence penalty", chat(func(r *pb.ChatCompletionRequest) { r.PresencePenalty = proto.Float64(3) }), nil, bad("presence_penalty")},
		{"top_logprobs without logprobs", chat(func(r *pb.ChatCompletionRequest) { r.TopLogprobs = proto.Int32(2) }), nil, bad("top_logprobs")},
		{"top_logprobs too many", chat(func(r *pb.ChatCompletionRequest) { r.Logprobs, r.TopLogprobs = proto.Bool(true), proto.Int32(30) }), nil, bad("top_logprobs")},
		{"five stops", chat(func(r *pb.ChatCompletionRequest) {
			r.Stop = &pb.Stop{Stop: &pb.Stop_Sequences{Sequences: &pb.StopSequences{Sequences: []string{"a", "b", "c", "d", "e"}}}}
		}), nil, bad("stop")},
		{"tool_choice without tools", chat(func(r *pb.ChatCompletionRequest) {
			r.ToolChoice = &pb.ToolChoice{Choice: &pb.ToolChoice_Mode{Mode: "required"}}
		}), nil,
			bad("tool_choice")},
		{"tool_choice mode", chat(func(r *pb.ChatCompletionRequest) {
			r.ToolChoice = &pb.ToolChoice{Choice: &pb.ToolChoice_Mode{Mode: "sometimes"}}
		}), nil,
			bad("tool_choice")},
		{"tool_choice unknown function", chat(func(r *pb.ChatCompletionRequest) {
			r.Tools = []*pb.Tool{{Function: &pb.FunctionDefinition{Name: "f"}}}
			r.ToolChoice = &pb.ToolChoice{Choice: &pb.ToolChoice_Function{Function: &pb.NamedFunction{Name: "g"}}}
		}), nil, bad("tool_choice")},
		{"tool name", chat(func(r *pb.ChatCompletionRequest) {
			r.Tools = []*pb.Tool{{Function: &pb.FunctionDefinition{Name: "no spaces"}}}
		}), nil,
			bad("tools[0].function.name")},
		{"tool without function", chat(func(r *pb.ChatCompletionRequest) { r.Tools = []*pb.Tool{{}} }), nil, bad("tools[0].function")},
		{"tool type", chat(func(r *pb.ChatCompletionRequest) {
			r.Tools = []*pb.Tool{{Type: "web", Function: &pb.FunctionDefinition{Name: "f"}}}
		}), nil,
			bad("tools[0].type")},
		{"schema without name", chat(func(r *pb.ChatCompletionRequest) {
			r.ResponseFormat = &pb.ResponseFormat{Format: &pb.ResponseFormat_JsonSchema{JsonSchema: &pb.JSONSchema{}}}
		}), nil, bad("response_format.json_schema.name")},
		{"modality", chat(func(r *pb.ChatCompletionRequest) { r.Modalities = []string{"smell"} }), nil, bad("modalities[0]")},
		{"audio out without audio", chat(func(r *pb.ChatCompletionRequest) { r.Modalities = []string{"text", "audio"} }), nil, bad("audio")},
		{"audio without voice", chat(func(r *pb.ChatCompletionRequest) { r.Audio = &pb.AudioParams{Format: "wav"} }), nil, bad("audio.voice")},
		{"stream_options, not streaming", chat(func(r *pb.ChatCompletionRequest) { r.StreamOptions = &pb.StreamOptions{IncludeUsage: proto.Bool(true)} }), nil,
			bad("stream_options")},
		{"stream in extra", chat(func(r *pb.ChatCompletionRequest) {
			r.Extra = &structpb.Struct{Fields: map[string]*structpb.Value{"stream": structpb.NewBoolValue(true)}}
		}), nil,
			bad("extra.stream")},
		{"extra repeats a field", chat(func(r *pb.ChatCompletionRequest) {
			r.Temperature = proto.Float64(1)
			r.Extra = &structpb.Struct{Fields: map[string]*structpb.Value{"temperature": structpb.NewNumberValue(1)}}
		}), nil, bad("temperature")},
		{"extra of the wrong type", chat(func(r *pb.ChatCompletionRequest) {
			r.Extra = &structpb.Struct{Fields: map[string]*structpb.Value{"seed": structpb.NewStringValue("x")}}
		}), nil, bad("seed")},
		{"stream bad parameter", stream(func(r *pb.ChatCompletionRequest) { r.N = proto.Int32(0) }), nil, bad("n")},
		{"bad priority", chat(func(*pb.ChatCompletionRequest) {}), []string{"x-omnigate-priority", "urgent"}, bad("x-omnigate-priority")},
		{"body too large", chat(func(r *pb.ChatCompletionRequest) { r.Messages = msgs(say(strings.Repeat(`"`, 5000))) }), nil,
			violation{code: codes.ResourceExhausted, reason: "request_too_large", domain: "omnigate"}},
		{"message too large", chat(func(r *pb.ChatCompletionRequest) { r.Messages = msgs(say(strings.Repeat("x", 9000))) }), nil,
			violation{code: codes.ResourceExhausted}}, // gRPC's own receive limit: no details
		{"completion without prompt", completion(&pb.CompletionRequest{Model: "m"}), nil, bad("prompt")},
		{"completion empty tokens", completion(&pb.CompletionRequest{Model: "m", Prompt: &pb.Input{Input: &pb.Input_Tokens{Tokens: &pb.Tokens{}}}}), nil,
			bad("prompt")},
		{"completion best_of", completion(&pb.CompletionRequest{Model: "m", Prompt: &pb.Input{Input: &pb.Input_Text{Text: "x"}}, BestOf: proto.Int32(0)}), nil,
			bad("best_of")},
		{"embedding without input", embedding(&pb.EmbeddingRequest{Model: "m"}), nil, bad("input")},
		{"embedding format", embedding(&pb.EmbeddingRequest{Model: "m", Input: &pb.Input{Input: &pb.Input_Text{Text: "x"}}, EncodingFormat: "hex"}), nil,
			bad("encoding_format")},
		{"embedding dimensions", embedding(&pb.EmbeddingRequest{Model: "m", Input: &pb.Input{Input: &pb.Input_Text{Text: "x"}}, Dimensions: proto.Int32(0)}), nil,
			bad("dimensions")},
		{"embeddings from a chat model", embedding(&pb.EmbeddingRequest{Model: "text-only", Input: &pb.Input{Input: &pb.Input_Text{Text: "x"}}}), nil,
			bad("model")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.md != nil {
				ctx = metadata.AppendToOutgoingContext(ctx, tt.md...)
			}
			err := tt.call(ctx)
			if got := violationOf(err); got != tt.want {
				t.Errorf("%v\n got %+v\nwant %+v", err, got, tt.want)
			}
		})
	}
	if n := len(et.bodies); n != 0 {
		t.Errorf("the engine was sent %d of these requests: %v", n, et.bodies)
	}
}

// TestGRPCErrorCarriesRequestID: a refused call still says its request id
// in its header metadata, the client's own when it sent a valid one.
func TestGRPCErrorCarriesRequestID(t *testing.T) {
	et := tapEngine(t, "instant", sim.Faults{})
	_, _, client, _ := grpcGateway(t, engineConfig(et))
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-request-id", "client-7")
	var hdr metadata.MD
	_, err := client.ChatCompletion(ctx, &pb.ChatCompletionRequest{Model: "m"}, grpc.Header(&hdr))
	if status.Code(err) != codes.InvalidArgument || len(hdr.Get("x-request-id")) != 1 || hdr.Get("x-request-id")[0] != "client-7" {
		t.Errorf("%v, header %v", err, hdr)
	}
}
