package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/cache"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/jsonscan"
	"github.com/omnigate/omnigate/internal/request"
)

// CacheSemanticHit: served the kept answer of an earlier prompt whose
// embedding is close enough (X-Omnigate-Cache-Similarity says how close),
// all else in the request being equal.
const CacheSemanticHit = "semantic-hit"

// maxEmbeddingAnswer bounds the embeddings answer a lookup reads.
const maxEmbeddingAnswer = 4 << 20

// semanticFill is what keeping a semantic miss's answer adds to the exact
// fill: the prompt's semantic scope, embedding and text, to index it by.
type semanticFill struct {
	scope  cache.Key
	vector []float32
	text   string
}

// similar is the semantic lookup of a chat request that missed the exact
// cache (ref) of a model in mode semantic: its last user turn is embedded
// by the model semantic.embeddings names, through this core, and the
// answer of the most similar earlier prompt in the same semantic scope is
// served when it is close enough (search false: the client said no-cache,
// so only the embedding is kept, for the answer to be indexed). Otherwise
// it returns what keeping the answer needs; nil when the request is not
// semantically cacheable or the embedding failed (a plain miss, counted).
func (c *Core) similar(ctx context.Context, call *Call, m *Model, cch *cache.Cache, ref cache.Ref, search, usage bool) (*Answer, *semanticFill) {
	p := &m.Cache
	if p.Mode != config.CacheSemantic || call.Req.Endpoint != request.Chat {
		return nil, nil
	}
	scope, text, ok := cache.SemanticKey(m.Name, ref.Scope, call.Body)
	if !ok {
		return nil, nil
	}
	v, err := c.embed(ctx, call, p.Semantic, text)
	if err != nil {
		if ctx.Err() == nil { // a client that left is no failure of the embeddings
			cch.EmbedFailed(p.Semantic.Embeddings, err)
		}
		return nil, nil
	}
	fill := &semanticFill{scope: scope, vector: v, text: text}
	if !search {
		return nil, fill
	}
	e, sim := cch.Similar(ctx, p, m.Name, ref.Scope, scope, text, v)
	if e == nil {
		return nil, fill
	}
	a := c.cachedAnswer(call, m, e.Answer, usage)
	a.Cache, a.Similarity = CacheSemanticHit, sim
	call.st.cache = CacheSemanticHit
	return a, nil
}

// embed returns the embedding of text by the model s.Embeddings names: an
// embeddings request sent through the core like any other (routed,
// balanced, retried, counted and logged as that model's), within
// s.Timeout.
func (c *Core) embed(ctx context.Context, call *Call, s config.SemanticCache, text string) ([]float32, error) {
	body := append([]byte(`{"model":`), jsonscan.AppendString(nil, s.Embeddings)...)
	body = append(body, `,"input":`...)
	body = jsonscan.AppendString(body, text)
	body = append(body, '}')
	req := c.views.Get().(*request.Request)
	defer c.views.Put(req)
	if err := request.Parse(request.Embeddings, body, req); err != nil {
		return nil, err
	}
	if t := s.Timeout.D(); t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	ec := &Call{Req: req, Body: body, RequestID: call.RequestID}
	a, err := c.Do(ctx, ec)
	if err != nil {
		c.Done(ec, nil, apierror.From(err).Status, nil)
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(a.Resp.Body, maxEmbeddingAnswer))
	a.Resp.Body.Close()
	if err == nil {
		a.Tap().Write(b)
	}
	c.Done(ec, a, http.StatusOK, err)
	if err != nil {
		return nil, err
	}
	return embedding(b)
}

// embedding reads data[0].embedding of an OpenAI embeddings answer.
func embedding(b []byte) ([]float32, error) {
	var doc struct {
		Data []struct {
			Embedding []float32 `json:"embedding"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	if len(doc.Data) == 0 || len(doc.Data[0].Embedding) == 0 {
		return nil, errNoEmbedding
	}
	return doc.Data[0].Embedding, nil
}

var errNoEmbedding = errors.New("the embeddings answer holds no embedding")

// put stores the answer's entry e: indexed by its prompt's embedding too
// when the request was a semantic miss.
func (f *cacheFill) put(ctx context.Context, e *cache.Entry) {
	if f.sem == nil {
		f.cache.Put(ctx, f.policy, f.ref, e)
		return
	}
	e.Vector, e.Prompt = f.sem.vector, f.sem.text
	f.cache.PutSimilar(ctx, f.policy, f.ref, f.sem.scope, e)
}
