package cache

import (
	"container/list"
	"context"
	"sync"
	"time"

	"github.com/omnigate/omnigate/internal/clock"
)

// Entry is one cached answer: the complete, successful answer as a
// non-streaming JSON object (a streamed one is assembled into that form;
// either replays as both), and what it belongs to.
type Entry struct {
	Model string // public model
	Scope string
	// Answer is the chat.completion (or text_completion) JSON object.
	Answer []byte
	// FinishReason is the first choice's, recorded for the access log and
	// the purge tools.
	FinishReason string
	Stored       time.Time
	Expires      time.Time
	// Vector is the prompt's embedding, for the semantic cache; nil in
	// the exact cache.
	Vector []float32
	// Prompt is the text Vector embeds (the last user turn), for the
	// semantic cache's literal check; "" in the exact cache.
	Prompt string
}

// size is what an entry costs the memory store's byte bound.
func (e *Entry) size() int64 {
	return int64(len(e.Answer) + len(e.Model) + len(e.Scope) + len(e.FinishReason) + 4*len(e.Vector) + len(e.Prompt) + 128)
}

// Ref names an entry: the public model and scope it was stored for, and
// its key (which already covers both: a store may use the first two to
// group entries, for purges).
type Ref struct {
	Model, Scope string
	Key          Key
}

// Store keeps entries by reference. Get reports a miss as (nil, nil); err
// is a failure of the store itself (Redis down), which the caller treats
// as a miss and counts.
type Store interface {
	Get(ctx context.Context, ref Ref) (*Entry, error)
	Set(ctx context.Context, ref Ref, e *Entry) error
	// Purge drops the entries of model (all models when "") in scope
	// (every scope when ""), and returns how many it dropped.
	Purge(ctx context.Context, model, scope string) (int, error)
}

// Memory is an in-process LRU store bounded by entries and bytes; an
// expired entry is dropped when it is next asked for, or when it reaches
// the cold end.
type Memory struct {
	clock      clock.Clock
	maxEntries int
	maxBytes   int64

	mu        sync.Mutex
	items     map[Key]*list.Element // of *node
	lru       list.List             // front: most recently used
	bytes     int64
	evictions uint64
}

type node struct {
	key Key
	e   *Entry
}

// NewMemory returns a store of at most maxEntries entries and maxBytes
// bytes (0: no bound of that kind); clk is clock.Real when nil.
func NewMemory(maxEntries int, maxBytes int64, clk clock.Clock) *Memory {
	if clk == nil {
		clk = clock.Real{}
	}
	return &Memory{clock: clk, maxEntries: maxEntries, maxBytes: maxBytes, items: make(map[Key]*list.Element)}
}

// Get returns the entry of ref, moving it to the hot end; nil when absent or
// expired.
func (m *Memory) Get(_ context.Context, ref Ref) (*Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	el := m.items[ref.Key]
	if el == nil {
		return nil, nil
	}
	n := el.Value.(*node)
	if !n.e.Expires.IsZero() && !m.clock.Now().Before(n.e.Expires) {
		m.removeLocked(el)
		return nil, nil
	}
	m.lru.MoveToFront(el)
	return n.e, nil
}

// Set stores e under ref, evicting from the cold end to stay in bounds. An
// entry larger than the whole byte bound is not stored.
func (m *Memory) Set(_ context.Context, ref Ref, e *Entry) error {
	k := ref.Key
	sz := e.size()
	if m.maxBytes > 0 && sz > m.maxBytes {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if old := m.items[k]; old != nil {
		m.removeLocked(old)
	}
	m.items[k] = m.lru.PushFront(&node{key: k, e: e})
	m.bytes += sz
	for m.lru.Len() > 0 && (m.maxEntries > 0 && len(m.items) > m.maxEntries || m.maxBytes > 0 && m.bytes > m.maxBytes) {
		m.removeLocked(m.lru.Back())
		m.evictions++
	}
	return nil
}

// Purge drops the entries of model in scope ("" matches any).
func (m *Memory) Purge(_ context.Context, model, scope string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, x := range m.items {
		if e := x.Value.(*node).e; (model == "" || e.Model == model) && (scope == "" || e.Scope == scope) {
			m.removeLocked(x)
			n++
		}
	}
	return n, nil
}

// MemoryStats is the store's size and its evictions so far.
type MemoryStats struct {
	Entries   int
	Bytes     int64
	Evictions uint64
}

// Stats returns the store's size and evictions.
func (m *Memory) Stats() MemoryStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return MemoryStats{Entries: len(m.items), Bytes: m.bytes, Evictions: m.evictions}
}

// Each calls fn for every live entry (for the semantic index to rebuild
// from), oldest first, without changing the order.
func (m *Memory) Each(fn func(Key, *Entry)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	for el := m.lru.Back(); el != nil; el = el.Prev() {
		if n := el.Value.(*node); n.e.Expires.IsZero() || now.Before(n.e.Expires) {
			fn(n.key, n.e)
		}
	}
}

func (m *Memory) removeLocked(el *list.Element) {
	n := m.lru.Remove(el).(*node)
	delete(m.items, n.key)
	m.bytes -= n.e.size()
}

var _ Store = (*Memory)(nil)
