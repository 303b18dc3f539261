package auth

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/catalog"
	"github.com/omnigate/omnigate/internal/config"
)

func TestAuthenticate(t *testing.T) {
	cfg := config.Default()
	cfg.ApplyDefaults()
	cat, err := catalog.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ks := New(config.Auth{Keys: []config.APIKey{
		{Name: "all", Hash: Hash("sk-all")},
		{Name: "small-only", Hash: Hash("sk-small"), Models: []string{"small"}, Priority: "batch"},
		{Name: "auto-only", Hash: Hash("sk-auto"), Models: []string{"auto"}},
		{Name: "old", Hash: Hash("sk-old"), Expires: "2026-01-01"},
	}}, cat, func(n string) bool { return n == "auto" })
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, header, key string
		status            int
	}{
		{"none", "", "", 401},
		{"not bearer", "Basic sk-all", "", 401},
		{"unknown", "Bearer sk-nope", "", 401},
		{"expired", "Bearer sk-old", "", 401},
		{"good", "Bearer sk-all", "all", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.header != "" {
				h.Set("Authorization", tc.header)
			}
			k, err := ks.Authenticate(h, now)
			if e := apierror.From(err); tc.status != 0 && (e.Status != tc.status || e.Code != "invalid_api_key") {
				t.Errorf("error %+v, want %d invalid_api_key", e, tc.status)
			}
			if k.NameOr() != tc.key {
				t.Errorf("key %q, want %q", k.NameOr(), tc.key)
			}
		})
	}
	small, _ := ks.Authenticate(http.Header{"Authorization": {"Bearer sk-small"}}, now)
	autoKey, _ := ks.Authenticate(http.Header{"Authorization": {"Bearer sk-auto"}}, now)
	all, _ := ks.Authenticate(http.Header{"Authorization": {"Bearer sk-all"}}, now)
	for _, tc := range []struct {
		name  string
		k     *Key
		model string
		auto  bool
		ok    bool
	}{
		{"small by its name", small, "qwen3-omni-7b", false, true},
		{"small, the large tier", small, "qwen3-omni-30b", false, false},
		{"small, auto", small, "qwen3-omni-7b", true, false},
		{"auto key, auto", autoKey, "qwen3-omni-30b", true, true},
		{"auto key, named", autoKey, "qwen3-omni-30b", false, false},
		{"every model", all, "qwen3-omni-30b", false, true},
		{"no keys", nil, "qwen3-omni-30b", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.k.Allows(tc.model, tc.auto)
			if (err == nil) != tc.ok {
				t.Errorf("Allows: %v, want ok=%v", err, tc.ok)
			}
			if e := apierror.From(err); err != nil && (e.Status != 403 || e.Param != "model") {
				t.Errorf("error %+v, want 403 naming model", e)
			}
		})
	}
	if !small.Batch || all.Batch {
		t.Error("priorities not compiled")
	}
	if ks.Named("small-only") != small || ks.Named("gone") != nil {
		t.Error("Named")
	}
	var none *Keys
	if k, err := none.Authenticate(http.Header{}, now); k != nil || err != nil {
		t.Errorf("no keys: %v %v", k, err)
	}
}

// BenchmarkAuthenticate is the core's check of a key: through the
// directory, 500 keys from the config file and 501 from a store (1,001,
// as when it was the config's keys alone).
func BenchmarkAuthenticate(b *testing.B) {
	var conf []config.APIKey
	var stored []Record
	for i := range 1000 {
		k := config.APIKey{Name: "k" + strconv.Itoa(i), Hash: Hash("sk-" + strconv.Itoa(i))}
		if i%2 == 0 {
			conf = append(conf, k)
		} else {
			stored = append(stored, Record{APIKey: k})
		}
	}
	stored = append(stored, Record{APIKey: config.APIKey{Name: "mine", Hash: Hash("sk-mine-0123456789abcdef"), Models: []string{"small"}}})
	d := NewDirectory(DirectoryOptions{Store: &fakeStore{keys: stored}})
	d.SetConfig(conf, testCatalog(b), noAuto)
	if err := d.Refresh(context.Background()); err != nil {
		b.Fatal(err)
	}
	h := http.Header{"Authorization": {"Bearer sk-mine-0123456789abcdef"}}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		k, err := d.Authenticate(h, now)
		if err != nil || k.Allows("qwen3-omni-7b", false) != nil {
			b.Fatal(err)
		}
	}
}
