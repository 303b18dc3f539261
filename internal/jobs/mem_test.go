package jobs

import (
	"bytes"
	"context"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
)

// memBackend is an in-memory Backend for the tests of the job logic (the
// real backends have their own suite in internal/jobs/store).
type memBackend struct {
	mu      sync.Mutex
	recs    map[string]memRec
	counts  map[string]int64
	files   map[string][]byte
	tasks   []*memTask
	lease   time.Duration
	changed chan struct{}
}

type memRec struct {
	val []byte
	ver uint64
}

type memTask struct {
	task     string
	until    time.Time // leased until; zero: free
	attempts int
	acked    bool
	holder   *memDelivery
}

type memDelivery struct {
	b *memBackend
	t *memTask
	n int
}

func newMem(lease time.Duration) *memBackend {
	return &memBackend{recs: map[string]memRec{}, counts: map[string]int64{}, files: map[string][]byte{}, lease: lease, changed: make(chan struct{}, 1)}
}

func (m *memBackend) backend() *Backend { return &Backend{Records: m, Queue: m, Files: memFiles{m}} }

func (m *memBackend) Get(_ context.Context, k string) ([]byte, uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.recs[k]
	if !ok {
		return nil, 0, ErrNotFound
	}
	return slices.Clone(r.val), r.ver, nil
}

func (m *memBackend) Put(_ context.Context, k string, v []byte, ver uint64) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.recs[k].ver != ver {
		return 0, ErrConflict
	}
	m.recs[k] = memRec{slices.Clone(v), ver + 1}
	return ver + 1, nil
}

func (m *memBackend) Create(_ context.Context, rs []Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range rs {
		if _, ok := m.recs[r.Key]; !ok {
			m.recs[r.Key] = memRec{slices.Clone(r.Val), 1}
		}
	}
	return nil
}

func (m *memBackend) Delete(_ context.Context, k string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.recs, k)
	return nil
}

func (m *memBackend) Add(_ context.Context, k string, d int64) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.counts[k] += d
	return m.counts[k], nil
}

func (m *memBackend) List(_ context.Context, kind, below string, limit int) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var keys []string
	for k := range m.recs {
		if strings.HasPrefix(k, kind+"/") && (below == "" || k < below) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	slices.Reverse(keys)
	return keys[:min(limit, len(keys))], nil
}

func (m *memBackend) Push(_ context.Context, tasks ...string) error {
	m.mu.Lock()
	for _, t := range tasks {
		m.tasks = append(m.tasks, &memTask{task: t})
	}
	m.mu.Unlock()
	select {
	case m.changed <- struct{}{}:
	default:
	}
	return nil
}

func (m *memBackend) Take(ctx context.Context, wait time.Duration) (Delivery, error) {
	end := time.Now().Add(wait)
	for {
		m.mu.Lock()
		now := time.Now()
		for _, t := range m.tasks {
			if !t.acked && (t.until.IsZero() || now.After(t.until)) {
				t.attempts++
				t.until = now.Add(m.lease)
				d := &memDelivery{b: m, t: t, n: t.attempts}
				t.holder = d
				m.mu.Unlock()
				return d, nil
			}
		}
		m.mu.Unlock()
		if time.Now().After(end) {
			return nil, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-m.changed:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (d *memDelivery) Task() string { return d.t.task }
func (d *memDelivery) Attempt() int { return d.n }

func (d *memDelivery) Extend(context.Context) error {
	d.b.mu.Lock()
	defer d.b.mu.Unlock()
	if d.t.holder != d {
		return ErrLeaseLost
	}
	d.t.until = time.Now().Add(d.b.lease)
	return nil
}

func (d *memDelivery) Ack(context.Context) error {
	d.b.mu.Lock()
	defer d.b.mu.Unlock()
	d.t.acked = true
	return nil
}

func (m *memBackend) PutFile(name string, b []byte) {
	m.mu.Lock()
	m.files[name] = b
	m.mu.Unlock()
}

func (m *memBackend) Open(_ context.Context, name string) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.files[name]
	if !ok {
		return nil, ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// pending reports the tasks not acked.
func (m *memBackend) pending() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, t := range m.tasks {
		if !t.acked {
			n++
		}
	}
	return n
}

type memFiles struct{ m *memBackend }

func (f memFiles) Put(_ context.Context, name string, r io.Reader) (int64, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return 0, err
	}
	f.m.PutFile(name, b)
	return int64(len(b)), nil
}
func (f memFiles) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	return f.m.Open(ctx, name)
}
func (f memFiles) Delete(_ context.Context, name string) error {
	f.m.mu.Lock()
	delete(f.m.files, name)
	f.m.mu.Unlock()
	return nil
}
