package loadtest

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	pb "github.com/omnigate/omnigate/proto/omnigate/v1"
)

// TestGRPCRequest: the grpc target's calls are the messages of the bodies
// the HTTP targets send.
func TestGRPCRequest(t *testing.T) {
	tests := []struct {
		body []byte
		want *pb.ChatCompletionRequest
	}{
		{bodySmall, &pb.ChatCompletionRequest{Model: "bench-model", MaxTokens: proto.Int64(16),
			Messages: []*pb.ChatMessage{{Role: "user", Content: &pb.ChatMessage_Text{Text: "Say hello."}}}}},
		{bodyCached, &pb.ChatCompletionRequest{Model: "bench-cached", MaxTokens: proto.Int64(16), Temperature: proto.Float64(0),
			Messages: []*pb.ChatMessage{{Role: "user", Content: &pb.ChatMessage_Text{Text: "Say hello."}}}}},
	}
	for _, tt := range tests {
		got, err := grpcRequest(tt.body)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.body, diff)
		}
	}
	if _, err := grpcRequest([]byte("{")); err == nil {
		t.Error("a broken body converted")
	}
}

// TestCompareGRPC: the grpc target is set against direct, the proxy and
// omnigate's HTTP API, and its goal is its CPU per request against HTTP's.
func TestCompareGRPC(t *testing.T) {
	ps := []PhaseResult{
		phaseOf("direct", "closed", 20000, 100, 500, 10, 10<<20),
		phaseOf("proxy", "closed", 8000, 100, 500, 60, 20<<20),
		phaseOf("omnigate", "closed", 16000, 100, 500, 30, 30<<20),
		phaseOf("grpc", "closed", 12000, 100, 500, 36, 30<<20),
	}
	var got *Comparison
	for _, c := range compare(ps) {
		if c.Target == "grpc" {
			got = &c
		}
	}
	want := &Comparison{Kind: "closed", Target: "grpc", RPSvsDirect: 0.6, RPSvsProxy: 1.5, CPUvsProxy: 0.6, PeakRSSvsDirect: 3, RPSvsHTTP: 0.75, CPUvsHTTP: 1.2, PeakRSSvsHTTP: 1}
	if d := cmp.Diff(want, got, cmpopts.EquateApprox(0, 1e-9)); d != "" {
		t.Errorf("compare (-want +got):\n%s", d)
	}
	r := &Result{Modes: []ModeResult{{Mode: "small", Phases: ps}}}
	var goal *Goal
	for _, g := range evaluateGoals(r, Options{Targets: []string{"omnigate", "grpc"}}) {
		if strings.HasPrefix(g.Name, "gRPC CPU per request vs HTTP (small)") {
			goal = &g
		}
	}
	if goal == nil || goal.Met == nil || *goal.Met || goal.Measured < 1.19 || goal.Measured > 1.21 {
		t.Errorf("goal %+v: want 1.2×, missed", goal)
	}
}
