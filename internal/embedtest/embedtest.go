// Package embedtest runs the test embedder (e2e/testdata/embedder: the
// Universal Sentence Encoder lite behind an OpenAI-shaped /v1/embeddings,
// a stand-in for a real embedding model) as a process of the test's own.
package embedtest

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Dir is the embedder's folder in the repository.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "e2e", "testdata", "embedder")
}

// Start runs the embedder on a free loopback port and returns its base
// URL (http://127.0.0.1:PORT, without /v1); it is stopped when the test
// ends. Without node or the installed packages (npm ci in Dir) the test
// is skipped, unless CI is set.
func Start(t testing.TB) string {
	t.Helper()
	dir := Dir()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "node_modules", "@energetic-ai", "model-embeddings-en", "dist", "model.json"))
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the test embedder cannot run (node, and npm ci in %s): %v", dir, err)
		}
		t.Skipf("the test embedder cannot run (node, and npm ci in %s): %v", dir, err)
	}
	cmd := exec.Command(node, "server.mjs", "127.0.0.1:0")
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "serving on "); ok {
				ready <- u
			}
		}
	}()
	select {
	case u := <-ready:
		return u
	case <-time.After(60 * time.Second): // loading the model takes a second or two, more on a busy machine
		t.Fatal("the test embedder did not start")
	}
	return ""
}
