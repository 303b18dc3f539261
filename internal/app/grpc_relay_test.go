package app

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/sim"
	pb "github.com/omnigate/omnigate/proto/omnigate/v1"
)

// requests is omnigate_requests_total summed over the series with code.
func requests(t *testing.T, gw *Gateway, code string) float64 {
	t.Helper()
	return counter(t, gw, "omnigate_requests_total", map[string]string{"code": code})
}

// counter is the counter name summed over its series whose labels
// include match.
func counter(t *testing.T, gw *Gateway, name string, match map[string]string) float64 {
	t.Helper()
	mfs, err := gw.metrics.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			n := 0
			for _, l := range m.GetLabel() {
				if v, ok := match[l.GetName()]; ok && v == l.GetValue() {
					n++
				}
			}
			if n == len(match) {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// eventually polls cond until it holds, failing after 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("still waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func chatReq(content string, maxTokens int64) *pb.ChatCompletionRequest {
	return &pb.ChatCompletionRequest{Model: "m", Messages: []*pb.ChatMessage{say(content)}, MaxTokens: proto.Int64(maxTokens)}
}

// TestGRPCDeadline: a call's deadline is the request's: past it the call
// is DeadlineExceeded, the upstream request is cancelled (the engine
// serves nothing), and it is recorded as a deadline (504), as the HTTP
// front end records an X-Request-Timeout.
func TestGRPCDeadline(t *testing.T) {
	et := tapEngine(t, "instant", sim.Faults{HangRate: 1})
	gw, _, client, _ := grpcGateway(t, engineConfig(et))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := client.ChatCompletion(ctx, chatReq("hi", 8))
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("unary: %v, want DeadlineExceeded", err)
	}
	et.waitIdle(t)
	eventually(t, "the call recorded as 504", func() bool { return requests(t, gw, "504") == 1 })

	slow := tapEngine(t, "instant", sim.Faults{Slow: 20 * time.Millisecond})
	gw, _, client, _ = grpcGateway(t, engineConfig(slow))
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	st, err := client.StreamChatCompletion(ctx, chatReq("hi", 5000))
	if err != nil {
		t.Fatal(err)
	}
	got, err := recvAll(t, st)
	if status.Code(err) != codes.DeadlineExceeded || len(got) == 0 {
		t.Fatalf("stream: %d chunks, %v; want some, then DeadlineExceeded", len(got), err)
	}
	slow.waitIdle(t)
	eventually(t, "the stream recorded as 504", func() bool { return requests(t, gw, "504") == 1 })
}

// TestGRPCCancelStream: a client that cancels its stream half way cancels
// the upstream request, recorded as the client's leaving (499).
func TestGRPCCancelStream(t *testing.T) {
	et := tapEngine(t, "instant", sim.Faults{Slow: 10 * time.Millisecond})
	gw, _, client, _ := grpcGateway(t, engineConfig(et))
	ctx, cancel := context.WithCancel(context.Background())
	st, err := client.StreamChatCompletion(ctx, chatReq("hi", 5000))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := st.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	if et.inflight.Load() != 1 {
		t.Fatalf("the engine serves %d requests, want the stream's", et.inflight.Load())
	}
	cancel()
	if _, err := recvAll(t, st); status.Code(err) != codes.Canceled {
		t.Errorf("after cancel: %v", err)
	}
	et.waitIdle(t)
	eventually(t, "the stream recorded as 499", func() bool { return requests(t, gw, "499") == 1 })
}

// TestGRPCStreamCut: a stream its upstream cuts, with nowhere to continue
// it, ends with the status the HTTP stream's error event carries (502
// upstream_stream_error: Unavailable) after the chunks that came.
func TestGRPCStreamCut(t *testing.T) {
	et := tapEngine(t, "instant", sim.Faults{CutAfter: 3})
	gw, _, client, _ := grpcGateway(t, engineConfig(et))
	st, err := client.StreamChatCompletion(context.Background(), chatReq("hi", 50))
	if err != nil {
		t.Fatal(err)
	}
	got, err := recvAll(t, st)
	if v := violationOf(err); v.code != codes.Unavailable || v.reason != "upstream_stream_error" || len(got) != 3 {
		t.Errorf("%d chunks, then %v (%+v); want 3, then Unavailable upstream_stream_error", len(got), err, v)
	}
	eventually(t, "the stream recorded as 502", func() bool { return requests(t, gw, "502") == 1 })
}

// TestGRPCStreamContinued: a stream cut by one replica is continued on
// another, and the client reads the text an uncut stream has.
func TestGRPCStreamContinued(t *testing.T) {
	whole := simServer(t, sim.Faults{})
	cutter := simServer(t, sim.Faults{CutAfter: 4})
	_, _, client, _ := grpcGateway(t, &config.Config{Models: []config.Model{{Name: "m", Deployments: []config.Deployment{
		{Name: "cutter", URL: cutter.URL + "/v1", Dialect: "vllm", Weight: 1000},
		{Name: "whole", URL: whole.URL + "/v1", Dialect: "vllm", Weight: 1}}}}})
	const body = `{"model":"m","stream":true,"max_tokens":40,"messages":[{"role":"user","content":"Tell me about gateways"}]}`
	uncut := readStream(t, mustPost(t, whole.URL+"/v1/chat/completions", body))
	st, err := client.StreamChatCompletion(context.Background(), chatReq("Tell me about gateways", 40))
	if err != nil {
		t.Fatal(err)
	}
	got, err := recvAll(t, st)
	if err != nil {
		t.Fatal(err)
	}
	text, finish := "", ""
	for _, c := range got {
		for _, ch := range c.Choices {
			text += ch.Delta.GetContent()
			if ch.FinishReason != "" {
				finish = ch.FinishReason
			}
		}
	}
	if text != uncut.text || finish != uncut.finish {
		t.Errorf("continued stream %q (%s), uncut %q (%s)", text, finish, uncut.text, uncut.finish)
	}
}

// TestGRPCErrorEventMidStream: an engine's error event after some chunks
// ends the stream with the event's error (its code 500: Internal), held
// back or passed on.
func TestGRPCErrorEventMidStream(t *testing.T) {
	const chunk = `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"%s"},"finish_reason":null}]}` + "\n\n"
	dying := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, fmt.Sprintf(chunk, "Hel")+fmt.Sprintf(chunk, "lo"))
		w.(http.Flusher).Flush()
		io.WriteString(w, `data: {"error":{"message":"EngineCore encountered an issue.","type":"InternalServerError","param":null,"code":500}}`+"\n\ndata: [DONE]\n\n")
	}))
	t.Cleanup(dying.Close)
	for _, dialect := range []string{"vllm", "openai"} { // held back for a continuation; passed on
		t.Run(dialect, func(t *testing.T) {
			off := false
			_, _, client, _ := grpcGateway(t, &config.Config{Models: []config.Model{{Name: "m", Deployments: []config.Deployment{
				{Name: "dying", URL: dying.URL + "/v1", Dialect: dialect, Continuation: &off}}}}})
			st, err := client.StreamChatCompletion(context.Background(), chatReq("hi", 50))
			if err != nil {
				t.Fatal(err)
			}
			got, err := recvAll(t, st)
			if status.Code(err) != codes.Internal || !strings.Contains(status.Convert(err).Message(), "EngineCore") || len(got) != 2 {
				t.Errorf("%d chunks, then %v; want 2, then Internal with the engine's message", len(got), err)
			}
		})
	}
}

// grpcCalls is omnigate_grpc_calls_total's series for method and code.
func grpcCalls(t *testing.T, gw *Gateway, method, code string) float64 {
	t.Helper()
	return counter(t, gw, "omnigate_grpc_calls_total", map[string]string{"method": method, "code": code})
}

// TestGRPCCallsMetric: gRPC calls are counted by method and status code,
// beside the request metrics HTTP and gRPC share.
func TestGRPCCallsMetric(t *testing.T) {
	gw, _, client, _ := grpcGateway(t, engineConfig(tapEngine(t, "instant", sim.Faults{})))
	if _, err := client.ChatCompletion(context.Background(), chatReq("hi", 8)); err != nil {
		t.Fatal(err)
	}
	bad := chatReq("hi", 8)
	bad.Temperature = proto.Float64(5)
	if _, err := client.ChatCompletion(context.Background(), bad); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("temperature 5: %v, want InvalidArgument", err)
	}
	const chat = "omnigate.v1.Omnigate/ChatCompletion"
	eventually(t, "one OK and one InvalidArgument call counted", func() bool {
		return grpcCalls(t, gw, chat, "OK") == 1 && grpcCalls(t, gw, chat, "InvalidArgument") == 1
	})
	if n := grpcCalls(t, gw, chat, "Unavailable"); n != 0 {
		t.Errorf("Unavailable calls: %v, want 0", n)
	}
}
