package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/omnigate/omnigate/internal/apierror"
)

// Tasks in the queue: "job/<id>" runs a job (of its own or a batch
// line), "batch/<id>" validates a batch and queues its lines,
// "final/<id>" writes a batch's output files, "hook/<id>" tells a final
// job's webhook.
const (
	kindFinal = "final"
	kindHook  = "hook"
)

// worker takes tasks from the queue and runs them.
type worker struct {
	s *Service
	b *Backend
}

// takeWait is how long one Take waits for a task.
const takeWait = 2 * time.Second

// Why a run's context ended, when not the gateway stopping.
var (
	errCancelled = errors.New("the job was cancelled")
	errLeaseLost = errors.New("the job's lease lapsed")
)

// loop takes tasks until taking ends, and runs each with a context that
// ends with running (the gateway's last moment).
func (w *worker) loop(taking, running context.Context) {
	for taking.Err() == nil {
		d, err := w.b.Queue.Take(taking, takeWait)
		if err != nil {
			if taking.Err() != nil {
				return
			}
			w.s.opt.Log.Warn("job queue unavailable", "err", err)
			w.pause(taking, time.Second)
			continue
		}
		if d == nil {
			continue
		}
		if strings.HasPrefix(d.Task(), kindHook+"/") && w.s.hooks.TryAcquire() {
			// A webhook may wait minutes between deliveries: it runs
			// beside the workers, not in one (bounded: else inline).
			w.s.workers.Go(func() { // this loop is in the group: it is not at 0
				defer w.s.hooks.Release()
				w.handle(running, d)
			})
			continue
		}
		w.handle(running, d)
	}
}

// pause waits d, or until ctx ends.
func (w *worker) pause(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-w.s.opt.Clock.After(d):
		return true
	}
}

// handle runs one task, keeping its lease, and acks it once it is done
// with: a task left unacked (its lease lost, the gateway stopping, the
// store failing) runs again after its lease lapses.
func (w *worker) handle(ctx context.Context, d Delivery) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	kind, id, _ := strings.Cut(d.Task(), "/")
	beat := make(chan struct{})
	go w.keep(ctx, cancel, d, kind, id, beat)
	var err error
	switch kind {
	case kindJob:
		err = w.runJob(ctx, id)
	case kindBatch:
		err = w.validate(ctx, id)
	case kindFinal:
		err = w.finalize(ctx, id)
	case kindHook:
		err = w.s.deliverHook(ctx, w.b, id)
	default:
		w.s.opt.Log.Error("unknown job task, dropped", "task", d.Task())
	}
	cancel(nil)
	<-beat
	if errors.Is(err, errRunnerAlive) {
		w.s.opt.Log.Debug("job task left to the job's runner; it comes again after its lease", "task", d.Task(), "attempt", d.Attempt())
		return
	}
	if err != nil {
		if c := context.Cause(ctx); c != errCancelled {
			w.s.opt.Log.Warn("job task not done; it runs again once its lease lapses", "task", d.Task(), "attempt", d.Attempt(), "err", err)
			return
		}
	}
	if err := d.Ack(context.WithoutCancel(ctx)); err != nil {
		w.s.opt.Log.Warn("job task not acked; it may run again", "task", d.Task(), "err", err)
	}
}

// errRunnerAlive: the job's runner beat within the lease, so this
// delivery leaves the job to it, unacked. Acking would lose the job when
// that runner has just died (a delivery comes a lease after the dead
// runner's last extend, and its beat follows that extend by a moment) or
// is about to give up a lease it lost: the task comes again after its
// lease, to find the job final, its runner still beating, or its beat
// stale, and then runs it.
var errRunnerAlive = errors.New("jobs: the job's runner is alive")

// keep extends d's lease every third of it until ctx ends, and ends ctx
// when the lease is lost or the job was cancelled. Every beat it also
// tells the job's record the runner is alive.
func (w *worker) keep(ctx context.Context, cancel context.CancelCauseFunc, d Delivery, kind, id string, done chan struct{}) {
	defer close(done)
	lease := w.s.cfg.Lease.D()
	check := min(lease/3, time.Second) // how soon a cancel is seen
	last := w.s.now()
	for w.pause(ctx, check) {
		if kind == kindJob && w.cancelled(ctx, id) {
			cancel(errCancelled)
			return
		}
		if w.s.now().Sub(last) < lease/3 {
			continue
		}
		last = w.s.now()
		if err := d.Extend(ctx); err != nil {
			if errors.Is(err, ErrLeaseLost) {
				w.s.opt.Log.Warn("job lease lost; another gateway runs it", "task", d.Task())
				cancel(errLeaseLost)
				return
			}
			w.s.opt.Log.Warn("job lease not extended", "task", d.Task(), "err", err)
		}
		if kind == kindJob {
			w.beat(ctx, id)
		}
	}
}

// cancelled reports whether the job with id, or its batch, was cancelled.
func (w *worker) cancelled(ctx context.Context, id string) bool {
	rec := new(jobRecord)
	if _, err := load(ctx, w.b.Records, key(kindJob, id), rec); err != nil {
		return false
	}
	if rec.Job.Status == Cancelled {
		return true
	}
	return rec.Job.Batch != "" && w.batchCancelling(ctx, rec.Job.Batch)
}

// beat records that the job's runner is alive.
func (w *worker) beat(ctx context.Context, id string) {
	now := w.s.now().UnixMilli()
	update(ctx, w.b.Records, key(kindJob, id), func(r *jobRecord) error {
		if r.Job.Status != Running {
			return errUnchanged
		}
		r.Beat = now
		return nil
	})
}

// runJob runs the job with id through the request core until it has an
// answer to keep, or a final failure, and records it; the first answer
// recorded is the job's for good, so a job run twice (its first runner
// died, or lost its lease) never shows two answers.
func (w *worker) runJob(ctx context.Context, id string) error {
	s, k := w.s, key(kindJob, id)
	rec := new(jobRecord)
	if _, err := load(ctx, w.b.Records, k, rec); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil // deleted: nothing to run
		}
		return err
	}
	now := s.now()
	lease := s.cfg.Lease.D()
	switch {
	case rec.Job.Status.Final():
		s.finished(ctx, w.b, rec) // what a crash may have left undone
		return nil
	case rec.Job.Status == Running && rec.Beat > 0 && now.Sub(time.UnixMilli(rec.Beat)) < lease:
		return errRunnerAlive
	}
	// Mark it running, or final when it cannot run.
	var final *Response
	status := Running
	dup := false
	rec, err := update(ctx, w.b.Records, k, func(r *jobRecord) error {
		status, final, dup = Running, nil, false
		if r.Job.Status.Final() {
			return errUnchanged
		}
		if r.Job.Status == Running && r.Beat > 0 && now.Sub(time.UnixMilli(r.Beat)) < lease {
			dup = true // another runner took it meanwhile
			return errUnchanged
		}
		switch {
		case r.Job.Batch != "" && w.batchCancelling(ctx, r.Job.Batch):
			status = Cancelled
		case now.Unix() >= r.Job.ExpiresAt:
			status = Expired
		case r.Job.Attempts >= s.cfg.MaxAttempts:
			status, final = Failed, errorResponse(id, apierror.New(http.StatusInternalServerError, "job_attempts_exhausted",
				"The job was tried %d times without an answer.", r.Job.Attempts))
		}
		r.Job.Status = status
		if status == Running {
			r.Job.Attempts++
			r.Job.StartedAt, r.Beat = now.Unix(), now.UnixMilli()
		} else {
			r.Job.CompletedAt, r.Job.Response = now.Unix(), final
		}
		return nil
	})
	if err != nil {
		return err
	}
	if dup {
		return errRunnerAlive
	}
	if rec.Job.Status != Running {
		if status != Running { // this run ended it
			s.ended(rec)
		}
		s.finished(ctx, w.b, rec)
		return nil
	}
	header := http.Header{"X-Omnigate-Priority": {"batch"}}
	for k, v := range rec.Header {
		if k == "Owner" {
			header.Set("Authorization", "owner "+v) // the tenant, for fairness
			continue
		}
		header.Set(k, v)
	}
	s.opt.Metrics.JobRunning(1)
	defer s.opt.Metrics.JobRunning(-1)
	var ans Answer
	for n := rec.Job.Attempts; ; n++ {
		ans = s.exec.Execute(ctx, rec.Job.Endpoint, rec.Body, header, id)
		if ans.Err != nil {
			return w.stopped(ctx, k) // cancelled, lease lost or stopping
		}
		if !retryable(ans.Status) || spentBudget(ans) || n >= s.cfg.MaxAttempts {
			break
		}
		wait := min(time.Second<<(n-1), 30*time.Second)
		if s.now().Add(wait).Unix() >= rec.Job.ExpiresAt {
			break
		}
		if !w.pause(ctx, wait) {
			return w.stopped(ctx, k)
		}
		if _, err := update(ctx, w.b.Records, k, func(r *jobRecord) error {
			if r.Job.Status != Running {
				return errCancelled
			}
			r.Job.Attempts++
			return nil
		}); err != nil {
			return err
		}
	}
	resp := &Response{StatusCode: ans.Status, RequestID: id, Body: jsonBody(ans.Body), Model: ans.Model, Deployment: ans.Deployment}
	done := s.now().Unix()
	mine := false
	rec, err = update(ctx, w.b.Records, k, func(r *jobRecord) error {
		mine = false
		if r.Job.Status.Final() {
			return errUnchanged // cancelled meanwhile, or answered by another run: that stands
		}
		mine = true
		r.Job.Status, r.Job.Response, r.Job.CompletedAt = Failed, resp, done
		if ans.Status >= 200 && ans.Status < 300 {
			r.Job.Status = Succeeded
		}
		return nil
	})
	if err != nil {
		return err
	}
	if mine {
		s.ended(rec)
	}
	s.finished(ctx, w.b, rec)
	return nil
}

// ended counts a job this gateway made final.
func (s *Service) ended(rec *jobRecord) {
	s.opt.Metrics.JobFinished(rec.Job.Batch != "", string(rec.Job.Status))
}

// stopped ends the run of the job under k whose context ended: a job
// cancelled (or of a batch being cancelled) is recorded cancelled; else
// it is left for its next delivery, and the cause returned.
func (w *worker) stopped(ctx context.Context, k string) error {
	cause := context.Cause(ctx)
	if cause != errCancelled {
		return cause
	}
	ctx = context.WithoutCancel(ctx)
	now := w.s.now().Unix()
	mine := false
	rec, err := update(ctx, w.b.Records, k, func(r *jobRecord) error {
		mine = false
		if r.Job.Status.Final() {
			return errUnchanged
		}
		mine = true
		r.Job.Status, r.Job.CompletedAt = Cancelled, now
		return nil
	})
	if err != nil {
		return err
	}
	if mine {
		w.s.ended(rec)
	}
	w.s.finished(ctx, w.b, rec)
	return nil
}

// errorResponse is a job's response for a failure the gateway decided.
func errorResponse(id string, e *apierror.Error) *Response {
	return &Response{StatusCode: e.Status, RequestID: id, Body: e.JSON()}
}

// jsonBody is b when it is JSON, else b as a JSON string: a record holds
// JSON.
func jsonBody(b []byte) []byte {
	if len(b) > 0 && json.Valid(b) {
		return b
	}
	s, _ := json.Marshal(string(b))
	return s
}

// finished does what follows a job's end, once: it counts the job for its
// batch (queueing the batch's finalization when it was the last) and
// tells its webhook.
func (s *Service) finished(ctx context.Context, b *Backend, rec *jobRecord) {
	ctx = context.WithoutCancel(ctx)

	if rec.Job.Batch != "" && !rec.Counted {
		s.count(ctx, b, rec)
	}
	if rec.Job.Webhook != "" && !rec.Delivered {
		s.notify(b, rec)
	}
}

// sweepEvery is how often a gateway looks for batches to finalize.
const sweepEvery = 30 * time.Second

// sweep repairs what a crash may leave undone, until ctx ends: a running
// batch whose lines are all counted gets its finalization queued again
// (the queueing may have been lost), and one past its window too (its
// lines expire as they are taken).
func (w *worker) sweep(ctx context.Context) {
	for w.pause(ctx, sweepEvery) {
		keys, err := w.b.Records.List(ctx, kindBatch, "", 1000)
		if err != nil {
			continue
		}
		for _, k := range keys {
			rec := new(batchRecord)
			if _, err := load(ctx, w.b.Records, k, rec); err != nil {
				continue
			}
			st := rec.Batch.Status
			if st != BatchInProgress && st != BatchFinalizing && st != BatchCancelling {
				continue
			}
			n, err := w.b.Records.Add(ctx, doneCounter(rec.Batch.ID), 0)
			if err == nil && int(n) >= rec.Batch.RequestCounts.Total {
				w.b.Queue.Push(ctx, key(kindFinal, rec.Batch.ID))
			}
		}
	}
}

// retainEvery is how often a gateway deletes what is past retention.
const retainEvery = time.Hour

// retain deletes, every retainEvery until ctx ends, the final jobs and
// batches completed longer than jobs.retention ago and the files created
// that long ago, contents included. Every gateway sharing a store does it;
// deleting twice is harmless.
func (w *worker) retain(ctx context.Context) {
	for {
		w.retainOnce(ctx)
		if !w.pause(ctx, retainEvery) {
			return
		}
	}
}

func (w *worker) retainOnce(ctx context.Context) {
	keep := w.s.cfg.Retention.D()
	if keep <= 0 {
		return
	}
	cut := w.s.now().Add(-keep).Unix()
	w.each(ctx, kindJob, func(k string, v []byte) bool {
		var r jobRecord
		return json.Unmarshal(v, &r) == nil && r.Job.Status.Final() && r.Job.CompletedAt < cut
	})
	w.each(ctx, kindBatch, func(k string, v []byte) bool {
		var r batchRecord
		return json.Unmarshal(v, &r) == nil && r.Batch.Status.Final() && r.Batch.CreatedAt < cut
	})
	w.each(ctx, kindFile, func(k string, v []byte) bool {
		var r fileRecord
		if json.Unmarshal(v, &r) != nil || r.File.CreatedAt >= cut {
			return false
		}
		return w.b.Files.Delete(ctx, r.File.ID) == nil
	})
}

// each deletes the records of kind that old says are past retention.
func (w *worker) each(ctx context.Context, kind string, old func(k string, v []byte) bool) {
	below := ""
	for ctx.Err() == nil {
		keys, err := w.b.Records.List(ctx, kind, below, 500)
		if err != nil || len(keys) == 0 {
			return
		}
		for _, k := range keys {
			if v, _, err := w.b.Records.Get(ctx, k); err == nil && old(k, v) {
				w.b.Records.Delete(ctx, k)
			}
		}
		below = keys[len(keys)-1]
	}
}
