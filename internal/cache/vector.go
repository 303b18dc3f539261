package cache

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
)

// Index finds, among the vectors stored for one semantic scope, the one
// most similar to a query (cosine similarity; vectors are normalised on
// the way in). A scope of up to exactBelow vectors is searched exactly;
// past that it is partitioned by k-means into lists (an inverted-file
// index) and a query scans the lists of its nprobe nearest centroids,
// trading a little recall for a search that stays about a millisecond at
// 100,000 vectors. The index holds keys, not answers: a hit is looked up
// in the store, and a key the store no longer has is dropped then.
type Index struct {
	mu     sync.RWMutex
	scopes map[Key]*scopeIndex
	dims   int
}

// Search tuning: exact below exactBelow vectors; past it, about
// sqrt(n) lists, of which a query scans probeShare (at least minProbe).
const (
	exactBelow = 4096
	minProbe   = 6
	probeShare = 0.03
)

type scopeIndex struct {
	keys []Key
	vecs [][]float32
	// pos finds a key's place in keys/vecs, for removal.
	pos map[Key]int

	// The inverted file, built when the scope grows past exactBelow and
	// rebuilt when it doubles; nil below.
	centroids [][]float32
	lists     [][]int32 // indexes into keys/vecs
	listOf    []int32   // each vector's list
	builtAt   int       // size at the last build
}

// NewIndex returns an empty index of vectors of dims dimensions.
func NewIndex(dims int) *Index { return &Index{scopes: make(map[Key]*scopeIndex), dims: dims} }

// Dims is the vectors' dimension.
func (ix *Index) Dims() int { return ix.dims }

// Len counts the vectors in scope.
func (ix *Index) Len(scope Key) int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if s := ix.scopes[scope]; s != nil {
		return len(s.keys)
	}
	return 0
}

// Total counts the vectors in every scope.
func (ix *Index) Total() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	n := 0
	for _, s := range ix.scopes {
		n += len(s.keys)
	}
	return n
}

// Add stores v for key in scope (replacing key's vector if present). v is
// normalised in place; a vector of the wrong size or of zero length is
// ignored.
func (ix *Index) Add(scope, key Key, v []float32) {
	if len(v) != ix.dims || !normalise(v) {
		return
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	s := ix.scopes[scope]
	if s == nil {
		s = &scopeIndex{pos: make(map[Key]int)}
		ix.scopes[scope] = s
	}
	if i, ok := s.pos[key]; ok {
		s.removeAt(i)
	}
	s.pos[key] = len(s.keys)
	s.keys = append(s.keys, key)
	s.vecs = append(s.vecs, v)
	n := len(s.keys)
	switch {
	case n >= exactBelow && (s.centroids == nil || n >= 2*s.builtAt):
		s.build()
	case s.centroids != nil:
		c := nearest(s.centroids, v)
		s.lists[c] = append(s.lists[c], int32(n-1))
		s.listOf = append(s.listOf, int32(c))
	}
}

// Remove drops key from scope.
func (ix *Index) Remove(scope, key Key) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if s := ix.scopes[scope]; s != nil {
		if i, ok := s.pos[key]; ok {
			s.removeAt(i)
		}
		if len(s.keys) == 0 {
			delete(ix.scopes, scope)
		}
	}
}

// removeAt drops entry i by moving the last one into its place; the
// lists, which hold positions, follow.
func (s *scopeIndex) removeAt(i int) {
	last := len(s.keys) - 1
	delete(s.pos, s.keys[i])
	if s.centroids != nil {
		s.lists[s.listOf[i]] = dropValue(s.lists[s.listOf[i]], int32(i))
		if i != last {
			l := s.lists[s.listOf[last]]
			l[slices.Index(l, int32(last))] = int32(i)
			s.listOf[i] = s.listOf[last]
		}
		s.listOf = s.listOf[:last]
	}
	if i != last {
		s.keys[i], s.vecs[i] = s.keys[last], s.vecs[last]
		s.pos[s.keys[i]] = i
	}
	s.keys, s.vecs = s.keys[:last], s.vecs[:last]
	if s.centroids != nil && len(s.keys) < exactBelow/2 {
		s.centroids, s.lists, s.listOf = nil, nil, nil
	}
}

// dropValue removes v from l, not keeping the order.
func dropValue(l []int32, v int32) []int32 {
	if j := slices.Index(l, v); j >= 0 {
		l[j] = l[len(l)-1]
		return l[:len(l)-1]
	}
	return l
}

// Search returns the key in scope most similar to q and its similarity;
// ok is false when the scope is empty. q is normalised in place.
func (ix *Index) Search(scope Key, q []float32) (Key, float32, bool) {
	var one [1]Match
	if ms := ix.SearchK(scope, q, one[:0]); len(ms) > 0 {
		return ms[0].Key, ms[0].Sim, true
	}
	return Key{}, 0, false
}

// Match is a key found by a search and its similarity to the query.
type Match struct {
	Key Key
	Sim float32
}

// SearchK appends to dst the cap(dst)-len(dst) keys in scope most similar
// to q (at least one), most similar first. q is normalised in place.
func (ix *Index) SearchK(scope Key, q []float32, dst []Match) []Match {
	if len(q) != ix.dims || !normalise(q) {
		return dst
	}
	k := max(cap(dst)-len(dst), 1)
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	s := ix.scopes[scope]
	if s == nil || len(s.keys) == 0 {
		return dst
	}
	top := topK{k: k}
	if s.centroids == nil {
		for i, v := range s.vecs {
			top.offer(int32(i), dot(q, v))
		}
	} else {
		for _, c := range s.probe(q) {
			for _, i := range s.lists[c] {
				top.offer(i, dot(q, s.vecs[i]))
			}
		}
	}
	for _, m := range top.best() {
		dst = append(dst, Match{Key: s.keys[m.i], Sim: m.sim})
	}
	return dst
}

// topK keeps the k best of the similarities offered.
type topK struct {
	k  int
	ms []scored // most similar first
}

type scored struct {
	i   int32
	sim float32
}

func (t *topK) offer(i int32, sim float32) {
	if len(t.ms) == t.k && sim <= t.ms[len(t.ms)-1].sim {
		return
	}
	j := len(t.ms)
	if j < t.k {
		t.ms = append(t.ms, scored{})
	} else {
		j--
	}
	for j > 0 && t.ms[j-1].sim < sim {
		t.ms[j] = t.ms[j-1]
		j--
	}
	t.ms[j] = scored{i, sim}
}

func (t *topK) best() []scored { return t.ms }

// probe returns the lists a query scans: those of its nearest centroids.
func (s *scopeIndex) probe(q []float32) []int {
	type cs struct {
		i   int
		sim float32
	}
	all := make([]cs, len(s.centroids))
	for i, c := range s.centroids {
		all[i] = cs{i, dot(q, c)}
	}
	slices.SortFunc(all, func(a, b cs) int {
		switch {
		case a.sim > b.sim:
			return -1
		case a.sim < b.sim:
			return 1
		}
		return 0
	})
	n := max(minProbe, int(math.Ceil(probeShare*float64(len(all)))))
	n = min(n, len(all))
	out := make([]int, n)
	for i := range out {
		out[i] = all[i].i
	}
	return out
}

// build partitions the scope's vectors with k-means (spherical: centroids
// are normalised means), k about sqrt(n), a few rounds over a sample.
func (s *scopeIndex) build() {
	n := len(s.vecs)
	k := int(math.Sqrt(float64(n)))
	rng := rand.New(rand.NewPCG(uint64(n), 0x5eed))
	dims := len(s.vecs[0])
	cents := make([][]float32, k)
	for i := range cents {
		cents[i] = slices.Clone(s.vecs[rng.IntN(n)])
	}
	sample := s.vecs
	if n > 32*k {
		sample = make([][]float32, 32*k)
		for i := range sample {
			sample[i] = s.vecs[rng.IntN(n)]
		}
	}
	sums := make([][]float32, k)
	for i := range sums {
		sums[i] = make([]float32, dims)
	}
	counts := make([]int, k)
	for range 6 {
		for i := range sums {
			clear(sums[i])
			counts[i] = 0
		}
		for _, v := range sample {
			c := nearest(cents, v)
			counts[c]++
			for j, x := range v {
				sums[c][j] += x
			}
		}
		for i := range cents {
			if counts[i] == 0 {
				cents[i] = slices.Clone(sample[rng.IntN(len(sample))]) // an empty cluster starts over
				continue
			}
			copy(cents[i], sums[i])
			normalise(cents[i])
		}
	}
	s.centroids = cents
	s.builtAt = n
	s.assign()
}

// assign puts every vector in the list of its nearest centroid.
func (s *scopeIndex) assign() {
	s.lists = make([][]int32, len(s.centroids))
	s.listOf = make([]int32, len(s.vecs))
	for i, v := range s.vecs {
		c := nearest(s.centroids, v)
		s.lists[c] = append(s.lists[c], int32(i))
		s.listOf[i] = int32(c)
	}
}

func nearest(cents [][]float32, v []float32) int {
	best, bestSim := 0, float32(-2)
	for i, c := range cents {
		if d := dot(v, c); d > bestSim {
			best, bestSim = i, d
		}
	}
	return best
}

// normalise scales v to unit length; false for a zero vector.
func normalise(v []float32) bool {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	if ss == 0 || math.IsNaN(ss) || math.IsInf(ss, 0) {
		return false
	}
	inv := float32(1 / math.Sqrt(ss))
	for i := range v {
		v[i] *= inv
	}
	return true
}

// dot is the inner product, four lanes at a time.
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return s0 + s1 + s2 + s3
}
