package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// jobsConfig is a gateway config with the 7B tier on the simulator and
// the jobs section jobs (YAML, its keys indented by two spaces).
func jobsConfig(t *testing.T, jobs string) string {
	return writeConfig(t, fmt.Sprintf(`
models:
  - name: qwen3-omni-7b
    aliases: [small]
    tier: small
    deployments: [{name: sim-7b, kind: sim, profile: qwen3-omni-7b}]
jobs:
%s
`, jobs))
}

// startNATS runs a NATS server with JetStream on a free loopback port.
func startNATS(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("nats-server not found")
		}
		t.Skip("nats-server not found")
	}
	addr := freeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "-js", "-a", host, "-p", port, "-sd", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if !listening(addr, 10*time.Second) {
		t.Fatal("nats-server did not start")
	}
	return "nats://" + addr
}

// uploadBatch uploads lines as a batch input file and creates a batch of
// it; it returns the batch id.
func uploadBatch(t *testing.T, base string, lines []string) string {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("purpose", "batch")
	fw, _ := mw.CreateFormFile("file", "in.jsonl")
	io.WriteString(fw, strings.Join(lines, "\n")+"\n")
	mw.Close()
	resp, err := http.Post(base+"/v1/files", mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ ID string }
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if json.Unmarshal(b, &f) != nil || f.ID == "" {
		t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}
	resp, err = http.Post(base+"/v1/batches", "application/json",
		strings.NewReader(`{"input_file_id":"`+f.ID+`","endpoint":"/v1/chat/completions","completion_window":"24h"}`))
	if err != nil {
		t.Fatal(err)
	}
	var bt struct{ ID string }
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if json.Unmarshal(b, &bt) != nil || bt.ID == "" {
		t.Fatalf("create batch: %d %s", resp.StatusCode, b)
	}
	return bt.ID
}

type batchState struct {
	Status        string `json:"status"`
	OutputFileID  string `json:"output_file_id"`
	ErrorFileID   string `json:"error_file_id"`
	RequestCounts struct {
		Total, Completed, Failed int
	} `json:"request_counts"`
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(v)
	return resp.StatusCode
}

// submitJobs submits n background chat requests and returns their ids.
func submitJobs(t *testing.T, base string, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/chat/completions",
			strings.NewReader(fmt.Sprintf(`{"model":"small","max_tokens":48,"messages":[{"role":"user","content":"job %d"}]}`, i)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Omnigate-Async", "true")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var j struct{ ID string }
		json.NewDecoder(resp.Body).Decode(&j)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("submit: %d", resp.StatusCode)
		}
		ids = append(ids, j.ID)
	}
	return ids
}

type jobState struct {
	Status   string          `json:"status"`
	Response json.RawMessage `json:"response"`
}

// jobsDone returns the jobs of ids that are final, by id.
func jobsDone(t *testing.T, base string, ids []string) map[string]jobState {
	done := map[string]jobState{}
	for _, id := range ids {
		var j jobState
		if getJSON(t, base+"/v1/jobs/"+id, &j) == 200 && (j.Status == "succeeded" || j.Status == "failed") {
			done[id] = j
		}
	}
	return done
}

// TestJobsSurviveKill kills a gateway with SIGKILL in the middle of a
// batch and of background jobs. Embedded: the gateway restarts on the
// same file. Redis and NATS: a second gateway sharing the store finishes
// the work once the dead one's leases lapse. Every line and job ends
// answered exactly once, and what was answered before the kill stays as
// it was.
func TestJobsSurviveKill(t *testing.T) {
	modes := []struct {
		name   string
		store  func(t *testing.T) string
		shared bool
	}{
		{"embedded", func(t *testing.T) string {
			return "  dir: " + filepath.Join(t.TempDir(), "data")
		}, false},
		{"redis", func(t *testing.T) string {
			addr, _ := startRedis(t)
			return "  store: redis\n  redis: {addr: " + addr + "}\n  dir: " + t.TempDir()
		}, true},
		{"nats", func(t *testing.T) string {
			return "  store: nats\n  nats: {url: " + startNATS(t) + "}"
		}, true},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			// Short leases: a killed gateway's jobs move on soon.
			cfg := jobsConfig(t, "  lease: 2s\n  workers: 6\n"+m.store(t))
			a := start(t, "serve", "--config", cfg, "--addr", "127.0.0.1:0")
			var b *proc
			if m.shared {
				b = start(t, "serve", "--config", cfg, "--addr", "127.0.0.1:0")
			}
			const n = 60
			var lines []string
			for i := range n {
				lines = append(lines, fmt.Sprintf(`{"custom_id":"c%d","method":"POST","url":"/v1/chat/completions","body":{"model":"small","max_tokens":48,"messages":[{"role":"user","content":"line %d"}]}}`, i, i))
			}
			batch := uploadBatch(t, a.URL, lines)
			jobs := submitJobs(t, a.URL, 20)
			// Kill A once some, not all, of the work is done.
			var st batchState
			if _, ok := poll(60*time.Second, func() bool {
				getJSON(t, a.URL+"/v1/batches/"+batch, &st)
				return st.RequestCounts.Completed >= 5
			}); !ok {
				t.Fatalf("the batch made no progress: %+v", st)
			}
			before := jobsDone(t, a.URL, jobs)
			a.cmd.Process.Kill()
			a.cmd.Wait()
			if st.RequestCounts.Completed >= n {
				t.Fatalf("the batch finished before the kill; make it longer")
			}
			t.Logf("killed with %d of %d lines and %d of %d jobs done", st.RequestCounts.Completed, n, len(before), len(jobs))
			if b == nil {
				b = start(t, "serve", "--config", cfg, "--addr", "127.0.0.1:0")
			}
			if _, ok := poll(90*time.Second, func() bool {
				getJSON(t, b.URL+"/v1/batches/"+batch, &st)
				return st.Status == "completed"
			}); !ok {
				t.Fatalf("the batch did not complete after the kill: %+v", st)
			}
			if st.RequestCounts.Total != n || st.RequestCounts.Completed != n || st.RequestCounts.Failed != 0 || st.ErrorFileID != "" {
				t.Errorf("final batch: %+v", st)
			}
			resp, err := http.Get(b.URL + "/v1/files/" + st.OutputFileID + "/content")
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]int{}
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				var l struct {
					CustomID string `json:"custom_id"`
					Response struct {
						StatusCode int `json:"status_code"`
					} `json:"response"`
				}
				json.Unmarshal(sc.Bytes(), &l)
				seen[l.CustomID]++
				if l.Response.StatusCode != 200 {
					t.Errorf("line %s answered %d", l.CustomID, l.Response.StatusCode)
				}
			}
			resp.Body.Close()
			for i := range n {
				if c := seen[fmt.Sprintf("c%d", i)]; c != 1 {
					t.Errorf("line c%d is in the output %d times", i, c)
				}
			}
			var after map[string]jobState
			if _, ok := poll(60*time.Second, func() bool {
				after = jobsDone(t, b.URL, jobs)
				return len(after) == len(jobs)
			}); !ok {
				t.Fatalf("%d of %d jobs final after the kill", len(after), len(jobs))
			}
			for id, j := range before {
				if !bytes.Equal(j.Response, after[id].Response) {
					t.Errorf("job %s answered %s before the kill and %s after", id, j.Response, after[id].Response)
				}
			}
		})
	}
}
