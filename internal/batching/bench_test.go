package batching

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"github.com/omnigate/omnigate/internal/backend"
	"github.com/omnigate/omnigate/internal/config"
)

// BenchmarkEmbeddings64 sends 64 concurrent single-input embeddings
// requests per op to the simulator over HTTP, direct and batched.
//
//	go test -run XXX -bench Embeddings64 -benchtime 200x -count 3 ./internal/batching
//
// On 2 shared cores: direct 5.3-5.9 ms/op, 1 call/req; batched 4.6-6.0
// ms/op, 0.016 calls/req (one call per 64 requests). The instant profile
// costs nothing per input, so only the call count shows the gain here.
func BenchmarkEmbeddings64(b *testing.B) {
	const clients = 64
	bodies := make([][]byte, clients)
	for i := range bodies {
		bodies[i] = []byte(`{"model":"emb","input":"the quick brown fox ` + strconv.Itoa(i) + `"}`)
	}
	for _, bb := range []struct {
		name string
		wrap func(backend.Backend) backend.Backend
	}{
		{"direct", func(be backend.Backend) backend.Backend { return be }},
		{"batched", func(be backend.Backend) backend.Backend {
			return Wrap(be, config.Batching{Enabled: true, Window: config.Duration(config.DefaultBatchWindow), MaxInputs: 64})
		}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			u := newUpstream(b, "instant")
			be := bb.wrap(u.be)
			b.ReportAllocs()
			for b.Loop() {
				var wg sync.WaitGroup
				for i := range clients {
					wg.Go(func() {
						r := &backend.Request{Endpoint: "embeddings", Body: bodies[i], PublicModel: "emb"}
						resp, err := be.Do(context.Background(), r)
						if err != nil {
							b.Error(err)
							return
						}
						resp.Body.Close()
					})
				}
				wg.Wait()
			}
			b.ReportMetric(float64(u.calls.Load())/float64(b.N*clients), "calls/req")
		})
	}
}
