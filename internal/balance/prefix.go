package balance

import (
	"math/bits"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// MaxPrefixBlocks is the most blocks of a prompt the affinity index looks
// at: with 256-byte blocks, the first 128 KiB decide.
const MaxPrefixBlocks = 512

// PrefixHashes appends to dst the chained hashes of prompt's full blocks
// of blockBytes each, at most MaxPrefixBlocks: block k's hash covers
// bytes [0, (k+1)·blockBytes), so two prompts share a block hash exactly
// when they share everything up to its end. The bytes are the request's
// own (a chat's messages array as sent), so media parts count by their
// content (inline data) or their URL. xxhash, not a per-process seed:
// every gateway replica computes the same hashes.
func PrefixHashes(dst []uint64, prompt []byte, blockBytes int) []uint64 {
	if blockBytes <= 0 {
		return dst
	}
	var h uint64
	for k := 0; (k+1)*blockBytes <= len(prompt) && k < MaxPrefixBlocks; k++ {
		h = chain(h, xxhash.Sum64(prompt[k*blockBytes:(k+1)*blockBytes]))
		dst = append(dst, h)
	}
	return dst
}

// chain folds a block's hash into its parent's.
func chain(parent, block uint64) uint64 {
	h := parent*0x9E3779B97F4A7C15 ^ block
	h ^= h >> 33
	h *= 0xFF51AFD7ED558CCD
	h ^= h >> 33
	return h
}

// PrefixIndex remembers which deployments of a model were sent which
// prompt blocks, and so likely hold them in their engine's prefix cache.
// It is a fixed-size, direct-mapped table: a block's hash picks its slot,
// and a newer block that lands there replaces the older, so memory is
// bounded (16 bytes an entry) and old prefixes fade as engines evict
// them. Deployments are bits by pool index (modulo 64 for larger pools).
// Safe for concurrent use without locks: a torn read only mis-scores one
// pick.
type PrefixIndex struct {
	entries []prefixEntry
	mask    uint64
}

type prefixEntry struct {
	hash, slots atomic.Uint64
}

// NewPrefixIndex returns an index of at least n entries (a power of two).
func NewPrefixIndex(n int) *PrefixIndex {
	size := 64
	for size < n {
		size <<= 1
	}
	return &PrefixIndex{entries: make([]prefixEntry, size), mask: uint64(size - 1)}
}

// slots returns the deployments recorded for block hash h.
func (x *PrefixIndex) slots(h uint64) uint64 {
	e := &x.entries[h&x.mask]
	if e.hash.Load() != h {
		return 0
	}
	return e.slots.Load()
}

// Insert records that the deployment at pool index i was sent blocks.
func (x *PrefixIndex) Insert(blocks []uint64, i int) {
	bit := uint64(1) << uint(i%64)
	for _, h := range blocks {
		e := &x.entries[h&x.mask]
		if e.hash.Load() == h {
			if s := e.slots.Load(); s&bit == 0 {
				e.slots.Or(bit)
			}
			continue
		}
		e.hash.Store(h)
		e.slots.Store(bit)
	}
}

// Forget clears the deployment at pool index i from every entry (its
// engine restarted, and its cache with it).
func (x *PrefixIndex) Forget(i int) {
	bit := uint64(1) << uint(i%64)
	for k := range x.entries {
		if x.entries[k].slots.Load()&bit != 0 {
			x.entries[k].slots.And(^bit)
		}
	}
}

// Match sets matched[i] to the number of leading blocks recorded for the
// deployment at pool index i, for i < n (n ≤ 64). It returns the largest.
func (x *PrefixIndex) Match(blocks []uint64, n int, matched *[64]uint16) int {
	*matched = [64]uint16{}
	if n > 64 {
		n = 64
	}
	alive := ^uint64(0)
	if n < 64 {
		alive = 1<<uint(n) - 1
	}
	k := 0
	for ; k < len(blocks); k++ {
		next := alive & x.slots(blocks[k])
		for died := alive &^ next; died != 0; died &= died - 1 {
			matched[bits.TrailingZeros64(died)] = uint16(k)
		}
		if next == 0 {
			return k
		}
		alive = next
	}
	for ; alive != 0; alive &= alive - 1 {
		matched[bits.TrailingZeros64(alive)] = uint16(k)
	}
	return k
}
