package cache

import (
	"container/heap"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/omnigate/omnigate/internal/config"
)

// candidates is how many of the most similar earlier prompts a semantic
// lookup considers: the closest may differ in a number ("12 times 13")
// where the next does not, or be gone from the store.
const candidates = 4

// semanticState is the semantic cache's live state on a Cache: an Index
// per model and embeddings model (vectors of two embeddings models are not
// comparable), each with the expiry of its vectors' entries.
type semanticState struct {
	mu      sync.Mutex
	indexes map[indexName]*semanticIndex
}

type indexName struct{ model, embedder string }

// semanticIndex is one model's Index and when its vectors' entries
// expire, so that the index does not outgrow the stores.
type semanticIndex struct {
	ix *Index

	mu      sync.Mutex
	expiry  expiryHeap
	expires map[Key]time.Time // each key's current expiry; absent: none
}

// index returns the index of model and embedder for vectors of dims
// dimensions: nil when there is none and create is false. An index of
// other dimensions (the embeddings model changed) is replaced when create
// is set, else not used.
func (s *semanticState) index(model, embedder string, dims int, create bool) *semanticIndex {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := indexName{model, embedder}
	si := s.indexes[n]
	if si != nil && si.ix.Dims() == dims {
		return si
	}
	if !create || dims == 0 {
		return nil
	}
	if s.indexes == nil {
		s.indexes = make(map[indexName]*semanticIndex)
	}
	si = &semanticIndex{ix: NewIndex(dims), expires: make(map[Key]time.Time)}
	s.indexes[n] = si
	return si
}

// purge drops the indexes of model ("" every model). A purge of one scope
// leaves them: its keys are dropped as lookups find their entries gone.
func (s *semanticState) purge(model, scope string) {
	if scope != "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for n := range s.indexes {
		if model == "" || n.model == model {
			delete(s.indexes, n)
		}
	}
}

// add indexes v (not kept: copied) for key in scope, its entry expiring
// at expires (zero: never).
func (si *semanticIndex) add(scope, key Key, v []float32, expires, now time.Time) {
	si.sweep(now)
	if !expires.IsZero() && !now.Before(expires) {
		return
	}
	si.ix.Add(scope, key, slices.Clone(v))
	si.mu.Lock()
	defer si.mu.Unlock()
	if expires.IsZero() {
		delete(si.expires, key)
		return
	}
	si.expires[key] = expires
	heap.Push(&si.expiry, expiring{at: expires, scope: scope, key: key})
}

// remove drops key from scope.
func (si *semanticIndex) remove(scope, key Key) {
	si.ix.Remove(scope, key)
	si.mu.Lock()
	delete(si.expires, key)
	si.mu.Unlock()
}

// sweep drops the vectors whose entries have expired by now.
func (si *semanticIndex) sweep(now time.Time) {
	si.mu.Lock()
	var gone []expiring
	for len(si.expiry) > 0 && !now.Before(si.expiry[0].at) {
		x := heap.Pop(&si.expiry).(expiring)
		if at, ok := si.expires[x.key]; ok && at.Equal(x.at) { // not stored again since
			delete(si.expires, x.key)
			gone = append(gone, x)
		}
	}
	si.mu.Unlock()
	for _, x := range gone {
		si.ix.Remove(x.scope, x.key)
	}
}

// expiring is a vector's entry and when it expires.
type expiring struct {
	at         time.Time
	scope, key Key
}

// expiryHeap orders vectors by when their entries expire, soonest first.
type expiryHeap []expiring

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiring)) }
func (h *expiryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Similar is the semantic lookup of a request of model in scope (the
// policy's scope value) whose semantic scope is scopeKey and whose prompt,
// text, embeds to v: the entry of the most similar earlier prompt in
// scopeKey whose similarity reaches p's threshold, whose text agrees with
// this one on its literals (LiteralsAgree) and that the stores still
// have; nil otherwise. sim is the similarity of the entry served, or the
// best one found. A key whose entry is gone is dropped from the index.
func (c *Cache) Similar(ctx context.Context, p *config.Cache, model, scope string, scopeKey Key, text string, v []float32) (e *Entry, sim float32) {
	si := c.semantic.index(model, p.Semantic.Embeddings, len(v), false)
	if si == nil {
		return nil, 0
	}
	si.sweep(c.clock.Now())
	threshold := float32(p.Semantic.Threshold)
	var buf [candidates]Match
	ms := si.ix.SearchK(scopeKey, slices.Clone(v), buf[:0])
	if len(ms) > 0 {
		sim = max(ms[0].Sim, 0)
	}
	for _, m := range ms {
		if m.Sim < threshold {
			break
		}
		e, err := c.lookup(ctx, p, Ref{Model: model, Scope: scope, Key: m.Key})
		switch {
		case err != nil:
			return nil, sim // the store is failing: the key may still be good
		case e == nil:
			si.remove(scopeKey, m.Key)
		case LiteralsAgree(e.Prompt, text):
			return e, m.Sim
		}
	}
	return nil, sim
}

// PutSimilar stores e (whose Vector is its prompt's embedding) under ref
// like Put, and indexes the vector in scopeKey for Similar; with Redis in
// p's stores, the other replicas hear of it (see FollowSemantic).
func (c *Cache) PutSimilar(ctx context.Context, p *config.Cache, ref Ref, scopeKey Key, e *Entry) {
	c.Put(ctx, p, ref, e)
	if len(e.Vector) == 0 {
		return
	}
	if si := c.semantic.index(ref.Model, p.Semantic.Embeddings, len(e.Vector), true); si != nil {
		si.add(scopeKey, ref.Key, e.Vector, e.Expires, c.clock.Now())
	}
	if p.Store != config.StoreMemory && c.redis != nil {
		a := announcement{model: ref.Model, embedder: p.Semantic.Embeddings, scope: scopeHash(ref.Scope), scopeKey: scopeKey, key: ref.Key}
		if err := c.redis.announce(ctx, c.origin, a); err != nil {
			c.failed("xadd", err)
		}
	}
}

// SemanticLen counts the vectors indexed for model and embedder, in every
// scope.
func (c *Cache) SemanticLen(model, embedder string) int {
	c.semantic.mu.Lock()
	si := c.semantic.indexes[indexName{model, embedder}]
	c.semantic.mu.Unlock()
	if si == nil {
		return 0
	}
	return si.ix.Total()
}

// SemanticVectors counts the vectors the semantic indexes hold, of every
// model.
func (c *Cache) SemanticVectors() int {
	c.semantic.mu.Lock()
	defer c.semantic.mu.Unlock()
	n := 0
	for _, si := range c.semantic.indexes {
		n += si.ix.Total()
	}
	return n
}

// EmbedFailed counts an embeddings request of the semantic cache that
// failed or timed out (the request it was for was a plain miss), and logs
// it once a minute at most.
func (c *Cache) EmbedFailed(model string, err error) {
	n := c.embedErrors.Add(1)
	if c.log == nil {
		return
	}
	now := c.clock.Now().UnixNano()
	last := c.embedLoggedAt.Load()
	if now-last < int64(time.Minute) || !c.embedLoggedAt.CompareAndSwap(last, now) {
		return
	}
	c.log.Warn("semantic cache: embeddings failing; requests are plain misses", "embeddings", model, "errors", n, "err", err)
}

// EmbedErrors counts the semantic cache's failed embeddings requests.
func (c *Cache) EmbedErrors() uint64 { return c.embedErrors.Load() }
