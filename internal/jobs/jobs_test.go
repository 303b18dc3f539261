package jobs

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/config"
)

// fakeExec answers each request with what answer says for its body.
type fakeExec struct {
	mu     sync.Mutex
	calls  map[string]int // by body
	answer func(body string, n int) Answer
	block  chan struct{} // when set, Execute waits on it (or ctx)
	ctxErr atomic.Int32  // runs that ended with their context
}

func (f *fakeExec) Check(endpoint string, body []byte, _ http.Header, _ bool) (Checked, error) {
	var v struct {
		Model  string `json:"model"`
		Stream bool   `json:"stream"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return Checked{}, apierror.Invalid("", "We could not parse the JSON body of your request.")
	}
	c := Checked{Model: v.Model, Stream: v.Stream}
	if v.Model == "" {
		return Checked{}, apierror.Invalid("model", "Missing required parameter: 'model'.")
	}
	if v.Model == "nope" {
		e := apierror.New(http.StatusNotFound, "model_not_found", "The model `nope` does not exist.")
		e.Param = "model"
		return c, e
	}
	return c, nil
}

func (f *fakeExec) Execute(ctx context.Context, endpoint string, body []byte, h http.Header, id string) Answer {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[string(body)]++
	n := f.calls[string(body)]
	f.mu.Unlock()
	if h.Get("X-Omnigate-Priority") != "batch" {
		return Answer{Status: 500, Body: []byte(`{"error":{"message":"not batch priority"}}`)}
	}
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			f.ctxErr.Add(1)
			return Answer{Err: ctx.Err()}
		}
	}
	if f.answer != nil {
		return f.answer(string(body), n)
	}
	return Answer{Status: 200, Body: []byte(`{"echo":` + string(body) + `}`), Model: "m", Deployment: "d"}
}

func (f *fakeExec) count(body string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[body]
}

func testConfig() config.Jobs {
	c := config.Config{}
	c.ApplyDefaults()
	j := c.Jobs
	j.Workers, j.Lease = 4, config.Duration(3*time.Second)
	return j
}

func start(t *testing.T, ex Executor, mod func(*config.Jobs, *Options)) (*Service, *memBackend) {
	t.Helper()
	m := newMem(3 * time.Second)
	cfg := testConfig()
	var opt Options
	if mod != nil {
		mod(&cfg, &opt)
	}
	s := New(cfg, func(context.Context) (*Backend, error) { return m.backend(), nil }, ex, opt)
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Start(ctx, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		c, stop := context.WithTimeout(context.Background(), 5*time.Second)
		defer stop()
		s.Close(c)
	})
	return s, m
}

// waitJob polls the job until it is final.
func waitJob(t *testing.T, s *Service, id string, h ...string) *Job {
	t.Helper()
	var hdr http.Header
	if len(h) > 0 {
		hdr = http.Header{"Authorization": h}
	}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		j, err := s.Get(context.Background(), id, hdr)
		if err != nil {
			t.Fatal(err)
		}
		if j.Status.Final() {
			return j
		}
	}
	t.Fatalf("job %s not final in time", id)
	return nil
}

func TestJobRuns(t *testing.T) {
	ex := &fakeExec{}
	s, _ := start(t, ex, nil)
	body := `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	j, err := s.Submit(context.Background(), "/v1/chat/completions", []byte(body), http.Header{"Authorization": {"Bearer k"}})
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != Queued || !strings.HasPrefix(j.ID, "job_") || j.Model != "m" {
		t.Fatalf("submitted %+v", j)
	}
	got := waitJob(t, s, j.ID, "Bearer k")
	want := &Response{StatusCode: 200, RequestID: j.ID, Body: json.RawMessage(`{"echo":` + body + `}`), Model: "m", Deployment: "d"}
	if diff := cmp.Diff(want, got.Response); diff != "" || got.Status != Succeeded || got.Attempts != 1 {
		t.Errorf("status %s attempts %d response (-want +got):\n%s", got.Status, got.Attempts, diff)
	}
	// Another key does not see it.
	if _, err := s.Get(context.Background(), j.ID, http.Header{"Authorization": {"Bearer other"}}); apierror.From(err).Status != 404 {
		t.Errorf("another key's Get: %v, want 404", err)
	}
}

func TestSubmitRejects(t *testing.T) {
	s, _ := start(t, &fakeExec{}, nil)
	for _, tc := range []struct{ name, body, param string }{
		{"no model", `{"messages":[]}`, "model"},
		{"unknown model", `{"model":"nope"}`, "model"},
		{"stream", `{"model":"m","stream":true}`, "stream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Submit(context.Background(), "/v1/chat/completions", []byte(tc.body), nil)
			if e := apierror.From(err); e.Param != tc.param || e.Status/100 != 4 {
				t.Errorf("error %+v, want a 4xx naming %s", e, tc.param)
			}
		})
	}
	_, err := s.Submit(context.Background(), "/v1/chat/completions", []byte(`{"model":"m"}`), http.Header{HeaderWebhook: {"http://127.0.0.1:1/x"}})
	if e := apierror.From(err); e.Param != HeaderWebhook {
		t.Errorf("webhook without a secret: %+v", e)
	}
}

func TestJobRetriesBusyThenSucceeds(t *testing.T) {
	ex := &fakeExec{answer: func(body string, n int) Answer {
		if n == 1 {
			return Answer{Status: 503, Body: []byte(`{"error":{"message":"busy"}}`)}
		}
		return Answer{Status: 200, Body: []byte(`{"ok":true}`)}
	}}
	s, _ := start(t, ex, nil)
	j, err := s.Submit(context.Background(), "/v1/completions", []byte(`{"model":"m","prompt":"x"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := waitJob(t, s, j.ID)
	if got.Status != Succeeded || got.Attempts != 2 || string(got.Response.Body) != `{"ok":true}` {
		t.Errorf("got %s after %d attempts: %s", got.Status, got.Attempts, got.Response.Body)
	}
}

func TestJobFailsOnClientError(t *testing.T) {
	ex := &fakeExec{answer: func(string, int) Answer {
		return Answer{Status: 400, Body: []byte(`{"error":{"message":"bad","param":"temperature"}}`)}
	}}
	s, _ := start(t, ex, nil)
	j, _ := s.Submit(context.Background(), "/v1/completions", []byte(`{"model":"m","prompt":"x"}`), nil)
	got := waitJob(t, s, j.ID)
	if got.Status != Failed || got.Attempts != 1 || got.Response.StatusCode != 400 {
		t.Errorf("got %s after %d attempts, status %d", got.Status, got.Attempts, got.Response.StatusCode)
	}
}

func TestCancelRunningJob(t *testing.T) {
	ex := &fakeExec{block: make(chan struct{})}
	s, _ := start(t, ex, nil)
	body := `{"model":"m","prompt":"slow"}`
	j, _ := s.Submit(context.Background(), "/v1/completions", []byte(body), nil)
	for ex.count(body) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	c, err := s.Cancel(context.Background(), j.ID, nil)
	if err != nil || c.Status != Cancelled {
		t.Fatalf("Cancel: %+v, %v", c, err)
	}
	for ex.ctxErr.Load() == 0 {
		time.Sleep(5 * time.Millisecond) // the run's context ends within a second
	}
	if _, err := s.Cancel(context.Background(), j.ID, nil); apierror.From(err).Status != http.StatusConflict {
		t.Errorf("second Cancel: %v, want 409", err)
	}
	if got := waitJob(t, s, j.ID); got.Status != Cancelled || got.Response != nil {
		t.Errorf("after the run ended: %+v", got)
	}
}

func TestSecondRunKeepsFirstAnswer(t *testing.T) {
	ex := &fakeExec{answer: func(_ string, n int) Answer {
		return Answer{Status: 200, Body: []byte(fmt.Sprintf(`{"run":%d}`, n))}
	}}
	s, m := start(t, ex, nil)
	j, _ := s.Submit(context.Background(), "/v1/completions", []byte(`{"model":"m","prompt":"x"}`), nil)
	first := waitJob(t, s, j.ID)
	m.Push(context.Background(), key(kindJob, j.ID)) // delivered again, as after a lost ack
	for m.pending() > 0 {
		time.Sleep(5 * time.Millisecond)
	}
	again, _ := s.Get(context.Background(), j.ID, nil)
	if string(again.Response.Body) != string(first.Response.Body) || ex.count(`{"model":"m","prompt":"x"}`) != 1 {
		t.Errorf("answers %s then %s, %d runs", first.Response.Body, again.Response.Body, ex.count(`{"model":"m","prompt":"x"}`))
	}
}

// TestDeliveryAfterRunnerDied: a job left running by a runner that beat
// just before it died (its task is delivered again a lease after the
// runner's last extend, the beat a moment after that) is run once the
// beat is stale, not dropped as a second delivery for a live runner.
func TestDeliveryAfterRunnerDied(t *testing.T) {
	const lease = time.Second
	m := newMem(lease)
	ctx := context.Background()
	now := time.Now()
	body := `{"model":"m","prompt":"orphan"}`
	rec, _ := json.Marshal(jobRecord{Job: Job{ID: "job_orphan", Object: "job", Endpoint: "/v1/completions", Model: "m",
		Status: Running, CreatedAt: now.Unix(), StartedAt: now.Unix(), ExpiresAt: now.Add(time.Hour).Unix(), Attempts: 1},
		Body: json.RawMessage(body), Beat: now.UnixMilli()})
	if err := m.Create(ctx, []Record{{Key: key(kindJob, "job_orphan"), Val: rec}}); err != nil {
		t.Fatal(err)
	}
	m.Push(ctx, key(kindJob, "job_orphan"))
	cfg := testConfig()
	cfg.Lease = config.Duration(lease)
	ex := &fakeExec{}
	s := New(cfg, func(context.Context) (*Backend, error) { return m.backend(), nil }, ex, Options{})
	sctx, cancel := context.WithCancel(ctx)
	if err := s.Start(sctx, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		c, stop := context.WithTimeout(ctx, 5*time.Second)
		defer stop()
		s.Close(c)
	})
	j := waitJob(t, s, "job_orphan")
	if j.Status != Succeeded || ex.count(body) != 1 {
		t.Errorf("job %s after %d runs, want succeeded after 1", j.Status, ex.count(body))
	}
	for deadline := time.Now().Add(5 * time.Second); m.pending() > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d tasks left unacked", m.pending())
		}
	}
}

func TestWebhookSignedAndRetried(t *testing.T) {
	secret := []byte("s3cret")
	var mu sync.Mutex
	var got []string
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			w.WriteHeader(500) // the first delivery fails: tried again
			return
		}
		sig := r.Header.Get(HeaderSignature)
		ts := strings.TrimPrefix(strings.Split(sig, ",")[0], "t=")
		var tsec int64
		fmt.Sscan(ts, &tsec)
		if Sign(secret, b, time.Unix(tsec, 0)) != sig {
			t.Errorf("bad signature %q", sig)
		}
		got = append(got, r.Header.Get(HeaderEvent)+" "+r.Header.Get(HeaderDelivery))
	}))
	defer srv.Close()
	s, _ := start(t, &fakeExec{}, func(c *config.Jobs, o *Options) { o.Secret = secret })
	j, err := s.Submit(context.Background(), "/v1/completions", []byte(`{"model":"m","prompt":"x"}`), http.Header{HeaderWebhook: {srv.URL + "/hook"}})
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, s, j.ID)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n > 0 {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]string{"job.succeeded " + j.ID}, got); diff != "" || calls != 2 {
		t.Errorf("deliveries (-want +got), %d calls:\n%s", calls, diff)
	}
}

// upload stores content as a batch input file.
func upload(t *testing.T, s *Service, content string) *File {
	t.Helper()
	f, err := s.PutFile(context.Background(), PurposeBatch, "in.jsonl", strings.NewReader(content), nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func waitBatch(t *testing.T, s *Service, id string) *Batch {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		b, err := s.GetBatch(context.Background(), id, nil)
		if err != nil {
			t.Fatal(err)
		}
		if b.Status.Final() {
			return b
		}
	}
	t.Fatalf("batch %s not final in time", id)
	return nil
}

func readFile(t *testing.T, s *Service, id string) []outputLine {
	t.Helper()
	_, rc, err := s.OpenFile(context.Background(), id, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out []outputLine
	sc := bufio.NewScanner(rc)
	for sc.Scan() {
		var l outputLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("output line %q: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	return out
}

func TestBatchCompletes(t *testing.T) {
	ex := &fakeExec{answer: func(body string, _ int) Answer {
		if strings.Contains(body, "bad") {
			return Answer{Status: 400, Body: []byte(`{"error":{"message":"bad"}}`)}
		}
		return Answer{Status: 200, Body: []byte(`{"ok":true}`)}
	}}
	s, _ := start(t, ex, nil)
	var in strings.Builder
	for i := 1; i <= 30; i++ {
		prompt := "p"
		if i == 7 {
			prompt = "bad"
		}
		fmt.Fprintf(&in, `{"custom_id":"r%d","method":"POST","url":"/v1/completions","body":{"model":"m","prompt":"%s%d"}}`+"\n", i, prompt, i)
		if i == 3 {
			in.WriteString("\n") // blank lines are skipped
		}
	}
	f := upload(t, s, in.String())
	b, err := s.CreateBatch(context.Background(), BatchParams{InputFileID: f.ID, Endpoint: "/v1/completions", CompletionWindow: "24h", Metadata: map[string]string{"k": "v"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.Status != BatchValidating {
		t.Fatalf("created %s", b.Status)
	}
	got := waitBatch(t, s, b.ID)
	if diff := cmp.Diff(Counts{Total: 30, Completed: 29, Failed: 1}, got.RequestCounts); diff != "" || got.Status != BatchCompleted || got.Model != "m" {
		t.Fatalf("status %s model %q counts (-want +got):\n%s", got.Status, got.Model, diff)
	}
	out := readFile(t, s, got.OutputFileID)
	if len(out) != 29 || out[0].CustomID != "r1" || out[28].CustomID != "r30" || out[6].CustomID != "r8" || out[0].Response.StatusCode != 200 || out[0].Error != nil {
		t.Errorf("output: %d lines, first %+v", len(out), out[0])
	}
	bad := readFile(t, s, got.ErrorFileID)
	if len(bad) != 1 || bad[0].CustomID != "r7" || bad[0].Response.StatusCode != 400 {
		t.Errorf("errors: %+v", bad)
	}
	list, more, err := s.ListBatches(context.Background(), "", 10, nil)
	if err != nil || more || len(list) != 1 || list[0].ID != b.ID {
		t.Errorf("list: %v %v %v", list, more, err)
	}
}

func TestBatchValidation(t *testing.T) {
	s, _ := start(t, &fakeExec{}, nil)
	in := strings.Join([]string{
		`{"custom_id":"a","method":"POST","url":"/v1/completions","body":{"model":"m","prompt":"x"}}`,
		`not json`,
		`{"method":"POST","url":"/v1/completions","body":{"model":"m"}}`,
		`{"custom_id":"a","method":"POST","url":"/v1/completions","body":{"model":"m"}}`,
		`{"custom_id":"b","method":"GET","url":"/v1/completions","body":{"model":"m"}}`,
		`{"custom_id":"c","method":"POST","url":"/v1/embeddings","body":{"model":"m"}}`,
		`{"custom_id":"d","method":"POST","url":"/v1/completions","body":{"model":"nope"}}`,
		`{"custom_id":"e","method":"POST","url":"/v1/completions","body":{"model":"m","stream":true}}`,
	}, "\n")
	f := upload(t, s, in)
	b, err := s.CreateBatch(context.Background(), BatchParams{InputFileID: f.ID, Endpoint: "/v1/completions", CompletionWindow: "24h"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := waitBatch(t, s, b.ID)
	if got.Status != BatchFailed || got.Errors == nil {
		t.Fatalf("status %s", got.Status)
	}
	type lineErr struct {
		Line        int
		Code, Param string
	}
	var errs []lineErr
	for _, e := range got.Errors.Data {
		errs = append(errs, lineErr{e.Line, e.Code, e.Param})
	}
	want := []lineErr{
		{2, "invalid_json_line", ""}, {3, "missing_custom_id", "custom_id"}, {4, "duplicate_custom_id", "custom_id"},
		{5, "invalid_method", "method"}, {6, "mismatched_url", "url"}, {7, "model_not_found", "body.model"}, {8, "invalid_request", "body.stream"},
	}
	if diff := cmp.Diff(want, errs); diff != "" {
		t.Errorf("line errors (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		name  string
		p     BatchParams
		param string
	}{
		{"no file", BatchParams{Endpoint: "/v1/completions", CompletionWindow: "24h"}, "input_file_id"},
		{"unknown file", BatchParams{InputFileID: "file-x", Endpoint: "/v1/completions", CompletionWindow: "24h"}, "input_file_id"},
		{"bad endpoint", BatchParams{InputFileID: f.ID, Endpoint: "/v1/responses", CompletionWindow: "24h"}, "endpoint"},
		{"bad window", BatchParams{InputFileID: f.ID, Endpoint: "/v1/completions", CompletionWindow: "1h"}, "completion_window"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.CreateBatch(context.Background(), tc.p, nil)
			if e := apierror.From(err); e.Param != tc.param {
				t.Errorf("error %+v, want one naming %s", e, tc.param)
			}
		})
	}
}

func TestBatchCancel(t *testing.T) {
	ex := &fakeExec{block: make(chan struct{})}
	s, _ := start(t, ex, nil)
	var in strings.Builder
	for i := 1; i <= 20; i++ {
		fmt.Fprintf(&in, `{"custom_id":"r%d","method":"POST","url":"/v1/completions","body":{"model":"m","prompt":"%d"}}`+"\n", i, i)
	}
	f := upload(t, s, in.String())
	b, _ := s.CreateBatch(context.Background(), BatchParams{InputFileID: f.ID, Endpoint: "/v1/completions", CompletionWindow: "24h"}, nil)
	for {
		got, _ := s.GetBatch(context.Background(), b.ID, nil)
		if got.Status == BatchInProgress {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	c, err := s.CancelBatch(context.Background(), b.ID, nil)
	if err != nil || c.Status != BatchCancelling {
		t.Fatalf("cancel: %+v %v", c, err)
	}
	got := waitBatch(t, s, b.ID)
	if got.Status != BatchCancelled || got.RequestCounts.Total != 20 || got.RequestCounts.Completed != 0 || got.ErrorFileID == "" {
		t.Errorf("after cancel: %s %+v error file %q", got.Status, got.RequestCounts, got.ErrorFileID)
	}
	for _, l := range readFile(t, s, got.ErrorFileID) {
		if l.Error == nil || l.Error.Code != "batch_cancelled" {
			t.Errorf("line %+v", l)
		}
	}
}

func TestRetention(t *testing.T) {
	s, m := start(t, &fakeExec{}, nil)
	j, _ := s.Submit(context.Background(), "/v1/completions", []byte(`{"model":"m","prompt":"x"}`), nil)
	waitJob(t, s, j.ID)
	f := upload(t, s, `{"custom_id":"a","method":"POST","url":"/v1/completions","body":{"model":"m","prompt":"x"}}`)
	q, _ := s.Submit(context.Background(), "/v1/completions", []byte(`{"model":"m","prompt":"y"}`), nil)
	waitJob(t, s, q.ID)
	w := &worker{s: s, b: m.backend()}
	w.retainOnce(context.Background()) // nothing is old yet
	if _, err := s.Get(context.Background(), j.ID, nil); err != nil {
		t.Fatalf("a new job was deleted: %v", err)
	}
	s.cfg.Retention = config.Duration(time.Nanosecond)
	time.Sleep(1100 * time.Millisecond) // records keep Unix seconds
	w.retainOnce(context.Background())
	for _, id := range []string{j.ID, q.ID} {
		if _, err := s.Get(context.Background(), id, nil); apierror.From(err).Status != 404 {
			t.Errorf("job %s after retention: %v", id, err)
		}
	}
	if _, err := s.GetFile(context.Background(), f.ID, nil); apierror.From(err).Status != 404 {
		t.Errorf("file after retention: %v", err)
	}
	if _, err := m.Open(context.Background(), f.ID); err != ErrNotFound {
		t.Errorf("file contents after retention: %v", err)
	}
}
