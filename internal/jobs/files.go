package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/omnigate/omnigate/internal/apierror"
)

// File is a stored file, in OpenAI's shape: batch input uploaded by a
// client (purpose batch), or a batch's output or error file (purpose
// batch_output).
type File struct {
	ID        string `json:"id"`
	Object    string `json:"object"` // "file"
	Bytes     int64  `json:"bytes"`
	CreatedAt int64  `json:"created_at"`
	ExpiresAt int64  `json:"expires_at,omitempty"`
	Filename  string `json:"filename"`
	Purpose   string `json:"purpose"`
	Status    string `json:"status"` // "processed"
}

// fileRecord is a file as stored.
type fileRecord struct {
	File  File   `json:"file"`
	Owner string `json:"owner,omitempty"`
}

// The purposes of files.
const (
	PurposeBatch       = "batch"
	PurposeBatchOutput = "batch_output"
)

// PutFile stores an uploaded file: r's bytes, at most jobs.max_file_bytes.
func (s *Service) PutFile(ctx context.Context, purpose, filename string, r io.Reader, h http.Header) (*File, error) {
	if purpose != PurposeBatch {
		return nil, apierror.Invalid("purpose", "This gateway stores files for batches only: purpose must be %q, not %q.", PurposeBatch, purpose)
	}
	b, err := s.backend(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	f := File{ID: newID("file-", now), Object: "file", CreatedAt: now.Unix(), Filename: filename, Purpose: purpose, Status: "processed"}
	if s.cfg.Retention > 0 {
		f.ExpiresAt = now.Add(s.cfg.Retention.D()).Unix()
	}
	max := s.cfg.MaxFileBytes
	lr := &io.LimitedReader{R: r, N: max + 1}
	n, err := b.Files.Put(ctx, f.ID, lr)
	if err == nil && n > max {
		b.Files.Delete(context.WithoutCancel(ctx), f.ID)
		e := apierror.New(http.StatusRequestEntityTooLarge, "file_too_large", "The file is larger than %d bytes (jobs.max_file_bytes).", max)
		e.Param = "file"
		return nil, e
	}
	if err != nil {
		return nil, storeError(err)
	}
	f.Bytes = n
	if _, err := store(ctx, b.Records, key(kindFile, f.ID), &fileRecord{File: f, Owner: owner(h)}, 0); err != nil {
		b.Files.Delete(context.WithoutCancel(ctx), f.ID)
		return nil, storeError(err)
	}
	return &f, nil
}

// file reads the record of the file with id, if it is the caller's.
func (s *Service) file(ctx context.Context, id string, h http.Header) (*Backend, *fileRecord, error) {
	if !validID(id) {
		return nil, nil, notFound("file", "file_id", id)
	}
	b, err := s.backend(ctx)
	if err != nil {
		return nil, nil, err
	}
	rec := new(fileRecord)
	if _, err := load(ctx, b.Records, key(kindFile, id), rec); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, nil, notFound("file", "file_id", id)
		}
		return nil, nil, storeError(err)
	}
	if rec.Owner != "" && rec.Owner != owner(h) {
		return nil, nil, notFound("file", "file_id", id)
	}
	return b, rec, nil
}

// GetFile returns the file with id.
func (s *Service) GetFile(ctx context.Context, id string, h http.Header) (*File, error) {
	_, rec, err := s.file(ctx, id, h)
	if err != nil {
		return nil, err
	}
	return &rec.File, nil
}

// OpenFile returns the file with id and its contents, for the caller to
// close.
func (s *Service) OpenFile(ctx context.Context, id string, h http.Header) (*File, io.ReadCloser, error) {
	b, rec, err := s.file(ctx, id, h)
	if err != nil {
		return nil, nil, err
	}
	rc, err := b.Files.Open(ctx, id)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, nil, notFound("file", "file_id", id)
		}
		return nil, nil, storeError(err)
	}
	return &rec.File, rc, nil
}

// DeleteFile deletes the file with id.
func (s *Service) DeleteFile(ctx context.Context, id string, h http.Header) error {
	b, _, err := s.file(ctx, id, h)
	if err != nil {
		return err
	}
	if err := b.Files.Delete(ctx, id); err != nil {
		return storeError(err)
	}
	if err := b.Records.Delete(ctx, key(kindFile, id)); err != nil {
		return storeError(err)
	}
	return nil
}

// ListFiles returns up to limit of the caller's files, newest first,
// older than the file after ("" from the newest), of purpose ("" any),
// and whether there are more.
func (s *Service) ListFiles(ctx context.Context, purpose, after string, limit int, h http.Header) ([]File, bool, error) {
	var out []File
	more, err := s.list(ctx, kindFile, after, limit, func(b []byte) bool {
		var rec fileRecord
		if json.Unmarshal(b, &rec) != nil || (rec.Owner != "" && rec.Owner != owner(h)) || (purpose != "" && rec.File.Purpose != purpose) {
			return false
		}
		out = append(out, rec.File)
		return true
	})
	return out, more, err
}

// list pages through the records of kind, newest first, from below after,
// giving each to take (which says whether it counted) until limit counted;
// it reports whether more remain.
func (s *Service) list(ctx context.Context, kind, after string, limit int, take func([]byte) bool) (bool, error) {
	if after != "" && !validID(after) {
		return false, apierror.Invalid("after", "after must be an id from an earlier list, not %q.", after)
	}
	b, err := s.backend(ctx)
	if err != nil {
		return false, err
	}
	below := ""
	if after != "" {
		below = key(kind, after)
	}
	n := 0
	for {
		keys, err := b.Records.List(ctx, kind, below, 100)
		if err != nil {
			return false, storeError(err)
		}
		for _, k := range keys {
			if n == limit {
				return true, nil
			}
			v, _, err := b.Records.Get(ctx, k)
			if err != nil {
				continue // deleted meanwhile
			}
			if take(v) {
				n++
			}
		}
		if len(keys) < 100 {
			return false, nil
		}
		below = keys[len(keys)-1]
	}
}
