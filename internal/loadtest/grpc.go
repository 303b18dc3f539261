package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	pb "github.com/omnigate/omnigate/proto/omnigate/v1"
)

// The grpc target is omnigate's gRPC API: a gateway process of its own,
// served the same load as the omnigate target (its HTTP API), its calls
// the messages for the same requests. Its clients share a few HTTP/2
// connections (--grpc-conns, 1 by default), as gRPC clients do, with
// gRPC's default flow control (a window it estimates with pings, which the
// gateway answers) unless --grpc-window sets one.

// grpcClients are the connections to a gateway's gRPC listener, used in
// turn.
type grpcClients struct {
	conns   []*grpc.ClientConn
	clients []pb.OmnigateClient
	next    atomic.Uint64
}

// dialGRPC connects n times to addr, with a static flow control window
// of window bytes when it is not 0.
func dialGRPC(addr string, n, window int) (*grpcClients, error) {
	g := &grpcClients{}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256 << 20))}
	if window > 0 {
		opts = append(opts, grpc.WithInitialWindowSize(int32(min(window, 1<<30))), grpc.WithInitialConnWindowSize(int32(min(4*window, 1<<30))))
	}
	for range max(n, 1) {
		conn, err := grpc.NewClient(addr, opts...)
		if err != nil {
			g.close()
			return nil, fmt.Errorf("gRPC client of %s: %w", addr, err)
		}
		conn.Connect()
		g.conns = append(g.conns, conn)
		g.clients = append(g.clients, pb.NewOmnigateClient(conn))
	}
	return g, nil
}

func (g *grpcClients) client() pb.OmnigateClient {
	return g.clients[int(g.next.Add(1))%len(g.clients)]
}

func (g *grpcClients) close() {
	for _, c := range g.conns {
		c.Close()
	}
}

// grpcRequest is one of the harness's request bodies as the gRPC request
// message (the fields the bodies use).
func grpcRequest(body []byte) (*pb.ChatCompletionRequest, error) {
	var b struct {
		Model       string   `json:"model"`
		Temperature *float64 `json:"temperature"`
		MaxTokens   *int64   `json:"max_tokens"`
		Messages    []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, fmt.Errorf("gRPC request of %s: %w", body, err)
	}
	r := &pb.ChatCompletionRequest{Model: b.Model, Temperature: b.Temperature, MaxTokens: b.MaxTokens}
	for _, m := range b.Messages {
		r.Messages = append(r.Messages, &pb.ChatMessage{Role: m.Role, Content: &pb.ChatMessage_Text{Text: m.Content}})
	}
	return r, nil
}

// doGRPC is do for the grpc target: one call, its latency from due to the
// answer's end, and for streams the time to the first chunk and the
// number of chunks.
func (c *call) doGRPC(ctx context.Context, due time.Time, rec *recorder) {
	rec.sent.Add(1)
	// The phase's context has a deadline, which a gRPC call would send
	// (grpc-timeout) and the gateway then keep: the HTTP calls send none,
	// so neither do these. Cancelling the phase still ends them.
	phase := ctx
	ctx, cancel := context.WithCancel(context.WithoutCancel(phase))
	defer cancel()
	defer context.AfterFunc(phase, cancel)()
	if c.auth != nil {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", c.auth[0])
	}
	client := c.grpc.client()
	if !c.stream {
		a, err := client.ChatCompletion(ctx, c.greq)
		if err != nil {
			rec.fail(err)
			return
		}
		rec.lat.Add(time.Since(due))
		rec.bytes.Add(int64(proto.Size(a)))
		rec.ok.Add(1)
		return
	}
	st, err := client.StreamChatCompletion(ctx, c.greq)
	if err != nil {
		rec.fail(err)
		return
	}
	var chunks, n int64
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if c.opened != nil && chunks > 0 && ctx.Err() != nil {
				break // a held stream released by the harness
			}
			rec.fail(err)
			return
		}
		if chunks == 0 {
			rec.ttfb.Add(time.Since(due))
			if c.opened != nil {
				c.opened()
			}
		}
		chunks++
		n += int64(proto.Size(m))
		rec.chunks.Add(1)
	}
	if chunks == 0 {
		rec.fail(errors.New("stream ended without a chunk"))
		return
	}
	rec.lat.Add(time.Since(due))
	rec.bytes.Add(n)
	rec.ok.Add(1)
}
