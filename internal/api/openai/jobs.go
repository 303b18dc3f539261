package openai

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/dispatch"
	"github.com/omnigate/omnigate/internal/jobs"
	"github.com/omnigate/omnigate/internal/request"
)

// submitJob answers a POST with X-Omnigate-Async: true (value v) with a
// job: 202, the job, and its Location. "false" serves it as usual
// (reported by the false result).
func (s *Server) submitJob(w http.ResponseWriter, r *http.Request, ep request.Endpoint, body []byte, reqID, v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "false", "0":
		return false
	case "true", "1":
	default:
		s.reject(w, r, apierror.Invalid(jobs.HeaderAsync, "The %s header must be true or false, not %q.", jobs.HeaderAsync, v), reqID)
		return true
	}
	if s.opt.Jobs == nil {
		s.reject(w, r, apierror.New(http.StatusNotImplemented, "jobs_disabled", "Background jobs are not enabled on this gateway."), reqID)
		return true
	}
	if !s.keyed(w, r, reqID) {
		return true
	}
	job, err := s.opt.Jobs.Submit(r.Context(), "/v1/"+ep.Path(), body, r.Header)
	if err != nil {
		s.reject(w, r, err, reqID)
		return true
	}
	w.Header().Set("Location", "/v1/jobs/"+job.ID)
	s.writeObject(w, r, http.StatusAccepted, job, reqID)
	return true
}

// writeObject answers v as JSON, and counts the request.
func (s *Server) writeObject(w http.ResponseWriter, r *http.Request, status int, v any, reqID string) {
	b, err := json.Marshal(v)
	if err != nil {
		s.reject(w, r, err, reqID)
		return
	}
	writeJSON(w, status, append(b, '\n'))
	s.opt.Core.Done(&dispatch.Call{RequestID: reqID}, nil, status, nil)
}

// serveJobs serves /v1/jobs/…, /v1/files… and /v1/batches…; it reports
// false for any other path.
func (s *Server) serveJobs(w http.ResponseWriter, r *http.Request, p, reqID string) bool {
	var rest string
	var serve func(http.ResponseWriter, *http.Request, string, string)
	switch {
	case strings.HasPrefix(p, "/v1/jobs/"):
		rest, serve = strings.TrimPrefix(p, "/v1/jobs/"), s.serveJob
	case p == "/v1/files" || strings.HasPrefix(p, "/v1/files/"):
		rest, serve = strings.TrimPrefix(strings.TrimPrefix(p, "/v1/files"), "/"), s.serveFiles
	case p == "/v1/batches" || strings.HasPrefix(p, "/v1/batches/"):
		rest, serve = strings.TrimPrefix(strings.TrimPrefix(p, "/v1/batches"), "/"), s.serveBatches
	default:
		return false
	}
	if s.opt.Jobs == nil {
		s.reject(w, r, apierror.New(http.StatusNotImplemented, "jobs_disabled", "Background jobs, files and batches are not enabled on this gateway."), reqID)
		return true
	}
	if s.keyed(w, r, reqID) {
		serve(w, r, rest, reqID)
	}
	return true
}

// keyed checks the client's API key for an endpoint the core does not
// serve (jobs, files, batches, models), and names it to the jobs service
// (jobs.HeaderKey, which a client cannot set itself). It answers the
// 401 and reports false when the key is refused.
func (s *Server) keyed(w http.ResponseWriter, r *http.Request, reqID string) bool {
	delete(r.Header, jobs.HeaderKey)
	k, err := s.opt.Core.Authenticate(r.Header)
	if err != nil {
		s.reject(w, r, err, reqID)
		return false
	}
	if k != nil {
		r.Header[jobs.HeaderKey] = []string{k.Name}
	}
	return true
}

// methods answers 405 unless r's method is one of allowed.
func (s *Server) methods(w http.ResponseWriter, r *http.Request, reqID string, allowed ...string) bool {
	for _, m := range allowed {
		if r.Method == m || (m == http.MethodGet && r.Method == http.MethodHead) {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	s.reject(w, r, apierror.New(http.StatusMethodNotAllowed, "method_not_allowed", "%s is not allowed on %s; use %s.",
		r.Method, r.URL.EscapedPath(), strings.Join(allowed, " or ")), reqID)
	return false
}

// serveJob serves /v1/jobs/{id} (GET, DELETE) and /v1/jobs/{id}/response
// (GET: the answer alone, with its status, as the synchronous call would
// have sent it).
func (s *Server) serveJob(w http.ResponseWriter, r *http.Request, rest, reqID string) {
	id, sub, _ := strings.Cut(rest, "/")
	ctx := r.Context()
	switch sub {
	case "":
		if !s.methods(w, r, reqID, http.MethodGet, http.MethodDelete) {
			return
		}
		var job *jobs.Job
		var err error
		if r.Method == http.MethodDelete {
			job, err = s.opt.Jobs.Cancel(ctx, id, r.Header)
		} else {
			job, err = s.opt.Jobs.Get(ctx, id, r.Header)
		}
		if err != nil {
			s.reject(w, r, err, reqID)
			return
		}
		s.writeObject(w, r, http.StatusOK, job, reqID)
	case "response":
		if !s.methods(w, r, reqID, http.MethodGet) {
			return
		}
		job, err := s.opt.Jobs.Get(ctx, id, r.Header)
		if err != nil {
			s.reject(w, r, err, reqID)
			return
		}
		if job.Response == nil {
			s.reject(w, r, apierror.New(http.StatusConflict, "job_not_final", "Job %s is %s: it has no response yet.", id, job.Status), reqID)
			return
		}
		writeJSON(w, job.Response.StatusCode, append(job.Response.Body, '\n'))
		s.opt.Core.Done(&dispatch.Call{RequestID: reqID}, nil, job.Response.StatusCode, nil)
	default:
		s.reject(w, r, apierror.New(http.StatusNotFound, "unknown_url", "Unknown request URL: %s %s.", r.Method, r.URL.EscapedPath()), reqID)
	}
}

// page reads the list parameters after and limit (1–100, default 20).
func page(r *http.Request) (after string, limit int, err error) {
	q := r.URL.Query()
	limit = 20
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return "", 0, apierror.Invalid("limit", "limit must be a whole number from 1 to 100, not %q.", v)
		}
		limit = n
	}
	return q.Get("after"), limit, nil
}

// list is OpenAI's list object.
type list[T any] struct {
	Object  string `json:"object"`
	Data    []T    `json:"data"`
	FirstID string `json:"first_id,omitempty"`
	LastID  string `json:"last_id,omitempty"`
	HasMore bool   `json:"has_more"`
}

func listOf[T any](data []T, more bool, id func(*T) string) list[T] {
	l := list[T]{Object: "list", Data: data, HasMore: more}
	if l.Data == nil {
		l.Data = []T{}
	}
	if len(data) > 0 {
		l.FirstID, l.LastID = id(&data[0]), id(&data[len(data)-1])
	}
	return l
}

// serveFiles serves /v1/files (POST a multipart upload, GET a list),
// /v1/files/{id} (GET, DELETE) and /v1/files/{id}/content (GET).
func (s *Server) serveFiles(w http.ResponseWriter, r *http.Request, rest, reqID string) {
	ctx := r.Context()
	id, sub, _ := strings.Cut(rest, "/")
	switch {
	case id == "":
		if !s.methods(w, r, reqID, http.MethodGet, http.MethodPost) {
			return
		}
		if r.Method == http.MethodPost {
			s.upload(w, r, reqID)
			return
		}
		after, limit, err := page(r)
		if err != nil {
			s.reject(w, r, err, reqID)
			return
		}
		files, more, err := s.opt.Jobs.ListFiles(ctx, r.URL.Query().Get("purpose"), after, limit, r.Header)
		if err != nil {
			s.reject(w, r, err, reqID)
			return
		}
		s.writeObject(w, r, http.StatusOK, listOf(files, more, func(f *jobs.File) string { return f.ID }), reqID)
	case sub == "":
		if !s.methods(w, r, reqID, http.MethodGet, http.MethodDelete) {
			return
		}
		if r.Method == http.MethodDelete {
			if err := s.opt.Jobs.DeleteFile(ctx, id, r.Header); err != nil {
				s.reject(w, r, err, reqID)
				return
			}
			s.writeObject(w, r, http.StatusOK, map[string]any{"id": id, "object": "file", "deleted": true}, reqID)
			return
		}
		f, err := s.opt.Jobs.GetFile(ctx, id, r.Header)
		if err != nil {
			s.reject(w, r, err, reqID)
			return
		}
		s.writeObject(w, r, http.StatusOK, f, reqID)
	case sub == "content":
		if !s.methods(w, r, reqID, http.MethodGet) {
			return
		}
		f, rc, err := s.opt.Jobs.OpenFile(ctx, id, r.Header)
		if err != nil {
			s.reject(w, r, err, reqID)
			return
		}
		defer rc.Close()
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		if strings.HasSuffix(f.Filename, ".jsonl") {
			h.Set("Content-Type", "application/jsonl")
		}
		h.Set("Content-Length", strconv.FormatInt(f.Bytes, 10))
		w.WriteHeader(http.StatusOK)
		status := http.StatusOK
		if _, err := io.Copy(w, rc); err != nil {
			status = apierror.StatusClientClosed
		}
		s.opt.Core.Done(&dispatch.Call{RequestID: reqID}, nil, status, nil)
	default:
		s.reject(w, r, apierror.New(http.StatusNotFound, "unknown_url", "Unknown request URL: %s %s.", r.Method, r.URL.EscapedPath()), reqID)
	}
}

// maxFormMemory is how much of an upload is held in memory; the rest is
// spooled to a temporary file until it is stored.
const maxFormMemory = 8 << 20

// upload stores a file POSTed as multipart/form-data with the fields
// purpose and file, as the OpenAI SDKs send it.
func (s *Server) upload(w http.ResponseWriter, r *http.Request, reqID string) {
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		s.reject(w, r, &apierror.Error{Status: http.StatusUnsupportedMediaType, Type: apierror.TypeInvalidRequest, Code: "unsupported_media_type",
			Message: "Upload a file as multipart/form-data with the fields purpose and file."}, reqID)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.opt.MaxFileBytes+1<<20)
	if err := r.ParseMultipartForm(maxFormMemory); err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			e := apierror.New(http.StatusRequestEntityTooLarge, "file_too_large", "The upload is larger than %d bytes (jobs.max_file_bytes).", s.opt.MaxFileBytes)
			e.Param = "file"
			s.reject(w, r, e, reqID)
			return
		}
		s.reject(w, r, apierror.Invalid("file", "The upload is not a valid multipart form: %v.", err), reqID)
		return
	}
	defer r.MultipartForm.RemoveAll()
	purpose := r.FormValue("purpose")
	if purpose == "" {
		s.reject(w, r, apierror.Invalid("purpose", "Missing required parameter: 'purpose'."), reqID)
		return
	}
	fh := r.MultipartForm.File["file"]
	if len(fh) == 0 {
		s.reject(w, r, apierror.Invalid("file", "Missing required parameter: 'file'."), reqID)
		return
	}
	f, err := fh[0].Open()
	if err != nil {
		s.reject(w, r, err, reqID)
		return
	}
	defer f.Close()
	file, err := s.opt.Jobs.PutFile(r.Context(), purpose, fh[0].Filename, f, r.Header)
	if err != nil {
		s.reject(w, r, err, reqID)
		return
	}
	s.writeObject(w, r, http.StatusOK, file, reqID)
}

// serveBatches serves /v1/batches (POST to create, GET a list),
// /v1/batches/{id} (GET) and /v1/batches/{id}/cancel (POST).
func (s *Server) serveBatches(w http.ResponseWriter, r *http.Request, rest, reqID string) {
	ctx := r.Context()
	id, sub, _ := strings.Cut(rest, "/")
	var b *jobs.Batch
	var err error
	switch {
	case id == "":
		if !s.methods(w, r, reqID, http.MethodGet, http.MethodPost) {
			return
		}
		if r.Method == http.MethodGet {
			after, limit, err := page(r)
			if err != nil {
				s.reject(w, r, err, reqID)
				return
			}
			bs, more, err := s.opt.Jobs.ListBatches(ctx, after, limit, r.Header)
			if err != nil {
				s.reject(w, r, err, reqID)
				return
			}
			s.writeObject(w, r, http.StatusOK, listOf(bs, more, func(b *jobs.Batch) string { return b.ID }), reqID)
			return
		}
		var p jobs.BatchParams
		if err = s.readParams(w, r, &p); err == nil {
			b, err = s.opt.Jobs.CreateBatch(ctx, p, r.Header)
		}
	case sub == "":
		if !s.methods(w, r, reqID, http.MethodGet) {
			return
		}
		b, err = s.opt.Jobs.GetBatch(ctx, id, r.Header)
	case sub == "cancel":
		if !s.methods(w, r, reqID, http.MethodPost) {
			return
		}
		b, err = s.opt.Jobs.CancelBatch(ctx, id, r.Header)
	default:
		err = apierror.New(http.StatusNotFound, "unknown_url", "Unknown request URL: %s %s.", r.Method, r.URL.EscapedPath())
	}
	if err != nil {
		s.reject(w, r, err, reqID)
		return
	}
	s.writeObject(w, r, http.StatusOK, b, reqID)
}

// readParams decodes a small JSON body into v; an error names the field.
func (s *Server) readParams(w http.ResponseWriter, r *http.Request, v any) error {
	if err := checkContentType(r.Header.Get("Content-Type")); err != nil {
		return err
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return apierror.Invalid(te.Field, "Invalid type for '%s': expected %s.", te.Field, te.Type)
		}
		return apierror.Invalid("", "The body is not valid JSON: %v.", err)
	}
	return nil
}
