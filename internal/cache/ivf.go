package cache

import (
	"math"
	"math/rand/v2"
	"time"
)

// The inverted file's partition is built when a scope reaches exactBelow
// vectors and again each time it doubles. Building 100,000 vectors takes
// seconds of k-means, so it runs in a goroutine of its own on a copy:
// searches and changes go on against the old partition meanwhile, the
// changes are logged, and the new partition is swapped in under the lock
// with the log replayed on it.

// k-means tuning: lists per vector (k = sqrt(n)·listsPerRoot), the sample
// the centroids are trained on (sampleFactor per list) and its rounds.
const (
	listsPerRoot = 1.0
	sampleFactor = 32
	kmeansRounds = 6
)

// maybeRebuild starts a rebuild of s when it has grown enough. ix.mu is
// held.
func (ix *Index) maybeRebuild(scope Key, s *scopeIndex) {
	if s.building || s.n < exactBelow || s.centroids != nil && s.n < 2*s.builtAt {
		return
	}
	s.building, s.log = true, nil
	ix.builds.Add(1)
	go ix.rebuild(scope, s)
}

// rebuild partitions a copy of s and swaps the result in.
func (ix *Index) rebuild(scope Key, s *scopeIndex) {
	defer ix.builds.Done()
	dims := ix.dims
	// The copy is taken a list at a time, so no reader waits for all of
	// it; a change that lands meanwhile is in the log, and replaying it
	// is idempotent (an Add replaces, a Remove of the absent is nothing).
	ix.mu.RLock()
	n := s.n
	ix.mu.RUnlock()
	// Room for what lands meanwhile too, so that no copy grows its slice
	// under the lock.
	keys := make([]Key, 0, n+n/8)
	vecs := make([]float32, 0, (n+n/8)*dims)
	for i := 0; ; i++ {
		ix.mu.RLock()
		if i >= len(s.lists) {
			ix.mu.RUnlock()
			break
		}
		keys = append(keys, s.lists[i].keys...)
		vecs = append(vecs, s.lists[i].vecs...)
		ix.mu.RUnlock()
	}

	next := partition(keys, vecs, dims)
	// The changes logged so far find their lists before the lock is
	// taken: the replay under it is then appends.
	ix.mu.RLock()
	early := s.log // appends after this leave its elements be
	ix.mu.RUnlock()
	lists := make([]int, len(early))
	for i, c := range early {
		if c.vec != nil {
			lists[i] = nearest(next.centroids, c.vec, dims)
		}
	}

	ix.mu.Lock()
	defer ix.mu.Unlock()
	locked := time.Now()
	defer func() { ix.swapTook = time.Since(locked) }()
	log := s.log
	s.lists, s.centroids, s.where, s.n, s.builtAt = next.lists, next.centroids, next.where, next.n, next.n
	s.building, s.log = false, nil
	for i, c := range log {
		switch {
		case c.vec == nil:
			s.drop(c.key, dims)
		case i < len(early):
			s.putIn(lists[i], c.key, c.vec, dims)
		default:
			s.put(c.key, c.vec, dims)
		}
	}
	switch {
	case s.n == 0:
		if ix.scopes[scope] == s {
			delete(ix.scopes, scope)
		}
	case s.n < exactBelow/2:
		s.flatten()
	default:
		ix.maybeRebuild(scope, s)
	}
}

// partition builds the inverted file of keys and their vectors (dims
// floats each; a key seen twice keeps its last vector).
func partition(keys []Key, vecs []float32, dims int) *scopeIndex {
	n := len(keys)
	k := max(int(math.Sqrt(float64(n))*listsPerRoot), 1)
	cents := train(vecs, n, dims, k)
	s := &scopeIndex{lists: make([]vlist, k), centroids: cents, where: make(map[Key]loc, n)}
	for i, key := range keys {
		s.put(key, vecs[i*dims:(i+1)*dims], dims)
	}
	return s
}

// train returns k centroids (k×dims, normalised) of the n vectors by
// spherical k-means over a sample.
func train(vecs []float32, n, dims, k int) []float32 {
	rng := rand.New(rand.NewPCG(uint64(n), 0x5eed))
	at := func(i int) []float32 { return vecs[i*dims : (i+1)*dims] }
	sample := make([]int, min(n, sampleFactor*k))
	for i := range sample {
		if len(sample) == n {
			sample[i] = i
		} else {
			sample[i] = rng.IntN(n)
		}
	}
	cents := make([]float32, k*dims)
	for c := range k {
		copy(cents[c*dims:], at(sample[rng.IntN(len(sample))]))
	}
	sums := make([]float32, k*dims)
	counts := make([]int, k)
	for range kmeansRounds {
		clear(sums)
		clear(counts)
		for _, i := range sample {
			v := at(i)
			c := nearest(cents, v, dims)
			counts[c]++
			sum := sums[c*dims : (c+1)*dims]
			for j, x := range v {
				sum[j] += x
			}
		}
		for c := range k {
			cent := cents[c*dims : (c+1)*dims]
			if counts[c] == 0 {
				copy(cent, at(sample[rng.IntN(len(sample))])) // an empty cluster starts over
				continue
			}
			copy(cent, sums[c*dims:(c+1)*dims])
			normalise(cent)
		}
	}
	return cents
}
