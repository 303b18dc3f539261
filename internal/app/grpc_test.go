package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/sim"
	pb "github.com/omnigate/omnigate/proto/omnigate/v1"
)

// httpChat posts body to the gateway's chat endpoint and decodes the
// answer into the gRPC answer message, as the HTTP answer says it: the
// reference the gRPC answer is held to.
func httpChat(t *testing.T, url, body string) *pb.ChatCompletionResponse {
	t.Helper()
	resp, b := post(t, url+"/v1/chat/completions", "application/json", body)
	if resp.StatusCode != 200 {
		t.Fatalf("HTTP %d: %s", resp.StatusCode, b)
	}
	out := new(pb.ChatCompletionResponse)
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, out); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	return out
}

// httpStream posts a streaming body and decodes each event as a chunk.
func httpStream(t *testing.T, url, body string) []*pb.ChatCompletionChunk {
	t.Helper()
	resp, b := post(t, url+"/v1/chat/completions", "application/json", body)
	if resp.StatusCode != 200 {
		t.Fatalf("HTTP %d: %s", resp.StatusCode, b)
	}
	var out []*pb.ChatCompletionChunk
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		d, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || d == "[DONE]" {
			continue
		}
		c := new(pb.ChatCompletionChunk)
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal([]byte(d), c); err != nil {
			t.Fatalf("%v in %s", err, d)
		}
		out = append(out, c)
	}
	return out
}

// recvAll reads a stream to its end.
func recvAll(t *testing.T, st grpc.ServerStreamingClient[pb.ChatCompletionChunk]) ([]*pb.ChatCompletionChunk, error) {
	t.Helper()
	var out []*pb.ChatCompletionChunk
	for {
		c, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, c)
	}
}

// variable are the fields that differ between two answers to one prompt.
var variable = protocmp.IgnoreFields(&pb.ChatCompletionResponse{}, "id", "created")

// TestGRPCChatMatchesHTTP: the same request answered over HTTP and gRPC
// (the simulator answers a prompt the same way each time) gives the same
// answer field by field, and the header metadata says what the HTTP
// headers say.
func TestGRPCChatMatchesHTTP(t *testing.T) {
	et := tapEngine(t, "instant", sim.Faults{})
	_, srv, client, _ := grpcGateway(t, engineConfig(et))
	const body = `{"model":"m-alias","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Name three colours."}],` +
		`"max_tokens":24,"temperature":0.5,"seed":7,"logprobs":true,"top_logprobs":2}`
	want := httpChat(t, srv.URL, body)
	req := &pb.ChatCompletionRequest{Model: "m-alias", Messages: []*pb.ChatMessage{
		{Role: "system", Content: &pb.ChatMessage_Text{Text: "Be brief."}},
		{Role: "user", Content: &pb.ChatMessage_Text{Text: "Name three colours."}}},
		MaxTokens: proto.Int64(24), Temperature: proto.Float64(0.5), Seed: proto.Int64(7), Logprobs: proto.Bool(true), TopLogprobs: proto.Int32(2)}
	var hdr metadata.MD
	got, err := client.ChatCompletion(context.Background(), req, grpc.Header(&hdr))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, protocmp.Transform(), variable); diff != "" {
		t.Errorf("gRPC answer differs from the HTTP one (-http +grpc):\n%s", diff)
	}
	if got.Id == "" || got.Created == 0 || got.Model != "m" || len(got.Choices[0].Logprobs.GetContent()) == 0 {
		t.Errorf("answer lacks what it should have: %v", got)
	}
	if hdr.Get("x-omnigate-model")[0] != "m" || hdr.Get("x-omnigate-deployment")[0] != "up" || len(hdr.Get("x-request-id")) != 1 {
		t.Errorf("header metadata %v", hdr)
	}
	var sent map[string]any
	if err := json.Unmarshal([]byte(et.last()), &sent); err != nil || sent["model"] != "upstream/m" {
		t.Errorf("upstream body %s", et.last())
	}
}

// TestGRPCStreamMatchesHTTP: a streamed answer comes as one message per
// event, the same events as the HTTP stream's, the usage chunk included.
func TestGRPCStreamMatchesHTTP(t *testing.T) {
	et := tapEngine(t, "instant", sim.Faults{})
	_, srv, client, _ := grpcGateway(t, engineConfig(et))
	const body = `{"model":"m","messages":[{"role":"user","content":"Tell me a story."}],"max_tokens":20,"stream":true,"stream_options":{"include_usage":true}}`
	want := httpStream(t, srv.URL, body)
	req := &pb.ChatCompletionRequest{Model: "m", Messages: []*pb.ChatMessage{{Role: "user", Content: &pb.ChatMessage_Text{Text: "Tell me a story."}}},
		MaxTokens: proto.Int64(20), StreamOptions: &pb.StreamOptions{IncludeUsage: proto.Bool(true)}}
	st, err := client.StreamChatCompletion(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := recvAll(t, st)
	if err != nil {
		t.Fatal(err)
	}
	ignore := protocmp.IgnoreFields(&pb.ChatCompletionChunk{}, "id", "created")
	if diff := cmp.Diff(want, got, protocmp.Transform(), ignore); diff != "" {
		t.Errorf("gRPC chunks differ from the HTTP stream's (-http +grpc):\n%s", diff)
	}
	if len(got) < 3 || got[len(got)-1].GetUsage().GetCompletionTokens() == 0 {
		t.Errorf("%d chunks, the last %v: want the text and a usage chunk", len(got), got[len(got)-1])
	}
	if hdr, err := st.Header(); err != nil || hdr.Get("x-omnigate-model")[0] != "m" {
		t.Errorf("header metadata %v, %v", hdr, err)
	}
}

// TestGRPCMultimodalAndExtraReachUpstream: content parts of every kind and
// extra parameters reach the engine as the same bytes an HTTP client's
// JSON for that request does.
func TestGRPCMultimodalAndExtraReachUpstream(t *testing.T) {
	et := tapEngine(t, "instant", sim.Faults{})
	_, srv, client, _ := grpcGateway(t, engineConfig(et))
	const png = "data:image/png;base64,iVBORw0KGgo="
	extra, err := structpb.NewStruct(map[string]any{"top_k": 20, "repetition_penalty": 1.05, "chat_template_kwargs": map[string]any{"enable_thinking": false}})
	if err != nil {
		t.Fatal(err)
	}
	req := &pb.ChatCompletionRequest{Model: "m", MaxTokens: proto.Int64(8), Messages: []*pb.ChatMessage{{Role: "user", Content: &pb.ChatMessage_Parts{Parts: &pb.ContentParts{Parts: []*pb.ContentPart{
		{Part: &pb.ContentPart_Text{Text: "Describe these."}},
		{Part: &pb.ContentPart_ImageUrl{ImageUrl: &pb.ImageURL{Url: png, Detail: "high"}}},
		{Part: &pb.ContentPart_InputAudio{InputAudio: &pb.InputAudio{Data: "UklGRiQAAABXQVZF", Format: "wav"}}},
		{Part: &pb.ContentPart_VideoUrl{VideoUrl: &pb.VideoURL{Url: "https://example.com/clip.mp4"}}},
	}}}}}, Extra: extra}
	if _, err := client.ChatCompletion(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	viaGRPC := et.last()
	const body = `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"Describe these."},` +
		`{"type":"image_url","image_url":{"url":"` + png + `","detail":"high"}},` +
		`{"type":"input_audio","input_audio":{"data":"UklGRiQAAABXQVZF","format":"wav"}},` +
		`{"type":"video_url","video_url":{"url":"https://example.com/clip.mp4"}}]}],` +
		`"max_tokens":8,"chat_template_kwargs":{"enable_thinking":false},"repetition_penalty":1.05,"top_k":20}`
	httpChat(t, srv.URL, body)
	if diff := cmp.Diff(et.last(), viaGRPC); diff != "" {
		t.Errorf("upstream body (-via HTTP +via gRPC):\n%s", diff)
	}
	for _, want := range []string{`"top_k":20`, `"repetition_penalty":1.05`, `"enable_thinking":false`, `"type":"input_audio"`, `"detail":"high"`} {
		if !strings.Contains(viaGRPC, want) {
			t.Errorf("upstream body lacks %s: %s", want, viaGRPC)
		}
	}
}

// TestGRPCCompletionEmbeddingModels: completions, embeddings (floats and
// base64) and the model list answer as their HTTP forms do.
func TestGRPCCompletionEmbeddingModels(t *testing.T) {
	et := tapEngine(t, "instant", sim.Faults{})
	_, srv, client, _ := grpcGateway(t, engineConfig(et))
	ctx := context.Background()
	opts := protojson.UnmarshalOptions{DiscardUnknown: true}

	_, b := post(t, srv.URL+"/v1/completions", "application/json", `{"model":"m","prompt":"Once upon","max_tokens":12,"logprobs":2}`)
	wantC := new(pb.CompletionResponse)
	if err := opts.Unmarshal(b, wantC); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	gotC, err := client.Completion(ctx, &pb.CompletionRequest{Model: "m", Prompt: &pb.Input{Input: &pb.Input_Text{Text: "Once upon"}},
		MaxTokens: proto.Int64(12), Logprobs: proto.Int32(2)})
	if err != nil {
		t.Fatal(err)
	}
	// protojson cannot read top_logprobs ([{token: logprob}], a list of
	// maps): encoding/json reads those.
	if diff := cmp.Diff(wantC, gotC, protocmp.Transform(), protocmp.IgnoreFields(&pb.CompletionResponse{}, "id", "created"),
		protocmp.IgnoreFields(&pb.CompletionLogprobs{}, "top_logprobs")); diff != "" {
		t.Errorf("completion (-http +grpc):\n%s", diff)
	}
	var top struct {
		Choices []struct {
			Logprobs struct {
				Top []map[string]float64 `json:"top_logprobs"`
			} `json:"logprobs"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	var gotTop []map[string]float64
	for _, alt := range gotC.Choices[0].Logprobs.GetTopLogprobs() {
		gotTop = append(gotTop, alt.Logprobs)
	}
	if diff := cmp.Diff(top.Choices[0].Logprobs.Top, gotTop); diff != "" || len(gotTop) == 0 {
		t.Errorf("completion top_logprobs (-http +grpc):\n%s", diff)
	}
	if gotC.Choices[0].Text == "" || len(gotC.Choices[0].Logprobs.GetTokens()) == 0 {
		t.Errorf("completion %v", gotC)
	}

	_, b = post(t, srv.URL+"/v1/embeddings", "application/json", `{"model":"m","input":["a cat","a dog"]}`)
	var wantE struct {
		Data []struct {
			Index     int32     `json:"index"`
			Embedding []float32 `json:"embedding"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &wantE); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	gotE, err := client.Embedding(ctx, &pb.EmbeddingRequest{Model: "m", Input: &pb.Input{Input: &pb.Input_Texts{Texts: &pb.Texts{Texts: []string{"a cat", "a dog"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(gotE.Data) != 2 || len(wantE.Data) != 2 {
		t.Fatalf("embeddings: %d over gRPC, %d over HTTP", len(gotE.Data), len(wantE.Data))
	}
	for i, d := range gotE.Data {
		if diff := cmp.Diff(wantE.Data[i].Embedding, d.GetFloats().GetValues()); diff != "" || d.Index != wantE.Data[i].Index {
			t.Errorf("embedding %d (-http +grpc):\n%s", i, diff)
		}
	}
	gotB, err := client.Embedding(ctx, &pb.EmbeddingRequest{Model: "m", EncodingFormat: "base64", Input: &pb.Input{Input: &pb.Input_Text{Text: "a cat"}}})
	if err != nil || gotB.Data[0].GetBase64() == "" {
		t.Errorf("base64 embedding: %v, %v", gotB, err)
	}

	_, b = get(t, srv.URL+"/v1/models")
	wantM := new(pb.ModelList)
	if err := opts.Unmarshal(b, wantM); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	gotM, err := client.ListModels(ctx, &pb.ListModelsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantM, gotM, protocmp.Transform(), protocmp.IgnoreFields(&pb.Model{}, "created")); diff != "" {
		t.Errorf("models (-http +grpc):\n%s", diff)
	}
}

// TestGRPCMetadataIsHeaders: request metadata reaches the core as the
// HTTP headers do: Cache-Control on a cached model (no-cache asks the
// engine again, with no-store too the cache is bypassed), and the
// answer's metadata says what the cache did.
func TestGRPCMetadataIsHeaders(t *testing.T) {
	et := tapEngine(t, "instant", sim.Faults{})
	cfg := engineConfig(et)
	cfg.Models[0].Cache = config.Cache{Mode: config.CacheExact}
	_, _, client, _ := grpcGateway(t, cfg)
	req := &pb.ChatCompletionRequest{Model: "m", Temperature: proto.Float64(0), MaxTokens: proto.Int64(8), Messages: []*pb.ChatMessage{say("cache me")}}
	caches := func(md ...string) string {
		t.Helper()
		var hdr metadata.MD
		ctx := metadata.AppendToOutgoingContext(context.Background(), md...)
		if _, err := client.ChatCompletion(ctx, req, grpc.Header(&hdr)); err != nil {
			t.Fatal(err)
		}
		return strings.Join(hdr.Get("x-omnigate-cache"), ",")
	}
	got := []string{caches(), caches(), caches("cache-control", "no-cache"), caches("cache-control", "no-cache, no-store")}
	if diff := cmp.Diff([]string{"miss", "hit", "miss", "bypass"}, got); diff != "" {
		t.Errorf("x-omnigate-cache (-want +got):\n%s", diff)
	}
}
