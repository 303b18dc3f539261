package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// slowProfile is a simulator profile whose answers stream for seconds.
const slowProfile = `
name: slow
max_model_len: 32768
max_num_seqs: 64
kv_cache_tokens: 200000
block_size: 16
prefill_per_token: 0s
decode_base: 15ms
decode_per_seq: 0s
answer_tokens: [200, 200]
embedding_dims: 16
`

// reloadConfig is a two-tier simulator config whose small tier has the
// given aliases and max_tokens limit, and a model "long" on the slow
// profile at profile (a file).
func reloadConfig(watch bool, aliases string, maxTokens int, profile string) string {
	return fmt.Sprintf(`
server: {addr: "127.0.0.1:0", watch_config: %t}
models:
  - name: qwen3-omni-7b
    tier: small
    aliases: [%s]
    limits: {max_tokens: %d}
    deployments: [{name: sim-7b, kind: sim, profile: qwen3-omni-7b}]
  - name: qwen3-omni-30b
    tier: large
    deployments: [{name: sim-30b, kind: sim, profile: instant}]
  - name: long
    deployments: [{name: sim-long, kind: sim, profile: "%s"}]
routing:
  fallbacks: {qwen3-omni-30b: [qwen3-omni-7b]}
`, watch, aliases, maxTokens, profile)
}

// rewrite replaces the config file the way an editor does: a new file
// renamed over the old one.
func rewrite(t *testing.T, path, yaml string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// load runs clients against base until stop is closed: streams and
// whole answers on the small tier, whole answers on the large one. Every
// request must succeed; a stream must end with [DONE].
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	failures   []string
	wg         sync.WaitGroup
}

func startLoad(base string, clients int, stop <-chan struct{}) *load {
	l := &load{}
	bodies := []string{
		`{"model":"qwen3-omni-7b","stream":true,"max_tokens":40,"messages":[{"role":"user","content":"tell me a story"}]}`,
		`{"model":"qwen3-omni-7b","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"qwen3-omni-30b","max_tokens":20,"messages":[{"role":"user","content":"hello"}]}`,
	}
	for i := 0; i < clients; i++ {
		l.wg.Add(1)
		go func(i int) {
			defer l.wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				body := bodies[(i+n)%len(bodies)]
				if err := oneRequest(base, body); err != nil {
					l.failed.Add(1)
					l.mu.Lock()
					l.failures = append(l.failures, err.Error())
					l.mu.Unlock()
					continue
				}
				l.ok.Add(1)
			}
		}(i)
	}
	return l
}

// oneRequest sends body and reads the whole answer.
func oneRequest(base, body string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := chat(ctx, base, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("reading the answer: %v", err)
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("%d: %s", resp.StatusCode, b)
	}
	if strings.Contains(body, `"stream":true`) && !strings.HasSuffix(string(b), "data: [DONE]\n\n") {
		return fmt.Errorf("stream did not end with [DONE]: %q", tail(string(b), 200))
	}
	return nil
}

// modelServes reports whether a request naming model gets a 200.
func modelServes(base, model string) bool {
	return oneRequest(base, `{"model":"`+model+`","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`) == nil
}

// TestHotReloadUnderLoad: under steady load (streams and whole answers on
// both tiers), a changed config file is picked up (a new alias serves), an
// invalid one is rejected with the running config kept, and SIGHUP
// reloads — with no failed request and every stream complete.
func TestHotReloadUnderLoad(t *testing.T) {
	prof := writeConfig(t, slowProfile)
	path := writeConfig(t, reloadConfig(true, "small", 512, prof))
	gw := start(t, "serve", "--config", path)
	stop := make(chan struct{})
	l := startLoad(gw.URL, 6, stop)
	stopped := false
	defer func() {
		if !stopped {
			close(stop)
			l.wg.Wait()
		}
	}()
	// One long stream runs across every reload.
	long := make(chan error, 1)
	t0 := time.Now()
	go func() {
		long <- oneRequest(gw.URL, `{"model":"long","stream":true,"max_tokens":400,"messages":[{"role":"user","content":"a long story"}]}`)
	}()
	time.Sleep(500 * time.Millisecond) // streams are open across the first reload

	// 1. The file changes: a new alias serves within a few polls.
	rewrite(t, path, reloadConfig(true, "small, fast", 256, prof))
	if _, ok := poll(10*time.Second, func() bool { return modelServes(gw.URL, "fast") }); !ok {
		t.Fatal("the alias added to the config file does not serve after 10 s")
	}

	// 2. An invalid file is rejected; the running config stays.
	rewrite(t, path, reloadConfig(true, "small, fast", 256, prof)+"\nbogus_key: 1\n")
	time.Sleep(2500 * time.Millisecond) // two polls and more
	if !modelServes(gw.URL, "fast") {
		t.Fatal("after an invalid config file, the running config's alias no longer serves")
	}

	// 3. SIGHUP reloads (the watch would too: the test asks for the new
	// alias right after the signal, before the next poll is due).
	rewrite(t, path, reloadConfig(true, "small, quick", 256, prof))
	if err := gw.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if _, ok := poll(10*time.Second, func() bool { return modelServes(gw.URL, "quick") }); !ok {
		t.Fatal("the alias added before SIGHUP does not serve")
	}
	if _, ok := poll(5*time.Second, func() bool { return !modelServes(gw.URL, "fast") }); !ok {
		t.Error("the alias removed before SIGHUP still serves")
	}
	time.Sleep(time.Second) // streams opened on the new config run across its end
	select {
	case err := <-long:
		if err != nil {
			t.Errorf("the stream open across the reloads: %v", err)
		}
		t.Logf("the long stream ended %v after it started", time.Since(t0).Round(time.Millisecond))
	case <-time.After(30 * time.Second):
		t.Error("the stream open across the reloads did not end")
	}

	close(stop)
	l.wg.Wait()
	stopped = true
	t.Logf("%d requests succeeded, %d failed across three reloads", l.ok.Load(), l.failed.Load())
	if l.failed.Load() > 0 {
		t.Errorf("%d requests failed during reloads; first: %v", l.failed.Load(), l.failures[0])
	}
	if l.ok.Load() < 30 {
		t.Errorf("only %d requests ran: the load did not overlap the reloads", l.ok.Load())
	}

	gw.cmd.Process.Signal(syscall.SIGTERM)
	gw.cmd.Wait()
	logs := gw.stderr.String()
	for _, want := range []string{"config file changed; reloading", "config reload rejected", "bogus_key", "SIGHUP: reloading the config", "config reloaded"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %q", want)
		}
	}
}

// TestReloadWithoutWatch: with watch_config off, a changed file is not
// applied until SIGHUP or POST /admin/reload; SIGHUP does not end the
// gateway; an invalid file sent for reload is answered 400 with the reason
// and changes nothing.
func TestReloadWithoutWatch(t *testing.T) {
	prof := writeConfig(t, slowProfile)
	path := writeConfig(t, reloadConfig(false, "small", 512, prof))
	gw := start(t, "serve", "--config", path)
	rewrite(t, path, reloadConfig(false, "small, fast", 512, prof))
	time.Sleep(1500 * time.Millisecond)
	if modelServes(gw.URL, "fast") {
		t.Fatal("with watch_config off, the changed file was applied without SIGHUP")
	}
	gw.cmd.Process.Signal(syscall.SIGHUP)
	if _, ok := poll(5*time.Second, func() bool { return modelServes(gw.URL, "fast") }); !ok {
		t.Fatal("SIGHUP did not apply the changed file")
	}
	if !modelServes(gw.URL, "small") {
		t.Error("the gateway stopped serving after SIGHUP")
	}

	reload := func() (int, string) {
		resp, err := http.Post(gw.Admin+"/admin/reload", "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	rewrite(t, path, reloadConfig(false, "small, quick", 512, prof))
	if code, body := reload(); code != 200 {
		t.Fatalf("POST /admin/reload: %d %s", code, body)
	}
	if !modelServes(gw.URL, "quick") || modelServes(gw.URL, "fast") {
		t.Error("POST /admin/reload did not apply the changed file")
	}
	rewrite(t, path, reloadConfig(false, "small, quick", 512, prof)+"\nbogus_key: 1\n")
	if code, body := reload(); code != 400 || !strings.Contains(body, "bogus_key") {
		t.Errorf("POST /admin/reload of an invalid file: %d %s", code, body)
	}
	if !modelServes(gw.URL, "quick") {
		t.Error("the rejected reload changed the running config")
	}
}
