package cache

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"
)

// clustered returns n vectors of dims dimensions around clusters random
// centres (a stand-in for sentence embeddings, which gather by topic), and
// their keys.
func clustered(n, dims, clusters int, spread float32, rng *rand.Rand) ([]Key, [][]float32) {
	centres := make([][]float32, clusters)
	for i := range centres {
		centres[i] = make([]float32, dims)
		for j := range centres[i] {
			centres[i][j] = float32(rng.NormFloat64())
		}
		normalise(centres[i])
	}
	keys := make([]Key, n)
	vecs := make([][]float32, n)
	for i := range vecs {
		c := centres[rng.IntN(clusters)]
		v := make([]float32, dims)
		for j := range v {
			v[j] = c[j] + spread*float32(rng.NormFloat64())/float32(dims)*8
		}
		vecs[i] = v
		binary.LittleEndian.PutUint64(keys[i][:], uint64(i))
	}
	return keys, vecs
}

// perturbed is a query near v: a paraphrase of a stored prompt.
func perturbed(v []float32, rng *rand.Rand, amount float32) []float32 {
	q := slices.Clone(v)
	for j := range q {
		q[j] += amount * float32(rng.NormFloat64()) / float32(len(q)) * 8
	}
	return q
}

// exactBest is a brute-force search of vecs (normalised) for q.
func exactBest(keys []Key, vecs [][]float32, q []float32) Key {
	qq := slices.Clone(q)
	normalise(qq)
	best, bestSim := 0, float32(-2)
	for i, v := range vecs {
		if d := dot(qq, v); d > bestSim {
			best, bestSim = i, d
		}
	}
	return keys[best]
}

// fill adds the vectors and waits for the partition they lead to.
func fill(ix *Index, scope Key, keys []Key, vecs [][]float32) {
	for i := range keys {
		ix.Add(scope, keys[i], vecs[i]) // normalises vecs[i] in place
	}
	ix.builds.Wait()
}

// TestIndexExact: below exactBelow the search is exact.
func TestIndexExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	keys, vecs := clustered(1000, 64, 20, 0.3, rng)
	ix := NewIndex(64)
	scope := k("s").Key
	fill(ix, scope, keys, vecs)
	for i := 0; i < 200; i++ {
		q := perturbed(vecs[rng.IntN(len(vecs))], rng, 0.2)
		want := exactBest(keys, vecs, q)
		if got, _, ok := ix.Search(scope, q); !ok || got != want {
			t.Fatalf("query %d: %x, want %x", i, got[:4], want[:4])
		}
	}
	if _, _, ok := ix.Search(k("other").Key, vecs[0]); ok {
		t.Error("a hit in an empty scope")
	}
}

// TestIndexRecall: past exactBelow the inverted file finds the exact
// nearest neighbour for at least 95% of queries, and keeps doing so while
// vectors are removed.
func TestIndexRecall(t *testing.T) {
	const n, dims = 8000, 128
	rng := rand.New(rand.NewPCG(3, 4))
	keys, vecs := clustered(n, dims, 400, 0.5, rng)
	ix := NewIndex(dims)
	scope := k("s").Key
	fill(ix, scope, keys, vecs)
	recall := func() float64 {
		hits := 0
		const queries = 100
		for range queries {
			q := perturbed(vecs[rng.IntN(len(vecs))], rng, 0.3)
			want := exactBest(keys, vecs, q)
			if got, _, _ := ix.Search(scope, q); got == want {
				hits++
			}
		}
		return float64(hits) / queries
	}
	if r := recall(); r < 0.95 {
		t.Errorf("recall %.3f at %d vectors, want >= 0.95", r, n)
	}
	// Remove a third; the exact answer is over what is left.
	for i := n - 1; i >= 2*n/3; i-- {
		ix.Remove(scope, keys[i])
	}
	keys, vecs = keys[:2*n/3], vecs[:2*n/3]
	if ix.Len(scope) != len(keys) {
		t.Fatalf("%d vectors after removals, want %d", ix.Len(scope), len(keys))
	}
	if r := recall(); r < 0.95 {
		t.Errorf("recall %.3f after removals, want >= 0.95", r)
	}
}

// BenchmarkSemanticSearch: search cost and recall at 1k, 10k and 100k
// vectors of 384 dimensions; p50/p99 per search and recall are reported
// as metrics.
func BenchmarkSemanticSearch(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(5, 6))
			keys, vecs := clustered(n, 384, n/50, 0.5, rng)
			ix := NewIndex(384)
			scope := k("s").Key
			t0 := time.Now()
			fill(ix, scope, keys, vecs)
			build := time.Since(t0)
			qs := make([][]float32, 256)
			want := make([]Key, len(qs))
			for i := range qs {
				qs[i] = perturbed(vecs[rng.IntN(n)], rng, 0.3)
				want[i] = exactBest(keys, vecs, qs[i])
			}
			var took []time.Duration
			hits, total := 0, 0
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				q := slices.Clone(qs[i%len(qs)])
				s := time.Now()
				got, _, _ := ix.Search(scope, q)
				took = append(took, time.Since(s))
				if got == want[i%len(qs)] {
					hits++
				}
				total++
			}
			sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
			b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
			b.ReportMetric(float64(hits)/float64(total), "recall")
			b.ReportMetric(build.Seconds()*1e6/float64(n), "insert-µs")
		})
	}
}

// TestIndexRebuildKeepsChanges: what is added and removed while a
// partition is being built is in the index once it is swapped in.
func TestIndexRebuildKeepsChanges(t *testing.T) {
	const dims = 32
	rng := rand.New(rand.NewPCG(7, 8))
	keys, vecs := clustered(3*exactBelow, dims, 100, 0.5, rng)
	ix := NewIndex(dims)
	scope := k("s").Key
	fill(ix, scope, keys[:exactBelow-1], vecs[:exactBelow-1])
	// The next Add starts a rebuild; these land while it runs (most of
	// them: it takes a while at this size), some replacing, some removed.
	for i := exactBelow - 1; i < len(keys); i++ {
		ix.Add(scope, keys[i], vecs[i])
		if i%3 == 0 {
			ix.Remove(scope, keys[i-exactBelow/2])
		}
	}
	ix.builds.Wait()
	removed := map[Key]bool{}
	for i := exactBelow - 1; i < len(keys); i++ {
		if i%3 == 0 {
			removed[keys[i-exactBelow/2]] = true
		}
	}
	if got, want := ix.Len(scope), len(keys)-len(removed); got != want {
		t.Fatalf("%d vectors, want %d", got, want)
	}
	ix.mu.RLock()
	partitioned := ix.scopes[scope].centroids != nil
	ix.mu.RUnlock()
	if !partitioned {
		t.Fatal("not partitioned")
	}
	misses := 0
	for i, key := range keys {
		got, sim, _ := ix.Search(scope, slices.Clone(vecs[i]))
		switch {
		case removed[key] && got == key:
			t.Errorf("removed key %d found", i)
		case !removed[key] && (got != key || sim < 0.999):
			misses++
		}
	}
	if misses > len(keys)/50 {
		t.Errorf("%d of %d stored vectors not found as their own nearest", misses, len(keys))
	}
}

// BenchmarkIndexRebuild: a partition of 100,000 vectors of 384 dimensions
// is built in the background; the searches meanwhile are timed (p99 and
// the longest, lock waits included), and so are the build and its swap
// (the only time it holds the lock).
func BenchmarkIndexRebuild(b *testing.B) {
	const n, dims = 100000, 384
	rng := rand.New(rand.NewPCG(5, 6))
	keys, vecs := clustered(n, dims, n/50, 0.5, rng)
	ix := NewIndex(dims)
	scope := k("s").Key
	fill(ix, scope, keys, vecs)
	qs := make([][]float32, 256)
	for i := range qs {
		qs[i] = perturbed(vecs[rng.IntN(n)], rng, 0.3)
	}
	var builds, took, swaps []time.Duration
	for b.Loop() {
		ix.mu.Lock()
		s := ix.scopes[scope]
		s.building = true
		ix.builds.Add(1)
		t0 := time.Now()
		go ix.rebuild(scope, s)
		ix.mu.Unlock()
		done := make(chan struct{})
		go func() { ix.builds.Wait(); close(done) }()
	search:
		for i := 0; ; i++ {
			select {
			case <-done:
				break search
			default:
			}
			q := slices.Clone(qs[i%len(qs)])
			t1 := time.Now()
			ix.Search(scope, q)
			took = append(took, time.Since(t1))
			if i%100 == 0 { // changes too, replayed on the new partition
				ix.Add(scope, keys[i%n], slices.Clone(vecs[i%n]))
			}
		}
		builds = append(builds, time.Since(t0))
		swaps = append(swaps, ix.swapTook)
	}
	slices.Sort(took)
	slices.Sort(builds)
	slices.Sort(swaps)
	b.ReportMetric(float64(builds[len(builds)/2].Milliseconds()), "build-ms")
	b.ReportMetric(float64(swaps[len(swaps)-1].Microseconds()), "swap-µs")
	b.ReportMetric(float64(len(took))/float64(len(builds)), "searches/build")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(took[len(took)-1].Microseconds()), "max-µs")
}
