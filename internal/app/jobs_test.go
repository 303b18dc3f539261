package app

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/omnigate/omnigate/internal/config"
	pb "github.com/omnigate/omnigate/proto/omnigate/v1"
)

// startJobsGateway serves the default config with its jobs in a
// temporary directory, workers running.
func startJobsGateway(t *testing.T) (*Gateway, *httptest.Server) {
	t.Helper()
	cfg := config.Default()
	cfg.Jobs.Dir = t.TempDir()
	gw, srv := newTestGateway(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	if err := gw.startJobs(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); gw.closeJobs(5 * time.Second) })
	return gw, srv
}

func postH(t *testing.T, url, body string, h map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range h {
		req.Header.Set(k, v)
	}
	return doReq(t, req)
}

func doReq(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

type jobView struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Attempts int    `json:"attempts"`
	Response *struct {
		StatusCode int             `json:"status_code"`
		Body       json.RawMessage `json:"body"`
	} `json:"response"`
}

// TestAsyncJob: the same request, once as a background job and once
// synchronously, answers the same.
func TestAsyncJob(t *testing.T) {
	_, srv := startJobsGateway(t)
	body := `{"model":"qwen3-omni-30b","messages":[{"role":"user","content":"Name three rivers."}],"max_tokens":12}`
	resp, b := postH(t, srv.URL+"/v1/chat/completions", body, map[string]string{"X-Omnigate-Async": "true", "Authorization": "Bearer k1"})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("submit: %d %s", resp.StatusCode, b)
	}
	var j jobView
	json.Unmarshal(b, &j)
	if loc := resp.Header.Get("Location"); loc != "/v1/jobs/"+j.ID || j.Status != "queued" {
		t.Fatalf("Location %q, job %+v", loc, j)
	}
	deadline := time.Now().Add(30 * time.Second)
	for j.Status != "succeeded" && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/jobs/"+j.ID, nil)
		req.Header.Set("Authorization", "Bearer k1")
		r, b := doReq(t, req)
		if r.StatusCode != 200 {
			t.Fatalf("get: %d %s", r.StatusCode, b)
		}
		json.Unmarshal(b, &j)
	}
	if j.Status != "succeeded" || j.Response.StatusCode != 200 {
		t.Fatalf("job %+v", j)
	}
	// The answer alone, as the synchronous call gives it.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/jobs/"+j.ID+"/response", nil)
	req.Header.Set("Authorization", "Bearer k1")
	r, alone := doReq(t, req)
	if r.StatusCode != 200 || strings.TrimSpace(string(alone)) != string(j.Response.Body) {
		t.Errorf("response alone: %d %s", r.StatusCode, alone)
	}
	_, sync := postH(t, srv.URL+"/v1/chat/completions", body, map[string]string{"Cache-Control": "no-cache"})
	if content(t, sync) != content(t, j.Response.Body) {
		t.Errorf("job answered %q, the synchronous call %q", content(t, j.Response.Body), content(t, sync))
	}
	// Not another key's; not cancellable once final.
	req, _ = http.NewRequest(http.MethodGet, srv.URL+"/v1/jobs/"+j.ID, nil)
	req.Header.Set("Authorization", "Bearer k2")
	if r, _ := doReq(t, req); r.StatusCode != 404 {
		t.Errorf("another key's get: %d", r.StatusCode)
	}
	req, _ = http.NewRequest(http.MethodDelete, srv.URL+"/v1/jobs/"+j.ID, nil)
	req.Header.Set("Authorization", "Bearer k1")
	if r, b := doReq(t, req); r.StatusCode != 409 {
		t.Errorf("cancel a final job: %d %s", r.StatusCode, b)
	}
}

func content(t *testing.T, b []byte) string {
	t.Helper()
	var c struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(b, &c); err != nil || len(c.Choices) == 0 {
		t.Fatalf("not a chat completion: %s", b)
	}
	return c.Choices[0].Message.Content
}

// TestAsyncRejects: bad background requests get an OpenAI error naming
// what is wrong, at once.
func TestAsyncRejects(t *testing.T) {
	_, srv := startJobsGateway(t)
	chat := srv.URL + "/v1/chat/completions"
	for _, tc := range []struct {
		name, url, body string
		h               map[string]string
		status          int
		param           string
	}{
		{"bad async value", chat, `{"model":"small","messages":[{"role":"user","content":"x"}]}`, map[string]string{"X-Omnigate-Async": "maybe"}, 400, "X-Omnigate-Async"},
		{"stream", chat, `{"model":"small","stream":true,"messages":[{"role":"user","content":"x"}]}`, map[string]string{"X-Omnigate-Async": "true"}, 400, "stream"},
		{"unknown model", chat, `{"model":"nope","messages":[{"role":"user","content":"x"}]}`, map[string]string{"X-Omnigate-Async": "true"}, 404, "model"},
		{"bad json", chat, `{"model":`, map[string]string{"X-Omnigate-Async": "true"}, 400, ""},
		{"webhook without a secret", chat, `{"model":"small","messages":[{"role":"user","content":"x"}]}`, map[string]string{"X-Omnigate-Async": "true", "X-Omnigate-Webhook": "http://127.0.0.1:1/"}, 400, "X-Omnigate-Webhook"},
		{"batch without a file", srv.URL + "/v1/batches", `{"endpoint":"/v1/chat/completions","completion_window":"24h"}`, nil, 400, "input_file_id"},
		{"batch of an unknown file", srv.URL + "/v1/batches", `{"input_file_id":"file-nope","endpoint":"/v1/chat/completions","completion_window":"24h"}`, nil, 404, "input_file_id"},
		{"batch window", srv.URL + "/v1/batches", `{"input_file_id":"file-x","endpoint":"/v1/chat/completions","completion_window":"2h"}`, nil, 400, "completion_window"},
		{"batch field type", srv.URL + "/v1/batches", `{"input_file_id":7}`, nil, 400, "input_file_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := postH(t, tc.url, tc.body, tc.h)
			var e struct {
				Error struct {
					Param *string `json:"param"`
				} `json:"error"`
			}
			json.Unmarshal(b, &e)
			param := ""
			if e.Error.Param != nil {
				param = *e.Error.Param
			}
			if resp.StatusCode != tc.status || param != tc.param {
				t.Errorf("%d %s; want %d naming %q", resp.StatusCode, b, tc.status, tc.param)
			}
		})
	}
	for _, p := range []string{"/v1/jobs/job_nope", "/v1/files/file-nope", "/v1/batches/batch_nope", "/v1/files/file-nope/content"} {
		if r, b := doReq(t, mustReq(http.MethodGet, srv.URL+p)); r.StatusCode != 404 || !strings.Contains(string(b), `"error"`) {
			t.Errorf("GET %s: %d %s", p, r.StatusCode, b)
		}
	}
	if r, _ := doReq(t, mustReq(http.MethodPut, srv.URL+"/v1/batches")); r.StatusCode != 405 || r.Header.Get("Allow") == "" {
		t.Errorf("PUT /v1/batches: %d", r.StatusCode)
	}
}

func mustReq(method, url string) *http.Request {
	r, _ := http.NewRequest(method, url, nil)
	return r
}

// TestSDKBatch runs a batch through the official SDK's Files and Batches
// calls, unchanged.
func TestSDKBatch(t *testing.T) {
	gw, srv := startJobsGateway(t)
	c := sdkClient(srv)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var in strings.Builder
	const n = 40
	for i := range n {
		model := "small"
		if i%2 == 1 {
			model = "large"
		}
		temp := "0.5"
		if i == 13 {
			temp = "5" // past the model's limit: this line's answer is a 400
		}
		fmt.Fprintf(&in, `{"custom_id":"q%d","method":"POST","url":"/v1/chat/completions","body":{"model":"%s","temperature":%s,"max_tokens":8,"messages":[{"role":"user","content":"Question %d"}]}}`+"\n", i, model, temp, i)
	}
	f, err := c.Files.New(ctx, openai.FileNewParams{File: openai.File(strings.NewReader(in.String()), "questions.jsonl", "application/jsonl"), Purpose: openai.FilePurposeBatch})
	if err != nil {
		t.Fatal(err)
	}
	if f.Bytes != int64(in.Len()) || f.Filename != "questions.jsonl" || f.Purpose != "batch" {
		t.Errorf("file %+v", f)
	}
	b, err := c.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h, Metadata: map[string]string{"run": "sdk"}})
	if err != nil {
		t.Fatal(err)
	}
	for b.Status != openai.BatchStatusCompleted {
		if ctx.Err() != nil || b.Status == openai.BatchStatusFailed {
			t.Fatalf("batch %s: %s", b.ID, b.RawJSON())
		}
		time.Sleep(100 * time.Millisecond)
		if b, err = c.Batches.Get(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
	}
	if b.RequestCounts.Total != n || b.RequestCounts.Completed != n-1 || b.RequestCounts.Failed != 1 || b.Metadata["run"] != "sdk" {
		t.Errorf("counts %+v metadata %v", b.RequestCounts, b.Metadata)
	}
	lines := func(id string) []map[string]any {
		resp, err := c.Files.Content(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out []map[string]any
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var l map[string]any
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Fatal(err)
			}
			out = append(out, l)
		}
		return out
	}
	out := lines(b.OutputFileID)
	if len(out) != n-1 || out[0]["custom_id"] != "q0" || out[n-2]["custom_id"] != fmt.Sprintf("q%d", n-1) {
		t.Fatalf("output: %d lines, first %v", len(out), out[0])
	}
	resp := out[1]["response"].(map[string]any)
	if resp["status_code"].(float64) != 200 || resp["body"].(map[string]any)["model"] != "qwen3-omni-30b" {
		t.Errorf("line q1: %v", out[1])
	}
	bad := lines(b.ErrorFileID)
	if len(bad) != 1 || bad[0]["custom_id"] != "q13" || bad[0]["response"].(map[string]any)["status_code"].(float64) != 400 {
		t.Errorf("errors: %v", bad)
	}
	page, err := c.Batches.List(ctx, openai.BatchListParams{})
	if err != nil || len(page.Data) != 1 || page.Data[0].ID != b.ID {
		t.Errorf("list: %v, %v", page, err)
	}
	got, err := c.Files.Get(ctx, b.OutputFileID)
	if err != nil || got.Purpose != "batch_output" {
		t.Errorf("output file: %+v %v", got, err)
	}
	if _, err := c.Batches.Cancel(ctx, b.ID); err == nil {
		t.Error("cancelling a completed batch succeeded")
	}
	if del, err := c.Files.Delete(ctx, f.ID); err != nil || !del.Deleted {
		t.Errorf("delete: %+v %v", del, err)
	}
	if _, err := c.Files.Get(ctx, f.ID); err == nil {
		t.Error("the deleted file is still there")
	}
	mfs := families(t, gw)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"omnigate_jobs_finished_total", map[string]string{"kind": "batch_line", "status": "succeeded"}, n - 1},
		{"omnigate_jobs_finished_total", map[string]string{"kind": "batch_line", "status": "failed"}, 1},
		{"omnigate_batches_finished_total", map[string]string{"status": "completed"}, 1},
		{"omnigate_jobs_running", nil, 0},
		{"omnigate_requests_total", map[string]string{"model": "qwen3-omni-7b", "code": "200"}, n / 2},
	} {
		if v, ok := value(mfs, c.name, c.labels); !ok || v != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, v, ok, c.want)
		}
	}
}

// TestAsyncChecksLimits: a background request past its model's limits is
// refused at submission, as the synchronous call would refuse it.
func TestAsyncChecksLimits(t *testing.T) {
	_, srv := startJobsGateway(t)
	body := `{"model":"small","temperature":5,"messages":[{"role":"user","content":"x"}]}`
	syncResp, syncBody := postH(t, srv.URL+"/v1/chat/completions", body, nil)
	resp, b := postH(t, srv.URL+"/v1/chat/completions", body, map[string]string{"X-Omnigate-Async": "true"})
	if resp.StatusCode != 400 || syncResp.StatusCode != 400 || !strings.Contains(string(b), `"param":"temperature"`) {
		t.Errorf("async: %d %s; sync: %d %s", resp.StatusCode, b, syncResp.StatusCode, syncBody)
	}
	resp, b = postH(t, srv.URL+"/v1/embeddings", `{"model":"small","input":"x"}`, map[string]string{"X-Omnigate-Async": "true"})
	if resp.StatusCode != 400 || !strings.Contains(string(b), `"param":"model"`) {
		t.Errorf("an endpoint the model does not serve: %d %s", resp.StatusCode, b)
	}
}

// TestGRPCJobs: the job calls over gRPC, with the job's response the
// HTTP API's own, and bad calls refused with their parameter named.
func TestGRPCJobs(t *testing.T) {
	gw, srv := startJobsGateway(t)
	addr, _ := serveGRPCForTest(t, gw)
	c := pb.NewOmnigateClient(dial(t, addr))
	ctx := metadataCtx("authorization", "Bearer k1")
	chat := &pb.ChatCompletionRequest{Model: "large", MaxTokens: proto.Int64(12),
		Messages: []*pb.ChatMessage{{Role: "user", Content: &pb.ChatMessage_Text{Text: "Name three rivers."}}}}
	job, err := c.SubmitJob(ctx, &pb.SubmitJobRequest{Request: &pb.SubmitJobRequest_ChatCompletion{ChatCompletion: chat}})
	if err != nil {
		t.Fatal(err)
	}
	if job.Status != "queued" || job.Endpoint != "/v1/chat/completions" || job.Model != "large" {
		t.Fatalf("submitted %v", job)
	}
	for deadline := time.Now().Add(30 * time.Second); job.Status != "succeeded" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if job, err = c.GetJob(ctx, &pb.GetJobRequest{Id: job.Id}); err != nil {
			t.Fatal(err)
		}
	}
	if job.Status != "succeeded" || job.Response.GetStatusCode() != 200 {
		t.Fatalf("job %v", job)
	}
	_, sync := postH(t, srv.URL+"/v1/chat/completions", `{"model":"large","max_tokens":12,"messages":[{"role":"user","content":"Name three rivers."}]}`,
		map[string]string{"Cache-Control": "no-cache"})
	if content(t, []byte(job.Response.Body)) != content(t, sync) {
		t.Errorf("the job answered %q, the HTTP API %q", content(t, []byte(job.Response.Body)), content(t, sync))
	}
	// The same job over HTTP, and not another key's.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/jobs/"+job.Id, nil)
	req.Header.Set("Authorization", "Bearer k1")
	if r, _ := doReq(t, req); r.StatusCode != 200 {
		t.Errorf("GET /v1/jobs over HTTP: %d", r.StatusCode)
	}
	for _, tc := range []struct {
		name  string
		call  func() error
		code  codes.Code
		field string
	}{
		{"no request", func() error { _, err := c.SubmitJob(ctx, &pb.SubmitJobRequest{}); return err }, codes.InvalidArgument, "request"},
		{"unknown model", func() error {
			_, err := c.SubmitJob(ctx, &pb.SubmitJobRequest{Request: &pb.SubmitJobRequest_ChatCompletion{ChatCompletion: &pb.ChatCompletionRequest{Model: "nope",
				Messages: chat.Messages}}})
			return err
		}, codes.NotFound, "model"},
		{"webhook without a secret", func() error {
			_, err := c.SubmitJob(ctx, &pb.SubmitJobRequest{Webhook: "http://127.0.0.1:1/", Request: &pb.SubmitJobRequest_ChatCompletion{ChatCompletion: chat}})
			return err
		}, codes.InvalidArgument, "x-omnigate-webhook"},
		{"another key's job", func() error {
			_, err := c.GetJob(metadataCtx("authorization", "Bearer k2"), &pb.GetJobRequest{Id: job.Id})
			return err
		}, codes.NotFound, "job_id"},
		{"final job", func() error { _, err := c.CancelJob(ctx, &pb.CancelJobRequest{Id: job.Id}); return err }, codes.Aborted, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			st := status.Convert(err)
			field := ""
			for _, d := range st.Details() {
				if br, ok := d.(*errdetails.BadRequest); ok && len(br.FieldViolations) > 0 {
					field = br.FieldViolations[0].Field
				}
			}
			if st.Code() != tc.code || field != tc.field {
				t.Errorf("%v (field %q); want %v naming %q", err, field, tc.code, tc.field)
			}
		})
	}
}
