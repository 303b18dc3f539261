package jobs

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
)

// outputLine is a line of a batch's output or error file, in OpenAI's
// format.
type outputLine struct {
	ID       string       `json:"id"`
	CustomID string       `json:"custom_id"`
	Response *lineAnswer  `json:"response"`
	Error    *lineProblem `json:"error"`
}

type lineAnswer struct {
	StatusCode int             `json:"status_code"`
	RequestID  string          `json:"request_id"`
	Body       json.RawMessage `json:"body"`
}

type lineProblem struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// finalize ends a batch whose lines are all final: it writes the output
// file (the lines that succeeded) and the error file (the rest), in input
// order, and records the batch completed, expired or cancelled with its
// exact counts. A batch with a line not yet final is left as it is: the
// line's end queues the finalization again. Run twice, it writes the same
// files under the same ids.
func (w *worker) finalize(ctx context.Context, id string) error {
	k := key(kindBatch, id)
	rec := new(batchRecord)
	if _, err := load(ctx, w.b.Records, k, rec); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	st := rec.Batch.Status
	switch {
	case st.Final():
		return nil
	case st == BatchValidating:
		return nil // its validation finalizes it if it is cancelled
	}
	total := rec.Batch.RequestCounts.Total
	lines := make([]*jobRecord, 0, total)
	for n := 1; n <= total; n++ {
		jr := new(jobRecord)
		if _, err := load(ctx, w.b.Records, key(kindJob, lineID(id, n)), jr); err != nil {
			if errors.Is(err, ErrNotFound) && st == BatchCancelling {
				continue // never created: the batch was cancelled first
			}
			return err
		}
		if !jr.Job.Status.Final() {
			if st != BatchCancelling {
				return nil // not done: its end queues this again
			}
			// Cancelling: a queued line is cancelled when taken; wait for it.
			return nil
		}
		lines = append(lines, jr)
	}
	now := w.s.now().Unix()
	if st == BatchInProgress {
		if _, err := update(ctx, w.b.Records, k, func(r *batchRecord) error {
			if r.Batch.Status != BatchInProgress {
				return errUnchanged
			}
			r.Batch.Status, r.Batch.FinalizingAt = BatchFinalizing, now
			return nil
		}); err != nil {
			return err
		}
	}
	var counts Counts
	counts.Total = total
	expired := false
	var out, bad []*jobRecord
	for _, jr := range lines {
		if jr.Job.Status == Succeeded {
			out = append(out, jr)
			counts.Completed++
		} else {
			bad = append(bad, jr)
			counts.Failed++
			expired = expired || jr.Job.Status == Expired
		}
	}
	outID, errID := "", ""
	var err error
	if len(out) > 0 {
		if outID, err = w.writeOutput(ctx, rec, "file-out-"+strings.TrimPrefix(id, "batch_"), "batch_"+id+"_output.jsonl", out); err != nil {
			return err
		}
	}
	if len(bad) > 0 {
		if errID, err = w.writeOutput(ctx, rec, "file-err-"+strings.TrimPrefix(id, "batch_"), "batch_"+id+"_error.jsonl", bad); err != nil {
			return err
		}
	}
	done := w.s.now().Unix()
	var ended BatchStatus // "" unless this run ended it
	_, err = update(ctx, w.b.Records, k, func(r *batchRecord) error {
		ended = ""
		if r.Batch.Status.Final() {
			return errUnchanged
		}
		defer func() { ended = r.Batch.Status }()
		r.Batch.OutputFileID, r.Batch.ErrorFileID, r.Batch.RequestCounts = outID, errID, counts
		switch {
		case r.Batch.Status == BatchCancelling:
			r.Batch.Status, r.Batch.CancelledAt = BatchCancelled, done
		case expired:
			r.Batch.Status, r.Batch.ExpiredAt = BatchExpired, done
		default:
			r.Batch.Status, r.Batch.CompletedAt = BatchCompleted, done
		}
		return nil
	})
	w.s.forgetStatus(id)
	if err == nil && ended != "" {
		w.s.opt.Metrics.BatchFinished(string(ended))
	}
	return err
}

// writeOutput writes the lines of a batch's output or error file under
// the file id fid, and its record, and returns fid.
func (w *worker) writeOutput(ctx context.Context, rec *batchRecord, fid, name string, lines []*jobRecord) (string, error) {
	pr, pw := io.Pipe()
	go func() {
		bw := bufio.NewWriterSize(pw, 64<<10)
		enc := json.NewEncoder(bw)
		for _, jr := range lines {
			if err := enc.Encode(lineOf(jr)); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(bw.Flush())
	}()
	n, err := w.b.Files.Put(ctx, fid, pr)
	pr.Close()
	if err != nil {
		return "", err
	}
	now := w.s.now()
	f := File{ID: fid, Object: "file", Bytes: n, CreatedAt: now.Unix(), Filename: name, Purpose: PurposeBatchOutput, Status: "processed"}
	if w.s.cfg.Retention > 0 {
		f.ExpiresAt = now.Add(w.s.cfg.Retention.D()).Unix()
	}
	b, err := json.Marshal(&fileRecord{File: f, Owner: rec.Owner})
	if err != nil {
		return "", err
	}
	k := key(kindFile, fid)
	if err := w.b.Records.Delete(ctx, k); err != nil { // an earlier run's, of the same lines
		return "", err
	}
	if err := w.b.Records.Create(ctx, []Record{{Key: k, Val: b}}); err != nil {
		return "", err
	}
	return fid, nil
}

// lineOf is a final batch line's output line.
func lineOf(jr *jobRecord) outputLine {
	l := outputLine{ID: "batch_req_" + jr.Job.ID, CustomID: jr.Job.CustomID}
	switch {
	case jr.Job.Response != nil:
		r := jr.Job.Response
		l.Response = &lineAnswer{StatusCode: r.StatusCode, RequestID: r.RequestID, Body: r.Body}
	case jr.Job.Status == Expired:
		l.Error = &lineProblem{Code: "batch_expired", Message: "This request could not be executed before the completion window expired."}
	case jr.Job.Status == Cancelled:
		l.Error = &lineProblem{Code: "batch_cancelled", Message: "This request was not executed because the batch was cancelled."}
	default:
		l.Error = &lineProblem{Code: "batch_failed", Message: "This request failed."}
	}
	return l
}
