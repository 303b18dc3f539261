package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/omnigate/omnigate/internal/jobs"
)

var fileCases = []suiteCase{
	{name: "files", run: func(t *testing.T, r rig) { testFiles(t, r.b.Files) }},
}

// read returns the file's contents, or the error of Open or of reading.
func read(t *testing.T, f jobs.Files, name string) (string, error) {
	t.Helper()
	rc, err := f.Open(context.Background(), name)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), err
}

// failingReader gives some bytes, then an error.
type failingReader struct{ n int }

var errReader = errors.New("the upload broke off")

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errReader
	}
	n := min(len(p), r.n)
	for i := range n {
		p[i] = 'x'
	}
	r.n -= n
	return n, nil
}

func testFiles(t *testing.T, f jobs.Files) {
	ctx := context.Background()
	put := func(name, content string) {
		t.Helper()
		n, err := f.Put(ctx, name, strings.NewReader(content))
		if err != nil || n != int64(len(content)) {
			t.Fatalf("Put %s: %d, %v; want %d bytes", name, n, err, len(content))
		}
	}
	if _, err := read(t, f, "file-none"); !errors.Is(err, jobs.ErrNotFound) {
		t.Errorf("Open of no file: %v, want ErrNotFound", err)
	}
	put("file-a.jsonl", "line 1\nline 2\n")
	if got, err := read(t, f, "file-a.jsonl"); err != nil || got != "line 1\nline 2\n" {
		t.Errorf("read back %q, %v", got, err)
	}
	put("file-a.jsonl", "replaced\n")
	if got, err := read(t, f, "file-a.jsonl"); err != nil || got != "replaced\n" {
		t.Errorf("after replacing: %q, %v", got, err)
	}

	// A reader's error stores nothing, and leaves a file there as it was.
	if _, err := f.Put(ctx, "file-a.jsonl", &failingReader{n: 3 << 20}); !errors.Is(err, errReader) {
		t.Errorf("Put from a failing reader: %v, want its error", err)
	}
	if got, err := read(t, f, "file-a.jsonl"); err != nil || got != "replaced\n" {
		t.Errorf("after a failed replacement: %q, %v", got, err)
	}
	if _, err := f.Put(ctx, "file-broken", &failingReader{n: 10}); err == nil {
		t.Error("Put from a failing reader: no error")
	}
	if _, err := read(t, f, "file-broken"); !errors.Is(err, jobs.ErrNotFound) {
		t.Errorf("a failed Put left a file: %v", err)
	}

	// Empty, and larger than a chunk of any backend.
	put("file-empty", "")
	if got, err := read(t, f, "file-empty"); err != nil || got != "" {
		t.Errorf("empty file: %q, %v", got, err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), (5<<20)/16+3)
	if n, err := f.Put(ctx, "file-big", bytes.NewReader(big)); err != nil || n != int64(len(big)) {
		t.Fatalf("Put big: %d, %v", n, err)
	}
	if got, err := read(t, f, "file-big"); err != nil || got != string(big) {
		t.Errorf("big file: %d bytes back (want %d), %v", len(got), len(big), err)
	}

	// A reader that opened the old contents reads them, or fails: never
	// a mix of old and new.
	rc, err := f.Open(ctx, "file-big")
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 1000)
	if _, err := io.ReadFull(rc, head); err != nil {
		t.Fatal(err)
	}
	put("file-big", strings.Repeat("new", 1<<20))
	rest, err := io.ReadAll(rc)
	rc.Close()
	if got := string(head) + string(rest); err == nil && got != string(big) {
		t.Errorf("a file replaced while read: %d bytes, not the old ones", len(got))
	}
	if got, err := read(t, f, "file-big"); err != nil || got != strings.Repeat("new", 1<<20) {
		t.Errorf("after replacing big: %d bytes, %v", len(got), err)
	}

	if err := f.Delete(ctx, "file-a.jsonl"); err != nil {
		t.Fatal(err)
	}
	if _, err := read(t, f, "file-a.jsonl"); !errors.Is(err, jobs.ErrNotFound) {
		t.Errorf("Open after Delete: %v, want ErrNotFound", err)
	}
	if err := f.Delete(ctx, "file-a.jsonl"); err != nil {
		t.Errorf("Delete of no file: %v", err)
	}
	for _, bad := range []string{"", "../x", "a/b", ".hidden"} {
		if _, err := f.Put(ctx, bad, strings.NewReader("x")); err == nil {
			t.Errorf("Put %q: no error", bad)
		}
	}
}
