package sim

// Automatic prefix caching, after vLLM V1's KV cache manager: a sequence's
// full prompt blocks, once computed, are registered under their chained
// hash (blockHasher). Blocks are reference-counted: while a running
// sequence holds a block it is in use; when the last holder finishes, is
// aborted or is preempted, the block becomes evictable: free for
// allocation, yet still found by a later prompt with the same beginning.
// Allocating a block when no block is truly free evicts the least recently
// freed. Only blocks in use count in usedBlocks and in the KV usage
// reported, as in vLLM.

// cachedBlock is one full prompt block whose KV is in the cache.
type cachedBlock struct {
	hash       uint64
	refs       int          // running sequences holding it
	prev, next *cachedBlock // the evictable list, while refs == 0
}

// prefixCache finds cached blocks by hash and keeps the evictable ones in
// the order they were freed.
type prefixCache struct {
	on        bool
	byHash    map[uint64]*cachedBlock
	lru       cachedBlock // sentinel: lru.next is the least recently freed
	evictable int
	spare     []*cachedBlock // evicted blocks, reused
	slab      []cachedBlock  // new blocks come from here, a slab at a time
}

// maxEvictableUnlimited bounds what an unlimited KV cache keeps for reuse
// (1M tokens at block size 16), so a long run does not grow without end.
const maxEvictableUnlimited = 1 << 16

func (pc *prefixCache) init(on bool) {
	pc.on = on
	pc.byHash = make(map[uint64]*cachedBlock)
	pc.lru.prev, pc.lru.next = &pc.lru, &pc.lru
}

func (pc *prefixCache) unlink(b *cachedBlock) {
	b.prev.next, b.next.prev = b.next, b.prev
	b.prev, b.next = nil, nil
	pc.evictable--
}

// park makes b evictable, the most recently freed.
func (pc *prefixCache) park(b *cachedBlock) {
	b.prev, b.next = pc.lru.prev, &pc.lru
	pc.lru.prev.next = b
	pc.lru.prev = b
	pc.evictable++
}

// evictOldest forgets the least recently freed block.
func (pc *prefixCache) evictOldest() {
	b := pc.lru.next
	pc.unlink(b)
	delete(pc.byHash, b.hash)
	*b = cachedBlock{}
	pc.spare = append(pc.spare, b)
}

func (pc *prefixCache) newBlock(hash uint64) *cachedBlock {
	var b *cachedBlock
	switch n := len(pc.spare); {
	case n > 0:
		b, pc.spare = pc.spare[n-1], pc.spare[:n-1]
	default:
		if len(pc.slab) == 0 {
			pc.slab = make([]cachedBlock, 256)
		}
		b, pc.slab = &pc.slab[0], pc.slab[1:]
	}
	b.hash, b.refs = hash, 1
	pc.byHash[hash] = b
	return b
}

// lookup counts the leading blocks of s found in the cache, and how many of
// them are evictable (admitting s puts those back in use). Like vLLM it
// never counts the last token: the step that computes it samples.
func (c *core) lookup(s *seq) (hit, revive int) {
	if !c.cache.on {
		return 0, 0
	}
	limit := min(len(s.hashes), (s.prompt+s.generated-1)/c.p.BlockSize)
	for hit < limit {
		b := c.cache.byHash[s.hashes[hit]]
		if b == nil {
			break
		}
		if b.refs == 0 {
			revive++
		}
		hit++
	}
	return hit, revive
}

// acquire makes s hold the first hit blocks of its prompt, found by lookup.
func (c *core) acquire(s *seq, hit int) {
	for j := range hit {
		b := c.cache.byHash[s.hashes[j]]
		if b.refs == 0 {
			c.cache.unlink(b)
			c.usedBlocks++
		}
		b.refs++
		if s.refs == nil {
			s.refs = make([]*cachedBlock, 0, len(s.hashes))
		}
		s.refs = append(s.refs, b)
	}
	s.blocks = hit
}

// allocate gives s n more blocks, evicting the least recently freed cached
// blocks when no block is truly free. The caller has made sure n blocks are
// free or evictable.
func (c *core) allocate(s *seq, n int) {
	s.blocks += n
	c.usedBlocks += n
	c.trim()
}

// trim evicts until the blocks in use and the evictable ones fit the cache.
func (c *core) trim() {
	limit := c.totalBlocks - c.usedBlocks
	if c.totalBlocks == 0 {
		limit = maxEvictableUnlimited
	}
	for c.cache.evictable > limit {
		c.cache.evictOldest()
	}
}

// register caches the full prompt blocks of s that its computed tokens now
// cover. A block another sequence registered meanwhile stays s's own
// (vLLM keeps such duplicates too).
func (c *core) register(s *seq) {
	if s.refs == nil {
		s.refs = make([]*cachedBlock, 0, len(s.hashes))
	}
	for j := len(s.refs); j < len(s.hashes) && (j+1)*c.p.BlockSize <= s.computed; j++ {
		if c.cache.byHash[s.hashes[j]] != nil {
			s.refs = append(s.refs, nil)
			continue
		}
		s.refs = append(s.refs, c.cache.newBlock(s.hashes[j]))
	}
}

// release drops every block s holds. Its cached blocks that no one else
// holds become evictable, the tail of the prompt first, so that eviction
// takes a prompt's end before its beginning (as vLLM frees them).
func (c *core) release(s *seq) {
	private := s.blocks
	for j := len(s.refs) - 1; j >= 0; j-- {
		b := s.refs[j]
		if b == nil {
			continue
		}
		private--
		if b.refs--; b.refs == 0 {
			c.cache.park(b)
			c.usedBlocks--
		}
	}
	c.usedBlocks -= private
	clear(s.refs)
	s.refs = s.refs[:0]
	s.blocks = 0
	c.trim()
}
