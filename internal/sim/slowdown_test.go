package sim

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/clock"
)

// The factor stretches whole steps, prefill and decode alike.
func TestSlowdownStretchesSteps(t *testing.T) {
	for _, f := range []float64{1, 3, 0.5} {
		t.Run(fmt.Sprint(f), func(t *testing.T) {
			p := testProfile()
			c := newCore(p)
			c.slowdown = f
			for range 2 {
				c.add(&seq{prompt: 100, target: 5})
			}
			prefill := c.plan()
			c.complete(prefill)
			decode := c.plan()
			base := p.DecodeBase + 2*p.DecodePerSeq
			want := []time.Duration{time.Duration(float64(base+200*p.PrefillPerToken) * f), time.Duration(float64(base) * f)}
			if diff := cmp.Diff(want, []time.Duration{prefill.dur, decode.dur}); diff != "" {
				t.Errorf("factor %g: prefill and decode step (-want +got):\n%s", f, diff)
			}
		})
	}
}

func TestSetSlowdown(t *testing.T) {
	e := New(testProfile(), Options{Clock: clock.NewFake(time.Unix(0, 0))})
	defer e.Close()
	if got := e.Slowdown(); got != 1 {
		t.Errorf("initial factor %g, want 1", got)
	}
	for _, f := range []float64{0, -1, math.NaN(), math.Inf(1), 1001} {
		if err := e.SetSlowdown(f); err == nil {
			t.Errorf("SetSlowdown(%g) accepted", f)
		}
	}
	if err := e.SetSlowdown(2.5); err != nil || e.Slowdown() != 2.5 {
		t.Errorf("SetSlowdown(2.5): %v, factor %g", err, e.Slowdown())
	}
}

// POST /sim/slowdown makes the same request take f times as long in
// virtual time; GET reports the factor.
func TestSlowdownOverHTTP(t *testing.T) {
	p := mustProfile(t, "qwen3-omni-7b")
	off := false
	p.PrefixCaching = &off // the same prompt twice must cost the same
	clk := clock.NewFake(time.Unix(0, 0))
	_, srv := startEngine(t, p, Options{Clock: clk})
	done := make(chan struct{})
	defer close(done)
	go drive(clk, done)
	timed := func() time.Duration {
		start := clk.Now()
		bodyOf(t, srv, `{"messages":[{"role":"user","content":"What is the capital of France?"}]}`)
		return clk.Now().Sub(start)
	}
	base := timed()
	resp, b := post(t, srv, "/sim/slowdown", `{"factor": 3}`)
	if resp.StatusCode != 200 || string(b) != `{"factor":3}`+"\n" {
		t.Fatalf("POST /sim/slowdown: %d %s", resp.StatusCode, b)
	}
	if got := get(t, srv, "/sim/slowdown"); got != `{"factor":3}`+"\n" {
		t.Errorf("GET /sim/slowdown: %s", got)
	}
	if slow := timed(); slow != 3*base {
		t.Errorf("with factor 3: %v, at 1: %v; want %v", slow, base, 3*base)
	}
}

func TestSlowdownRejectsBadInput(t *testing.T) {
	_, srv := startEngine(t, testProfile(), Options{Clock: clock.NewFake(time.Unix(0, 0))})
	for _, tc := range []struct {
		body  string
		param *string
	}{
		{`{"factor": 0}`, ptr("factor")},
		{`{"factor": -2}`, ptr("factor")},
		{`{"factor": 1e9}`, ptr("factor")},
		{`{"factor": "3"}`, ptr("factor")},
		{`{}`, ptr("factor")},
		{`three`, nil},
	} {
		t.Run(tc.body, func(t *testing.T) {
			resp, b := post(t, srv, "/sim/slowdown", tc.body)
			var e struct {
				Error struct {
					Type  string
					Param *string
				}
			}
			if err := json.Unmarshal(b, &e); err != nil || resp.StatusCode != 400 || e.Error.Type != "invalid_request_error" || !cmp.Equal(tc.param, e.Error.Param) {
				t.Errorf("%d %s", resp.StatusCode, b)
			}
		})
	}
	if got := get(t, srv, "/sim/slowdown"); got != `{"factor":1}`+"\n" {
		t.Errorf("after bad input: %s", got)
	}
}

func ptr[T any](v T) *T { return &v }
