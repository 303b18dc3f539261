package cache

import (
	"math"
	"sync"
	"time"
)

// Index finds, among the vectors stored for one semantic scope, the ones
// most similar to a query (cosine similarity; vectors are normalised on
// the way in). A scope of up to exactBelow vectors is searched exactly;
// past that it is partitioned by k-means into lists (an inverted-file
// index) and a query scans the lists of its nearest centroids, trading a
// little recall for a search that stays under a millisecond at 100,000
// vectors. Each list keeps its vectors in one contiguous slice, so a scan
// streams through memory. The partition is rebuilt as a scope doubles, in
// the background (ivf.go): searches go on meanwhile. The index holds keys,
// not answers: a hit is looked up in the store, and a key the store no
// longer has is dropped then.
type Index struct {
	mu     sync.RWMutex
	scopes map[Key]*scopeIndex
	dims   int
	// builds counts the rebuilds running, for tests to wait on;
	// swapTook is how long the last one held the lock.
	builds   sync.WaitGroup
	swapTook time.Duration
}

// Search tuning: exact below exactBelow vectors; past it, about
// sqrt(n) lists, of which a query scans probeShare (at least minProbe).
const (
	exactBelow = 4096
	minProbe   = 6
	probeShare = 0.03
)

type scopeIndex struct {
	// lists hold the vectors: one list, searched whole, until the scope
	// is partitioned; then one per centroid.
	lists     []vlist
	centroids []float32 // k×dims, normalised; nil: not partitioned
	where     map[Key]loc
	n         int
	builtAt   int // size at the last partition

	// While a rebuild runs, changes are also logged, to replay on the
	// new partition.
	building bool
	log      []change
}

// vlist is one list's keys and their vectors, dims floats each, in order.
type vlist struct {
	keys []Key
	vecs []float32
}

type loc struct{ list, pos int32 }

// change is an Add (vec set) or a Remove (vec nil) made during a rebuild.
type change struct {
	key Key
	vec []float32
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
		return s.n
	}
	return 0
}

// Total counts the vectors in every scope.
func (ix *Index) Total() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	n := 0
	for _, s := range ix.scopes {
		n += s.n
	}
	return n
}

func newScope() *scopeIndex {
	return &scopeIndex{lists: make([]vlist, 1), where: make(map[Key]loc)}
}

// Add stores v for key in scope (replacing key's vector if present). v is
// normalised in place, and copied; a vector of the wrong size or of zero
// length is ignored.
func (ix *Index) Add(scope, key Key, v []float32) {
	if len(v) != ix.dims || !normalise(v) {
		return
	}
	// The nearest centroid is found before the lock is taken, so that
	// searches wait for an append only (a partition's centroids never
	// change: a rebuild brings new ones).
	ix.mu.RLock()
	var cents []float32
	if s := ix.scopes[scope]; s != nil {
		cents = s.centroids
	}
	ix.mu.RUnlock()
	c := -1
	if cents != nil {
		c = nearest(cents, v, ix.dims)
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	s := ix.scopes[scope]
	if s == nil {
		s = newScope()
		ix.scopes[scope] = s
	}
	if c >= 0 && len(s.centroids) == len(cents) && len(cents) > 0 && &s.centroids[0] == &cents[0] {
		s.putIn(c, key, v, ix.dims)
	} else {
		s.put(key, v, ix.dims)
	}
	if s.building {
		s.log = append(s.log, change{key: key, vec: append([]float32(nil), v...)})
	}
	ix.maybeRebuild(scope, s)
}

// Remove drops key from scope.
func (ix *Index) Remove(scope, key Key) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	s := ix.scopes[scope]
	if s == nil {
		return
	}
	s.drop(key, ix.dims)
	if s.building {
		s.log = append(s.log, change{key: key})
	} else if s.n == 0 {
		delete(ix.scopes, scope)
	}
}

// put appends v under key to its list (the nearest centroid's).
func (s *scopeIndex) put(key Key, v []float32, dims int) {
	c := 0
	if s.centroids != nil {
		c = nearest(s.centroids, v, dims)
	}
	s.putIn(c, key, v, dims)
}

// putIn appends v under key to list c.
func (s *scopeIndex) putIn(c int, key Key, v []float32, dims int) {
	if _, ok := s.where[key]; ok {
		s.drop(key, dims)
	}
	if c >= len(s.lists) { // flattened by that drop
		c = 0
	}
	l := &s.lists[c]
	s.where[key] = loc{int32(c), int32(len(l.keys))}
	l.keys = append(l.keys, key)
	l.vecs = append(l.vecs, v...)
	s.n++
}

// drop removes key by moving its list's last vector into its place.
func (s *scopeIndex) drop(key Key, dims int) {
	at, ok := s.where[key]
	if !ok {
		return
	}
	delete(s.where, key)
	l := &s.lists[at.list]
	last := len(l.keys) - 1
	if p := int(at.pos); p != last {
		l.keys[p] = l.keys[last]
		copy(l.vecs[p*dims:(p+1)*dims], l.vecs[last*dims:])
		s.where[l.keys[p]] = at
	}
	l.keys, l.vecs = l.keys[:last], l.vecs[:last*dims]
	s.n--
	if s.centroids != nil && s.n < exactBelow/2 && !s.building {
		s.flatten()
	}
}

// flatten goes back to one list, searched whole.
func (s *scopeIndex) flatten() {
	var one vlist
	for _, l := range s.lists {
		one.keys = append(one.keys, l.keys...)
		one.vecs = append(one.vecs, l.vecs...)
	}
	s.lists, s.centroids, s.builtAt = []vlist{one}, nil, 0
	for i, k := range one.keys {
		s.where[k] = loc{0, int32(i)}
	}
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
	dims := ix.dims
	top := topK{k: max(cap(dst)-len(dst), 1)}
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	s := ix.scopes[scope]
	if s == nil || s.n == 0 {
		return dst
	}
	scan := func(l *vlist) {
		for i := range l.keys {
			top.offer(l, i, dot(q, l.vecs[i*dims:(i+1)*dims]))
		}
	}
	if s.centroids == nil {
		for i := range s.lists {
			scan(&s.lists[i])
		}
	} else {
		var buf [64]scored
		for _, c := range s.probe(q, dims, buf[:0]) {
			scan(&s.lists[c.i])
		}
	}
	for _, m := range top.ms {
		dst = append(dst, Match{Key: m.l.keys[m.i], Sim: m.sim})
	}
	return dst
}

// topK keeps the k best of the similarities offered.
type topK struct {
	k  int
	ms []hit // most similar first
}

type hit struct {
	l   *vlist
	i   int
	sim float32
}

func (t *topK) offer(l *vlist, i int, sim float32) {
	if len(t.ms) == t.k && sim <= t.ms[len(t.ms)-1].sim {
		return
	}
	j := len(t.ms)
	if j < t.k {
		t.ms = append(t.ms, hit{})
	} else {
		j--
	}
	for j > 0 && t.ms[j-1].sim < sim {
		t.ms[j] = t.ms[j-1]
		j--
	}
	t.ms[j] = hit{l, i, sim}
}

// scored is a centroid and its similarity to a query.
type scored struct {
	i   int
	sim float32
}

// probe returns the lists a query scans, those of its nearest centroids,
// appended to dst.
func (s *scopeIndex) probe(q []float32, dims int, dst []scored) []scored {
	k := len(s.centroids) / dims
	n := min(max(minProbe, int(math.Ceil(probeShare*float64(k)))), k)
	for c := range k {
		sim := dot(q, s.centroids[c*dims:(c+1)*dims])
		if len(dst) == n && sim <= dst[n-1].sim {
			continue
		}
		j := len(dst)
		if j < n {
			dst = append(dst, scored{})
		} else {
			j--
		}
		for j > 0 && dst[j-1].sim < sim {
			dst[j] = dst[j-1]
			j--
		}
		dst[j] = scored{c, sim}
	}
	return dst
}

// nearest is the centroid (of cents, k×dims) most similar to v.
func nearest(cents, v []float32, dims int) int {
	best, bestSim := 0, float32(-2)
	for c := 0; c*dims < len(cents); c++ {
		if d := dot(v, cents[c*dims:(c+1)*dims]); d > bestSim {
			best, bestSim = c, d
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

// dot is the inner product, four lanes at a time (measured: as fast as
// eight, and the compiler does not vectorise either).
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
