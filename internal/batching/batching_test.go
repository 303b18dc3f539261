package batching

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/backend"
	"github.com/omnigate/omnigate/internal/clock"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/sim"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// upstream is the simulator on a real HTTP server, behind the OpenAI
// backend, with the embeddings and completions calls it saw.
type upstream struct {
	be     backend.Backend
	calls  atomic.Int64
	mu     sync.Mutex
	inputs []int // inputs (or prompts) per call
	// hook, when set, may outcome a call itself (returns true).
	hook atomic.Pointer[func(w http.ResponseWriter, r *http.Request, body []byte) bool]
}

func newUpstream(tb testing.TB, profile string) *upstream {
	tb.Helper()
	p, err := sim.LoadProfile(profile)
	if err != nil {
		tb.Fatal(err)
	}
	eng := sim.New(p, sim.Options{ModelName: "emb"})
	u := &upstream{}
	h := eng.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.HasSuffix(r.URL.Path, "/embeddings") || strings.HasSuffix(r.URL.Path, "/v1/completions") {
			u.calls.Add(1)
			var b struct{ Input, Prompt json.RawMessage }
			json.Unmarshal(body, &b)
			in := b.Input
			if in == nil {
				in = b.Prompt
			}
			n := 1
			if bytes.HasPrefix(in, []byte("[")) {
				var xs []json.RawMessage
				json.Unmarshal(in, &xs)
				n = len(xs)
			}
			u.mu.Lock()
			u.inputs = append(u.inputs, n)
			u.mu.Unlock()
		}
		if f := u.hook.Load(); f != nil && (*f)(w, r, body) {
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.ServeHTTP(w, r)
	}))
	tb.Cleanup(func() { srv.Close(); eng.Close() })
	be, err := backend.NewOpenAI(config.Deployment{Name: "d", Kind: "openai", URL: srv.URL + "/v1"}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	u.be = be
	return u
}

func (u *upstream) setHook(f func(w http.ResponseWriter, r *http.Request, body []byte) bool) {
	u.hook.Store(&f)
}

func (u *upstream) reset() []int {
	u.mu.Lock()
	defer u.mu.Unlock()
	in := u.inputs
	u.inputs = nil
	u.calls.Store(0)
	return in
}

func embReq(body string) *backend.Request {
	return &backend.Request{Endpoint: "embeddings", Body: []byte(body), PublicModel: "emb", RequestID: "r"}
}

// outcome is what a Do gave: the body of a response, or the error.
type outcome struct {
	status int
	body   string
	err    error
}

func do(b backend.Backend, ctx context.Context, r *backend.Request) outcome {
	resp, err := b.Do(ctx, r)
	if err != nil {
		return outcome{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return outcome{err: err}
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return outcome{err: fmt.Errorf("Content-Type %q", ct)}
	}
	if cl := resp.Header.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(body)) {
		return outcome{err: fmt.Errorf("Content-Length %s for %d bytes", cl, len(body))}
	}
	return outcome{status: resp.StatusCode, body: string(body)}
}

// waitJoined waits until n members wait in b's open batches.
func waitJoined(t *testing.T, b *batcher, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Microsecond) {
		b.mu.Lock()
		got := 0
		for _, bt := range b.open {
			got += len(bt.members)
		}
		b.mu.Unlock()
		if got == n {
			return
		}
	}
	t.Fatalf("%d members never joined", n)
}

// concurrently runs Do for each body at once and returns the answers in order.
func concurrently(b backend.Backend, ctx context.Context, bodies []string) []outcome {
	return concurrentlyDo(b, ctx, requests(embReq, bodies))
}

// concurrentlyDo runs Do for each request at once and returns the answers
// in order.
func concurrentlyDo(b backend.Backend, ctx context.Context, rs []*backend.Request) []outcome {
	out := make([]outcome, len(rs))
	var wg sync.WaitGroup
	for i, r := range rs {
		wg.Go(func() { out[i] = do(b, ctx, r) })
	}
	wg.Wait()
	return out
}

func requests(mk func(string) *backend.Request, bodies []string) []*backend.Request {
	out := make([]*backend.Request, len(bodies))
	for i, body := range bodies {
		out[i] = mk(body)
	}
	return out
}

func direct(t *testing.T, u *upstream, bodies []string) []outcome {
	t.Helper()
	out := make([]outcome, len(bodies))
	for i, body := range bodies {
		out[i] = do(u.be, context.Background(), embReq(body))
		if out[i].err != nil {
			t.Fatalf("direct %s: %v", body, out[i].err)
		}
	}
	u.reset()
	return out
}

// runBatched runs bodies through a batcher on a fake clock: all join,
// then the window passes.
func runBatched(t *testing.T, b *batcher, clk *clock.Fake, bodies []string, joined int) []outcome {
	t.Helper()
	return runBatchedDo(t, b, clk, requests(embReq, bodies), joined)
}

// runBatchedDo is runBatched for any requests.
func runBatchedDo(t *testing.T, b *batcher, clk *clock.Fake, rs []*backend.Request, joined int) []outcome {
	t.Helper()
	done := make(chan []outcome)
	go func() { done <- concurrentlyDo(b, context.Background(), rs) }()
	waitJoined(t, b, joined)
	clk.Advance(b.window)
	return <-done
}

func usageOf(t *testing.T, body string) int {
	t.Helper()
	var v struct {
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	return v.Usage.PromptTokens
}

func TestMergedAnswersMatchDirect(t *testing.T) {
	inputs := []string{
		`"hello world"`,
		`["a tokenizer test", "second, input!"]`,
		`"naïve café — 東京 ok"`,
		`["line\nbreak \"quoted\" \u00e9", "x"]`,
		`"internationalization"`,
		`["one", "two", "three"]`,
		`"!!!"`,
		`"the quick brown fox jumps over the lazy dog"`,
	}
	for _, tt := range []struct{ name, params string }{
		{"float", `"model":"emb"`},
		{"base64", `"model":"emb","encoding_format":"base64"`},
		{"dimensions", `"model":"emb","dimensions":8,"user":"u1"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u := newUpstream(t, "instant")
			var bodies []string
			for i, in := range inputs {
				if i%2 == 0 { // input first and last: spans move
					bodies = append(bodies, `{"input":`+in+`,`+tt.params+`}`)
				} else {
					bodies = append(bodies, `{`+tt.params+`,"input":`+in+`}`)
				}
			}
			want := direct(t, u, bodies)
			clk := clock.NewFake(time.Unix(0, 0))
			b := wrap(u.be, config.Batching{Window: config.Duration(time.Millisecond), MaxInputs: 64}, clk)
			got := runBatched(t, b, clk, bodies, len(bodies))
			if diff := cmp.Diff(want, got, cmp.AllowUnexported(outcome{}), cmp.Comparer(func(a, b error) bool { return a == b })); diff != "" {
				t.Errorf("batched answers differ from direct ones (-want +got):\n%s", diff)
			}
			// Two batches: each key's own (input first, input last).
			if in := u.reset(); len(in) != 2 {
				t.Errorf("upstream saw %d calls (inputs %v), want 2", len(in), in)
			}
		})
	}
}

func TestUsageSumsToTotal(t *testing.T) {
	// A tokenizer unlike the estimate: the parts still sum to the total.
	for _, tt := range []struct {
		total   int
		weights []int
	}{
		{10, []int{1, 1, 1}}, {7, []int{0, 0}}, {100, []int{3, 5, 0, 9}}, {5, []int{5}}, {1, []int{2, 2, 2}},
	} {
		parts := splitTotal(tt.total, tt.weights)
		sum := 0
		for _, p := range parts {
			sum += p
		}
		if sum != tt.total {
			t.Errorf("splitTotal(%d, %v) = %v, sums to %d", tt.total, tt.weights, parts, sum)
		}
	}
	if got := splitTotal(9, []int{2, 3, 4}); !cmp.Equal(got, []int{2, 3, 4}) {
		t.Errorf("exact weights: got %v", got)
	}
}

func TestKeysDoNotMerge(t *testing.T) {
	u := newUpstream(t, "instant")
	bodies := []string{
		`{"model":"emb","input":"a"}`,
		`{"model":"emb","input":"b"}`,
		`{"model":"emb","input":"c","dimensions":4}`,
		`{"model":"emb","input":"d","encoding_format":"base64"}`,
		`{"model":"emb","input":"e","user":"other"}`,
	}
	want := direct(t, u, bodies)
	clk := clock.NewFake(time.Unix(0, 0))
	b := wrap(u.be, config.Batching{Window: config.Duration(time.Millisecond), MaxInputs: 64}, clk)
	got := runBatched(t, b, clk, bodies, len(bodies))
	for i := range want {
		if want[i] != got[i] {
			t.Errorf("%s: got %+v, want %+v", bodies[i], got[i], want[i])
		}
	}
	// a and b merge; the other three are alone in their batches.
	if in := u.reset(); len(in) != 4 {
		t.Errorf("upstream saw %d calls (inputs %v), want 4", len(in), in)
	}
}

func TestMaxInputsSplitsBatches(t *testing.T) {
	u := newUpstream(t, "instant")
	clk := clock.NewFake(time.Unix(0, 0))
	b := wrap(u.be, config.Batching{Window: config.Duration(time.Second), MaxInputs: 4}, clk)

	// Ten single inputs: two full batches go at once, two wait the window.
	var bodies []string
	for i := range 10 {
		bodies = append(bodies, `{"model":"emb","input":"word`+strconv.Itoa(i)+`"}`)
	}
	want := direct(t, u, bodies)
	done := make(chan []outcome)
	go func() { done <- concurrently(b, context.Background(), bodies) }()
	waitCalls(t, u, 2) // the full batches went at once
	waitJoined(t, b, 2)
	clk.Advance(b.window)
	got := <-done
	for i := range want {
		if want[i] != got[i] {
			t.Errorf("%s: got %+v, want %+v", bodies[i], got[i], want[i])
		}
	}
	in := u.reset()
	if diff := cmp.Diff([]int{2, 4, 4}, sorted(in)); diff != "" {
		t.Errorf("inputs per upstream call (-want +got):\n%s", diff)
	}

	// Too many inputs for a batch: straight through, no window.
	many := `{"model":"emb","input":["a","b","c","d","e"]}`
	if a := do(b, context.Background(), embReq(many)); a.err != nil || u.calls.Load() != 1 {
		t.Errorf("a request of 5 inputs: %v, %d calls", a.err, u.calls.Load())
	}
}

func sorted(xs []int) []int {
	out := append([]int(nil), xs...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestPassThrough(t *testing.T) {
	checkPassThrough(t, 8, []passCase{
		{"token ids", embReq(`{"model":"emb","input":[1,2,3]}`)},
		{"token arrays", embReq(`{"model":"emb","input":[[1,2],[3]]}`)},
		{"mixed array", embReq(`{"model":"emb","input":["a",1]}`)},
		{"not json", embReq(`{"model":"emb","input":"a"`)},
		{"two inputs", embReq(`{"model":"emb","input":"a","input":"b"}`)},
		{"empty array", embReq(`{"model":"emb","input":[]}`)},
		{"chat completions", &backend.Request{Endpoint: "chat/completions", Body: []byte(`{"model":"emb","messages":[{"role":"user","content":"a"}],"max_tokens":2}`)}},
		{"stream", &backend.Request{Endpoint: "embeddings", Stream: true, Body: []byte(`{"model":"emb","input":"a"}`)}},
	})
}

// passCase is a request that must go straight through, never waiting in
// a batch.
type passCase struct {
	name string
	r    *backend.Request
}

// checkPassThrough sends each case through a wrapper whose window never
// ends (its clock is not advanced): a request that waited for a batch
// would hang.
func checkPassThrough(t *testing.T, maxInputs int, cases []passCase) {
	t.Helper()
	u := newUpstream(t, "instant")
	clk := clock.NewFake(time.Unix(0, 0))
	b := wrap(u.be, config.Batching{Window: config.Duration(time.Second), MaxInputs: maxInputs}, clk)
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			u.reset()
			resp, err := b.Do(context.Background(), tt.r)
			if err == nil {
				resp.Body.Close()
			}
			if u.calls.Load() > 1 || clk.Waiters() != 0 {
				t.Errorf("calls %d, waiters %d", u.calls.Load(), clk.Waiters())
			}
		})
	}
}

func TestErrorsReachEveryMember(t *testing.T) {
	bodies := []string{`{"model":"emb","input":"a"}`, `{"model":"emb","input":["b","c"]}`, `{"model":"emb","input":"d"}`}
	for _, tt := range []struct {
		name    string
		outcome func(w http.ResponseWriter)
		status  int
		code    string
	}{
		{"503", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(503)
			io.WriteString(w, `{"error":{"message":"busy","type":"service_unavailable_error"}}`)
		}, 503, ""},
		{"not json", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"object":"list","data":[{"index":0,`)
		}, 502, backend.CodeInvalidResponse},
		{"count mismatch", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[1]}],"model":"emb","usage":{"prompt_tokens":4,"total_tokens":4}}`)
		}, 502, backend.CodeInvalidResponse},
		{"index twice", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			d := `{"object":"embedding","index":0,"embedding":[1]}`
			io.WriteString(w, `{"object":"list","data":[`+d+`,`+d+`,`+d+`,`+d+`],"model":"emb"}`)
		}, 502, backend.CodeInvalidResponse},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u := newUpstream(t, "instant")
			u.setHook(func(w http.ResponseWriter, r *http.Request, body []byte) bool {
				tt.outcome(w)
				return true
			})
			clk := clock.NewFake(time.Unix(0, 0))
			b := wrap(u.be, config.Batching{Window: config.Duration(time.Millisecond), MaxInputs: 64}, clk)
			got := runBatched(t, b, clk, bodies, len(bodies))
			var seen []*apierror.Error
			for i, a := range got {
				var ae *apierror.Error
				if !errors.As(a.err, &ae) || ae.Status != tt.status || tt.code != "" && ae.Code != tt.code {
					t.Errorf("member %d: got %+v, want a %d %s", i, a, tt.status, tt.code)
					continue
				}
				for _, s := range seen {
					if s == ae {
						t.Errorf("member %d shares its *apierror.Error", i)
					}
				}
				seen = append(seen, ae)
			}
			if n := u.calls.Load(); n != 1 {
				t.Errorf("upstream calls %d, want 1", n)
			}
		})
	}
}

func TestClientErrorFailsOnlyItsMember(t *testing.T) {
	u := newUpstream(t, "instant")
	long := `"` + strings.Repeat("! ", 40000) + `"` // past max_model_len
	bodies := []string{`{"model":"emb","input":"a"}`, `{"model":"emb","input":` + long + `}`, `{"model":"emb","input":"b"}`}
	want := []outcome{do(u.be, context.Background(), embReq(bodies[0])), {}, do(u.be, context.Background(), embReq(bodies[2]))}
	u.reset()
	clk := clock.NewFake(time.Unix(0, 0))
	b := wrap(u.be, config.Batching{Window: config.Duration(time.Millisecond), MaxInputs: 64}, clk)
	got := runBatched(t, b, clk, bodies, len(bodies))
	for _, i := range []int{0, 2} {
		if got[i] != want[i] {
			t.Errorf("member %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	var ae *apierror.Error
	if !errors.As(got[1].err, &ae) || ae.Status != 400 {
		t.Errorf("the long input: got %+v, want a 400", got[1])
	}
	if n := u.calls.Load(); n != 4 { // the merged call, then each alone
		t.Errorf("upstream calls %d, want 4", n)
	}
}

func TestCancelWhileWaiting(t *testing.T) {
	u := newUpstream(t, "instant")
	clk := clock.NewFake(time.Unix(0, 0))
	b := wrap(u.be, config.Batching{Window: config.Duration(time.Millisecond), MaxInputs: 64}, clk)
	bodies := []string{`{"model":"emb","input":"a"}`, `{"model":"emb","input":"b"}`, `{"model":"emb","input":["c","d"]}`}
	want := direct(t, u, bodies)

	ctx, cancel := context.WithCancel(context.Background())
	left := make(chan outcome)
	go func() { left <- do(b, ctx, embReq(bodies[1])) }()
	waitJoined(t, b, 1)
	done := make(chan []outcome)
	go func() { done <- concurrently(b, context.Background(), []string{bodies[0], bodies[2]}) }()
	waitJoined(t, b, 3)
	cancel()
	var ae *apierror.Error
	if a := <-left; !errors.As(a.err, &ae) || ae.Code != backend.CodeClientClosed {
		t.Errorf("cancelled member: got %+v, want %s", a, backend.CodeClientClosed)
	}
	waitJoined(t, b, 2)
	clk.Advance(b.window)
	got := <-done
	if got[0] != want[0] || got[1] != want[2] {
		t.Errorf("others: got %+v, want %+v", got, []outcome{want[0], want[2]})
	}
	if in := u.reset(); !cmp.Equal(in, []int{3}) {
		t.Errorf("inputs per upstream call %v, want [3]", in)
	}

	// All leave: the batch goes away without a call.
	ctx, cancel = context.WithCancel(context.Background())
	go func() { left <- do(b, ctx, embReq(bodies[0])) }()
	waitJoined(t, b, 1)
	cancel()
	<-left
	waitJoined(t, b, 0)
	clk.Advance(b.window)
	if n := u.calls.Load(); n != 0 {
		t.Errorf("upstream calls %d after every member left, want 0", n)
	}
}

// blockUntil makes u's calls wait for release, or for the caller to leave
// (reported on gone).
func blockUntil(u *upstream, release <-chan struct{}, gone chan<- struct{}) {
	u.setHook(func(w http.ResponseWriter, r *http.Request, body []byte) bool {
		select {
		case <-release:
			return false
		case <-r.Context().Done():
			gone <- struct{}{}
			return true
		}
	})
}

func waitCalls(t *testing.T, u *upstream, n int64) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); u.calls.Load() < n; time.Sleep(100 * time.Microsecond) {
		if time.Now().After(deadline) {
			t.Fatalf("upstream calls %d, want %d", u.calls.Load(), n)
		}
	}
}

func TestCancelAfterSend(t *testing.T) {
	a, c := `{"model":"emb","input":"a"}`, `{"model":"emb","input":"c"}`
	t.Run("one leaves", func(t *testing.T) {
		u := newUpstream(t, "instant")
		release, gone := make(chan struct{}), make(chan struct{}, 1)
		blockUntil(u, release, gone)
		clk := clock.NewFake(time.Unix(0, 0))
		b := wrap(u.be, config.Batching{Window: config.Duration(time.Millisecond), MaxInputs: 64}, clk)
		ctxA, cancelA := context.WithCancel(context.Background())
		resA, resC := make(chan outcome, 1), make(chan outcome, 1)
		go func() { resA <- do(b, ctxA, embReq(a)) }()
		go func() { resC <- do(b, context.Background(), embReq(c)) }()
		waitJoined(t, b, 2)
		clk.Advance(b.window)
		waitCalls(t, u, 1)
		cancelA()
		var ae *apierror.Error
		if got := <-resA; !errors.As(got.err, &ae) || ae.Code != backend.CodeClientClosed {
			t.Errorf("cancelled member got %+v", got)
		}
		close(release)
		got := <-resC
		if got.err != nil || usageOf(t, got.body) != 1 {
			t.Errorf("remaining member: %+v", got)
		}
	})
	t.Run("all leave", func(t *testing.T) {
		u := newUpstream(t, "instant")
		gone := make(chan struct{}, 1)
		blockUntil(u, nil, gone)
		clk := clock.NewFake(time.Unix(0, 0))
		b := wrap(u.be, config.Batching{Window: config.Duration(time.Millisecond), MaxInputs: 64}, clk)
		ctx, cancel := context.WithCancel(context.Background())
		res := make(chan outcome, 2)
		for _, body := range []string{a, c} {
			go func() { res <- do(b, ctx, embReq(body)) }()
		}
		waitJoined(t, b, 2)
		clk.Advance(b.window)
		waitCalls(t, u, 1)
		cancel()
		<-res
		<-res
		select {
		case <-gone:
		case <-time.After(5 * time.Second):
			t.Error("the merged call was not cancelled when every member left")
		}
	})
}

func TestMergeRequest(t *testing.T) {
	d1, d2 := time.Unix(100, 0), time.Unix(200, 0)
	mk := func(body string, deadline time.Time) *member {
		r := embReq(body)
		r.Deadline = deadline
		in, ok := parseRequest(r, 64)
		if !ok {
			t.Fatalf("%s: not batchable", body)
		}
		return &member{r: r, in: in}
	}
	body := `{"input": "x" , "model":"emb"}`
	first := mk(body, d1)
	first.r.ModelSpan = [2]int{strings.Index(body, `"emb"`), strings.Index(body, `"emb"`) + 5}
	got := mergeRequest([]*member{first, mk(`{"model":"emb","input":["y","z\n"]}`, d2)})
	if want := `{"input": ["x","y","z\n"] , "model":"emb"}`; string(got.Body) != want {
		t.Errorf("body %s, want %s", got.Body, want)
	}
	if m := string(got.Body[got.ModelSpan[0]:got.ModelSpan[1]]); m != `"emb"` {
		t.Errorf("ModelSpan points at %s", m)
	}
	if !got.Deadline.Equal(d2) {
		t.Errorf("deadline %v, want the latest, %v", got.Deadline, d2)
	}
	if got := mergeRequest([]*member{mk(body, d1), mk(body, time.Time{})}); !got.Deadline.IsZero() {
		t.Errorf("deadline %v, want none when a member has none", got.Deadline)
	}
}

func TestUsageOfAnotherTokenizer(t *testing.T) {
	// An engine whose counts are not the estimate (special tokens, another
	// tokenizer): the parts are proportional and sum to its total.
	u := newUpstream(t, "instant")
	u.setHook(func(w http.ResponseWriter, r *http.Request, body []byte) bool {
		w.Header().Set("Content-Type", "application/json")
		d := func(i int) string { return `{"object":"embedding","index":` + strconv.Itoa(i) + `,"embedding":"AAAA"}` }
		// Out of order, as an engine may answer.
		io.WriteString(w, `{"object":"list","data":[`+d(2)+`,`+d(0)+`,`+d(1)+`],"model":"emb","usage":{"prompt_tokens":1001,"total_tokens":1001}}`)
		return true
	})
	clk := clock.NewFake(time.Unix(0, 0))
	b := wrap(u.be, config.Batching{Window: config.Duration(time.Millisecond), MaxInputs: 64}, clk)
	bodies := []string{`{"model":"emb","input":"hello"}`, `{"model":"emb","input":["a b c d","e f g h"]}`}
	got := runBatched(t, b, clk, bodies, len(bodies))
	sum := 0
	for i, g := range got {
		if g.err != nil {
			t.Fatalf("member %d: %v", i, g.err)
		}
		sum += usageOf(t, g.body)
	}
	if sum != 1001 || usageOf(t, got[0].body) != 111 { // 1 of 9 estimated tokens
		t.Errorf("usage parts %d and %d, want 111 and 890", usageOf(t, got[0].body), usageOf(t, got[1].body))
	}
	want := `{"object":"list","data":[{"object":"embedding","index":0,"embedding":"AAAA"},{"object":"embedding","index":1,"embedding":"AAAA"}],"model":"emb","usage":{"prompt_tokens":890,"total_tokens":890}}`
	if got[1].body != want {
		t.Errorf("second member's answer\n%s\nwant\n%s", got[1].body, want)
	}
}
