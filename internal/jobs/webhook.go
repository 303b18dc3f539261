package jobs

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Headers of a webhook delivery.
const (
	// HeaderSignature is "t=<unix seconds>,v1=<hex HMAC-SHA256 of
	// "<t>.<body>" under the webhook secret>", as Stripe's: a receiver
	// recomputes it, and rejects an old t to stop replays.
	HeaderSignature = "X-Omnigate-Signature"
	// HeaderEvent is "job.<status>": job.succeeded, job.failed…
	HeaderEvent = "X-Omnigate-Event"
	// HeaderDelivery is the job id: a receiver told twice (a delivery
	// whose answer was lost) can tell.
	HeaderDelivery = "X-Omnigate-Delivery"
)

// Sign returns the signature header value of body at t under secret.
func Sign(secret, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

// notify queues the delivery of a final job to its webhook: a task, so
// that a gateway that dies before it is done leaves it to another.
func (s *Service) notify(b *Backend, rec *jobRecord) {
	if err := b.Queue.Push(context.Background(), key(kindHook, rec.Job.ID)); err != nil {
		s.opt.Log.Warn("webhook not queued", "job", rec.Job.ID, "err", err)
	}
}

// deliverHook delivers the final job with id to its webhook: the job as
// GET /v1/jobs/{id} shows it, POSTed and signed, tried again with
// exponential backoff (from 1 s) until a 2xx or jobs.webhook.attempts.
// The job is then marked delivered, so a second task for it (the first
// runner died after delivering, before its ack) does not tell it twice.
// A nil error acks the task; ctx's end leaves it to the next runner.
func (s *Service) deliverHook(ctx context.Context, b *Backend, id string) error {
	rec := new(jobRecord)
	if _, err := load(ctx, b.Records, key(kindJob, id), rec); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	if rec.Delivered || rec.Job.Webhook == "" || !rec.Job.Status.Final() {
		return nil
	}
	body, err := json.Marshal(&rec.Job)
	if err != nil {
		return err
	}
	for n := 1; ; n++ {
		err := s.deliver(ctx, rec, body)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if n >= s.cfg.Webhook.Attempts {
			s.opt.Log.Warn("webhook not delivered; giving up", "job", id, "url", rec.Job.Webhook, "attempts", n, "err", err)
			break
		}
		s.opt.Log.Info("webhook not delivered; trying again", "job", id, "attempt", n, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.opt.Clock.After(min(time.Second<<(n-1), 5*time.Minute)):
		}
	}
	_, err = update(ctx, b.Records, key(kindJob, id), func(r *jobRecord) error {
		r.Delivered = true
		return nil
	})
	return err
}

// deliver makes one delivery of a job's webhook.
func (s *Service) deliver(ctx context.Context, rec *jobRecord, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rec.Job.Webhook, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderSignature, Sign(s.opt.Secret, body, s.now()))
	req.Header.Set(HeaderEvent, "job."+string(rec.Job.Status))
	req.Header.Set(HeaderDelivery, rec.Job.ID)
	resp, err := s.opt.Client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return fmt.Errorf("the webhook answered %d", resp.StatusCode)
	}
	return nil
}
