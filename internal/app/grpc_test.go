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
