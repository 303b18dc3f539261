package jobs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/omnigate/omnigate/internal/apierror"
)

// batchLine is one line of a batch's input file.
type batchLine struct {
	CustomID *string         `json:"custom_id"`
	Method   string          `json:"method"`
	URL      string          `json:"url"`
	Body     json.RawMessage `json:"body"`
}

// maxLine bounds one line of a batch's input.
const maxLine = 32 << 20

// validate checks a batch's input file line by line: a batch with bad
// lines fails with each one named (nothing runs); a good one has a job
// created for each line and queued, and goes in_progress. Run again after
// a crash, it creates and queues only what is missing (lines are created
// once; a line queued twice runs once).
func (w *worker) validate(ctx context.Context, id string) error {
	s, k := w.s, key(kindBatch, id)
	rec := new(batchRecord)
	if _, err := load(ctx, w.b.Records, k, rec); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	switch rec.Batch.Status {
	case BatchValidating:
	case BatchCancelling:
		return w.finalize(ctx, id)
	default:
		return nil // validated already
	}
	var problems []BatchError
	n, model := 0, ""
	err := w.lines(ctx, rec.Batch.InputFileID, func(line int, l *batchLine, dupOf int) error {
		m, p := s.checkLine(rec, line, l, dupOf)
		if p != nil {
			if len(problems) < maxErrors {
				problems = append(problems, *p)
			}
			return nil
		}
		n++
		if model == "" {
			model = m
		}
		return nil
	})
	if err != nil {
		return err
	}
	now := s.now().Unix()
	switch {
	case len(problems) == 0 && n == 0:
		problems = append(problems, BatchError{Code: "empty_file", Message: "The input file has no requests."})
	case len(problems) == 0 && n > s.cfg.MaxBatchRequests:
		problems = append(problems, BatchError{Code: "too_many_requests",
			Message: fmt.Sprintf("The input file has %d requests; a batch may have at most %d (jobs.max_batch_requests).", n, s.cfg.MaxBatchRequests)})
	}
	if len(problems) > 0 {
		failed := false
		_, err := update(ctx, w.b.Records, k, func(r *batchRecord) error {
			if failed = r.Batch.Status == BatchValidating; !failed {
				return errUnchanged
			}
			r.Batch.Status, r.Batch.FailedAt = BatchFailed, now
			r.Batch.Errors = &BatchErrors{Object: "list", Data: problems}
			return nil
		})
		if err == nil && failed {
			s.opt.Metrics.BatchFinished(string(BatchFailed))
		}
		return err
	}
	if err := w.queueLines(ctx, rec, n); err != nil {
		return err
	}
	_, err = update(ctx, w.b.Records, k, func(r *batchRecord) error {
		if r.Batch.Status != BatchValidating {
			return errUnchanged // cancelled meanwhile: its lines see that
		}
		r.Batch.Status, r.Batch.InProgressAt, r.Batch.Model = BatchInProgress, now, model
		r.Batch.RequestCounts = Counts{Total: n}
		return nil
	})
	return err
}

// checkLine returns what is wrong with line n of a batch, or nil, and
// the line's model.
func (s *Service) checkLine(rec *batchRecord, n int, l *batchLine, dupOf int) (string, *BatchError) {
	bad := func(code, param, format string, args ...any) (string, *BatchError) {
		return "", &BatchError{Code: code, Param: param, Line: n, Message: fmt.Sprintf(format, args...)}
	}
	switch {
	case l == nil:
		return bad("invalid_json_line", "", "Line %d is not a JSON object.", n)
	case l.CustomID == nil || *l.CustomID == "":
		return bad("missing_custom_id", "custom_id", "Line %d has no custom_id.", n)
	case dupOf > 0:
		return bad("duplicate_custom_id", "custom_id", "Line %d: custom_id %q is line %d's too; each line needs its own.", n, *l.CustomID, dupOf)
	case l.Method != "POST":
		return bad("invalid_method", "method", "Line %d: method must be POST, not %q.", n, l.Method)
	case l.URL != rec.Batch.Endpoint:
		return bad("mismatched_url", "url", "Line %d: url %q is not the batch's endpoint %s.", n, l.URL, rec.Batch.Endpoint)
	case len(l.Body) == 0 || l.Body[0] != '{':
		return bad("invalid_body", "body", "Line %d: body must be a JSON object.", n)
	}
	checked, err := s.exec.Check(rec.Batch.Endpoint, l.Body, batchHeader(rec), false)
	if checked.Stream {
		return bad("invalid_request", "body.stream", "Line %d: a batch answers whole; stream must be false.", n)
	}
	if err != nil {
		e := apierror.From(err)
		p := "body"
		if e.Param != "" {
			p += "." + e.Param
		}
		return bad(e.Code, p, "Line %d: %s", n, e.Message)
	}
	return checked.Model, nil
}

// lines reads the batch input file, giving each non-blank line to fn
// (nil when it is not a JSON object) and, when its custom_id was an
// earlier line's, that line's number.
func (w *worker) lines(ctx context.Context, fileID string, fn func(n int, l *batchLine, dupOf int) error) error {
	rc, err := w.b.Files.Open(ctx, fileID)
	if err != nil {
		return err
	}
	defer rc.Close()
	r := bufio.NewReaderSize(rc, 64<<10)
	seen := map[string]int{}
	for n := 1; ; n++ {
		raw, err := readLine(r)
		if err == io.EOF && len(raw) == 0 {
			return nil
		}
		if err != nil && err != io.EOF {
			return err
		}
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 {
			continue
		}
		var l batchLine
		lp, dupOf := &l, 0
		if json.Unmarshal(raw, &l) != nil {
			lp = nil
		} else if l.CustomID != nil && *l.CustomID != "" {
			if first, dup := seen[*l.CustomID]; dup {
				dupOf = first
			} else {
				seen[*l.CustomID] = n
			}
		}
		if err := fn(n, lp, dupOf); err != nil {
			return err
		}
	}
}

// readLine reads one line of at most maxLine bytes.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		part, err := r.ReadSlice('\n')
		line = append(line, part...)
		if len(line) > maxLine {
			return nil, fmt.Errorf("jobs: a line of the input file is longer than %d bytes", maxLine)
		}
		if err != bufio.ErrBufferFull {
			return line, err
		}
	}
}

// queueLines creates the jobs of a validated batch's n lines and queues
// them, a chunk at a time.
func (w *worker) queueLines(ctx context.Context, rec *batchRecord, n int) error {
	const chunk = 500
	var recs []Record
	var tasks []string
	now := w.s.now()
	flush := func() error {
		if len(recs) == 0 {
			return nil
		}
		if err := w.b.Records.Create(ctx, recs); err != nil {
			return err
		}
		if err := w.b.Queue.Push(ctx, tasks...); err != nil {
			return err
		}
		recs, tasks = recs[:0], tasks[:0]
		return nil
	}
	line := 0
	err := w.lines(ctx, rec.Batch.InputFileID, func(_ int, l *batchLine, _ int) error {
		if l == nil || l.CustomID == nil {
			return fmt.Errorf("jobs: batch %s: its input changed after validation", rec.Batch.ID)
		}
		line++
		id := lineID(rec.Batch.ID, line)
		jr := &jobRecord{
			Job: Job{ID: id, Object: "job", Endpoint: rec.Batch.Endpoint, Status: Queued, CreatedAt: now.Unix(),
				ExpiresAt: rec.Batch.ExpiresAt, Batch: rec.Batch.ID, CustomID: *l.CustomID},
			Body: l.Body, Header: rec.Header, Line: line,
		}
		checked, _ := w.s.exec.Check(rec.Batch.Endpoint, l.Body, batchHeader(rec), false)
		jr.Job.Model = checked.Model
		b, err := json.Marshal(jr)
		if err != nil {
			return err
		}
		k := key(kindJob, id)
		recs = append(recs, Record{Key: k, Val: b})
		tasks = append(tasks, k)
		if len(recs) == chunk {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// batchHeader is the headers a batch's lines are checked with: its
// key's name.
func batchHeader(rec *batchRecord) http.Header {
	h := http.Header{}
	for k, v := range rec.Header {
		h.Set(k, v)
	}
	return h
}
