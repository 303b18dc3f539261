package auth

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/catalog"
	"github.com/omnigate/omnigate/internal/clock"
	"github.com/omnigate/omnigate/internal/config"
)

func TestMerge(t *testing.T) {
	a, b, c := Hash("sk-a"), Hash("sk-b"), Hash("sk-c")
	key := func(name, hash string) config.APIKey { return config.APIKey{Name: name, Hash: hash} }
	rec := func(name, hash string) Record { return Record{APIKey: key(name, hash)} }
	type row struct{ Name, Source, Ignored string }
	for _, tc := range []struct {
		name   string
		conf   []config.APIKey
		stored []Record
		want   []row
	}{
		{"none", nil, nil, []row{}},
		{"config only", []config.APIKey{key("x", a)}, nil, []row{{"x", "config", ""}}},
		{"store only", nil, []Record{rec("x", a)}, []row{{"x", "store", ""}}},
		{"both, apart", []config.APIKey{key("x", a)}, []Record{rec("y", b)}, []row{{"x", "config", ""}, {"y", "store", ""}}},
		{"a name in both: the file wins", []config.APIKey{key("x", a)}, []Record{rec("x", b)},
			[]row{{"x", "config", ""}, {"x", "store", "a key of the config file has its name"}}},
		{"a hash in both: the file wins", []config.APIKey{key("x", a)}, []Record{rec("y", a)},
			[]row{{"x", "config", ""}, {"y", "store", "a key of the config file has its hash"}}},
		{"a name twice in the store", nil, []Record{rec("y", b), rec("y", c)},
			[]row{{"y", "store", ""}, {"y", "store", "a key of the key store has its name"}}},
		{"a malformed hash", nil, []Record{rec("y", "sha256:12"), rec("z", "md5:"+strings.Repeat("0", 64))},
			[]row{{"y", "store", "its hash is not sha256: and 64 hex digits"}, {"z", "store", "its hash is not sha256: and 64 hex digits"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := []row{}
			for _, e := range merge(tc.conf, tc.stored) {
				got = append(got, row{e.Name, e.Source, e.Ignored})
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("merge (-want +got):\n%s", d)
			}
		})
	}
}

// fakeStore is a Store in memory; down makes every call fail.
type fakeStore struct {
	mu    sync.Mutex
	keys  []Record
	gone  map[string]bool // revoked names
	down  bool
	lists atomic.Int64
}

var errDown = errors.New("store down")

func (s *fakeStore) List(context.Context) ([]Record, error) {
	s.lists.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return nil, errDown
	}
	return append([]Record(nil), s.keys...), nil
}

func (s *fakeStore) Create(_ context.Context, k config.APIKey) (Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return Record{}, errDown
	}
	for _, r := range s.keys {
		if r.Name == k.Name || r.Hash == k.Hash {
			return Record{}, ErrExists
		}
	}
	if s.gone[k.Name] {
		return Record{}, ErrExists
	}
	r := Record{APIKey: k, Created: time.Unix(1e9, 0)}
	s.keys = append(s.keys, r)
	return r, nil
}

func (s *fakeStore) Revoke(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range s.keys {
		if r.Name == name {
			s.keys = append(s.keys[:i], s.keys[i+1:]...)
			if s.gone == nil {
				s.gone = map[string]bool{}
			}
			s.gone[name] = true
			return nil
		}
	}
	return ErrNotFound
}

func (s *fakeStore) Rotate(_ context.Context, name, hash string) (Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range s.keys {
		if r.Name == name {
			s.keys[i].Hash = hash
			return s.keys[i], nil
		}
	}
	return Record{}, ErrNotFound
}

func (s *fakeStore) Close() error { return nil }

func (s *fakeStore) setDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

type counter struct{ n atomic.Int64 }

func (c *counter) Inc() { c.n.Add(1) }

// testCatalog is the default config's catalog.
func testCatalog(t testing.TB) *catalog.Catalog {
	cfg := config.Default()
	cfg.ApplyDefaults()
	cat, err := catalog.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func noAuto(string) bool { return false }

// status is the HTTP status Authenticate gives secret: 200 or its error's.
func status(d *Directory, secret string) int {
	_, err := d.Authenticate(http.Header{"Authorization": {"Bearer " + secret}}, time.Now())
	if err != nil {
		return apierror.From(err).Status
	}
	return 200
}

func TestDirectory(t *testing.T) {
	ctx := context.Background()
	st := &fakeStore{}
	errs := &counter{}
	var logs bytes.Buffer
	d := NewDirectory(DirectoryOptions{Store: st, Errors: errs, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	cat := testCatalog(t)
	if status(d, "sk-file") != 401 {
		t.Fatal("an empty directory lets a key in")
	}
	d.SetConfig([]config.APIKey{{Name: "file", Hash: Hash("sk-file")}}, cat, noAuto)
	if err := d.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if status(d, "sk-file") != 200 {
		t.Error("the config file's key is refused")
	}

	// Changes through the directory take effect at once.
	if _, err := d.Create(ctx, config.APIKey{Name: "ci", Hash: Hash("sk-ci"), Models: []string{"small"}, Priority: "batch"}); err != nil {
		t.Fatal(err)
	}
	k := d.Named("ci")
	if status(d, "sk-ci") != 200 || k == nil || !k.Batch || k.Allows("qwen3-omni-7b", false) != nil || k.Allows("qwen3-omni-30b", false) == nil {
		t.Errorf("the created key: %d %+v", status(d, "sk-ci"), k)
	}
	for _, tc := range []struct {
		name string
		k    config.APIKey
		want error
	}{
		{"the file's name", config.APIKey{Name: "file", Hash: Hash("sk-other")}, ErrConfigKey},
		{"the file's hash", config.APIKey{Name: "other", Hash: Hash("sk-file")}, ErrExists},
		{"the store's name", config.APIKey{Name: "ci", Hash: Hash("sk-other")}, ErrExists},
	} {
		t.Run("create, "+tc.name, func(t *testing.T) {
			if _, err := d.Create(ctx, tc.k); !errors.Is(err, tc.want) {
				t.Errorf("Create: %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := d.Rotate(ctx, "ci", Hash("sk-ci-2")); err != nil {
		t.Fatal(err)
	}
	if status(d, "sk-ci") != 401 || status(d, "sk-ci-2") != 200 {
		t.Errorf("after rotate: old %d, new %d", status(d, "sk-ci"), status(d, "sk-ci-2"))
	}
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"revoke the file's key", d.Revoke(ctx, "file"), ErrConfigKey},
		{"rotate the file's key", second(d.Rotate(ctx, "file", Hash("x"))), ErrConfigKey},
		{"revoke an unknown key", d.Revoke(ctx, "nope"), ErrNotFound},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}

	// A change made elsewhere takes effect at the next refresh.
	st.Create(ctx, config.APIKey{Name: "elsewhere", Hash: Hash("sk-elsewhere")})
	if status(d, "sk-elsewhere") != 401 {
		t.Error("a key in force before the refresh")
	}
	d.Refresh(ctx)
	if status(d, "sk-elsewhere") != 200 {
		t.Error("a key made elsewhere refused after the refresh")
	}

	// The store down: the keys read last stay, each failure counts, the
	// streak is logged once, and its end too.
	st.setDown(true)
	for range 3 {
		if err := d.Refresh(ctx); !errors.Is(err, errDown) {
			t.Fatalf("Refresh: %v", err)
		}
	}
	if status(d, "sk-ci-2") != 200 || status(d, "sk-file") != 200 {
		t.Error("keys lost while the store is down")
	}
	if n := errs.n.Load(); n != 3 {
		t.Errorf("errors counted: %d, want 3", n)
	}
	if n := strings.Count(logs.String(), "key store read failed"); n != 1 {
		t.Errorf("failures logged %d times, want once:\n%s", n, logs.String())
	}
	if _, err := d.Create(ctx, config.APIKey{Name: "later", Hash: Hash("sk-later")}); !errors.Is(err, errDown) {
		t.Errorf("Create with the store down: %v", err)
	}
	st.setDown(false)
	if err := d.Revoke(ctx, "ci"); err != nil {
		t.Fatal(err)
	}
	if status(d, "sk-ci-2") != 401 {
		t.Error("a revoked key still works")
	}
	if !strings.Contains(logs.String(), "key store read again") {
		t.Errorf("the end of the streak is not logged:\n%s", logs.String())
	}
	if _, err := d.Create(ctx, config.APIKey{Name: "ci", Hash: Hash("sk-ci-3")}); !errors.Is(err, ErrExists) {
		t.Errorf("a revoked key's name taken again: %v", err)
	}

	// A reload that adds a store key's name to the file: the file's wins.
	d.SetConfig([]config.APIKey{{Name: "file", Hash: Hash("sk-file")}, {Name: "elsewhere", Hash: Hash("sk-file-2")}}, cat, noAuto)
	if status(d, "sk-file-2") != 200 || status(d, "sk-elsewhere") != 401 {
		t.Errorf("the file's key %d, the store's of the same name %d", status(d, "sk-file-2"), status(d, "sk-elsewhere"))
	}
	e, _ := d.Entry("elsewhere")
	if e.Source != SourceConfig {
		t.Errorf("Entry: %+v, want the file's", e)
	}
	var ignored []string
	for _, e := range d.Entries() {
		if e.Ignored != "" {
			ignored = append(ignored, e.Source+"/"+e.Name)
		}
	}
	if d := cmp.Diff([]string{"store/elsewhere"}, ignored); d != "" {
		t.Errorf("ignored (-want +got):\n%s", d)
	}
	if !strings.Contains(logs.String(), "API key not in force") {
		t.Errorf("the shadowed key is not logged:\n%s", logs.String())
	}
}

func second[T any](_ T, err error) error { return err }

func TestDirectoryWithoutStore(t *testing.T) {
	ctx := context.Background()
	d := NewDirectory(DirectoryOptions{})
	d.SetConfig([]config.APIKey{{Name: "file", Hash: Hash("sk-file")}}, testCatalog(t), noAuto)
	if err := d.Refresh(ctx); err != nil || status(d, "sk-file") != 200 {
		t.Errorf("Refresh %v; the file's key %d", err, status(d, "sk-file"))
	}
	if _, err := d.Create(ctx, config.APIKey{Name: "x", Hash: Hash("sk-x")}); !errors.Is(err, ErrNoStore) {
		t.Errorf("Create: %v", err)
	}
	if err := d.Revoke(ctx, "file"); !errors.Is(err, ErrConfigKey) {
		t.Errorf("Revoke the file's: %v", err)
	}
	if err := d.Revoke(ctx, "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Revoke unknown: %v", err)
	}
	var none *Directory
	if k, err := none.Authenticate(http.Header{}, time.Now()); k != nil || err != nil || none.Named("x") != nil {
		t.Errorf("a nil directory: %v %v", k, err)
	}
}

// TestDirectoryRun: the refresher reads the store once per interval of
// its clock.
func TestDirectoryRun(t *testing.T) {
	st := &fakeStore{}
	d := NewDirectory(DirectoryOptions{Store: st})
	clk := clock.NewFake(time.Unix(0, 0))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx, 5*time.Second, clk); close(done) }()
	for i := range int64(3) {
		waitWaiter(clk)
		if n := st.lists.Load(); n != i {
			t.Fatalf("reads after %d intervals: %d", i, n)
		}
		clk.Advance(5 * time.Second)
	}
	waitWaiter(clk) // the third read is done once it waits again
	if n := st.lists.Load(); n != 3 {
		t.Errorf("reads after 3 intervals: %d", n)
	}
	cancel()
	<-done
}

// waitWaiter returns once something waits on clk.
func waitWaiter(clk *clock.Fake) {
	for {
		ch := clk.Changed()
		if clk.Waiters() > 0 {
			return
		}
		<-ch
	}
}

// TestDirectoryRefreshCancelled: a read its caller gave up on (the
// gateway closing) is not the store's failure.
func TestDirectoryRefreshCancelled(t *testing.T) {
	errs := &counter{}
	st := &fakeStore{down: true}
	d := NewDirectory(DirectoryOptions{Store: st, Errors: errs})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.Refresh(ctx); !errors.Is(err, context.Canceled) || errs.n.Load() != 0 {
		t.Errorf("Refresh: %v, %d errors counted", err, errs.n.Load())
	}
}
