package dispatch

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"sync/atomic"

	"github.com/omnigate/omnigate/internal/request"
)

// Shadow is a model's shadow traffic: a share of its answered chat
// requests is asked again of a candidate model once the client has its
// answer, and the two answers are compared (and the candidate's dropped).
// It is live state of one snapshot.
type Shadow struct {
	// Candidate is the public name of the model asked.
	Candidate string
	share     float64
	slots     chan struct{}    // one a mirrored request in flight
	counts    [4]atomic.Uint64 // by result: agree, differ, error, dropped
}

// ShadowStatus is what a model's shadow traffic has found, as the status
// API shows it.
type ShadowStatus struct {
	Candidate                     string
	Share                         float64
	Agree, Differ, Error, Dropped uint64
}

// Status reports the shadow traffic's results since the snapshot began.
func (s *Shadow) Status() ShadowStatus {
	return ShadowStatus{Candidate: s.Candidate, Share: s.share,
		Agree: s.counts[0].Load(), Differ: s.counts[1].Load(), Error: s.counts[2].Load(), Dropped: s.counts[3].Load()}
}

// countShadow records one mirrored request's result.
func (c *Core) countShadow(m *Model, result string) {
	i := 3
	switch result {
	case ShadowAgree:
		i = 0
	case ShadowDiffer:
		i = 1
	case ShadowError:
		i = 2
	}
	m.Shadow.counts[i].Add(1)
	c.metrics.Shadowed(m.Name, m.Shadow.Candidate, result)
}

// NewShadow returns the shadow traffic to candidate: share of the
// requests, at most maxInFlight at once.
func NewShadow(candidate string, share float64, maxInFlight int) *Shadow {
	return &Shadow{Candidate: candidate, share: share, slots: make(chan struct{}, max(maxInFlight, 1))}
}

// Results of a mirrored request, as omnigate_shadow_requests_total
// labels them.
const (
	ShadowAgree   = "agree"   // the candidate answered the same
	ShadowDiffer  = "differ"  // it answered otherwise
	ShadowError   = "error"   // it failed
	ShadowDropped = "dropped" // not mirrored: too many in flight, or the answer too large to compare
)

// maxShadowBytes bounds the answer kept for the comparison.
const maxShadowBytes = 1 << 20

// shadowed is one mirrored request: its body (copied: the front end
// reuses its buffer) and the answer the client got, as relayed.
type shadowed struct {
	body   []byte
	answer []byte
	over   bool // the answer passed maxShadowBytes
	next   Tap
}

// Write keeps the relayed answer and passes p on.
func (s *shadowed) Write(p []byte) {
	if !s.over {
		if len(s.answer)+len(p) > maxShadowBytes {
			s.over, s.answer = true, nil
		} else {
			s.answer = append(s.answer, p...)
		}
	}
	s.next.Write(p)
}

// sampleShadow marks the call for mirroring when its model has shadow
// traffic and the draw falls in its share: chat requests only, never a
// mirrored one.
func (c *Core) sampleShadow(call *Call, m *Model) {
	s := m.Shadow
	if s == nil || call.mirror || call.Req.Endpoint != request.Chat || rand.Float64() >= s.share {
		return
	}
	call.st.shadow = &shadowed{body: bytes.Clone(call.Body)}
}

// mirror asks m's candidate the request sh holds, off the request path,
// and counts how its answer compares with the client's.
func (c *Core) mirror(m *Model, requestID string, sh *shadowed) {
	s := m.Shadow
	if sh.over {
		c.countShadow(m, ShadowDropped)
		return
	}
	select {
	case s.slots <- struct{}{}:
	default:
		c.countShadow(m, ShadowDropped)
		return
	}
	go func() {
		defer func() { <-s.slots }()
		result := ShadowError
		req := new(request.Request)
		if request.Parse(request.Chat, sh.body, req) == nil {
			req.Model = s.Candidate
			call := &Call{Req: req, Body: req.Normalize(sh.body), RequestID: requestID + "-shadow", mirror: true}
			if w, err := c.ServeWhole(context.Background(), call, maxShadowBytes); err == nil && w.OK() {
				result = ShadowDiffer
				if answerText(sh.answer) == answerText(w.Body) {
					result = ShadowAgree
				}
			}
		}
		if result != ShadowAgree {
			c.log.Debug("shadow answer", "request_id", requestID, "model", m.Name, "candidate", s.Candidate, "result", result)
		}
		c.countShadow(m, result)
	}()
}

// answerText is the text of a chat answer, whole (JSON) or streamed (SSE):
// its first choice's content and its tool calls' names and arguments,
// trimmed.
func answerText(b []byte) string {
	type choice struct {
		Message, Delta struct {
			Content   string `json:"content"`
			ToolCalls []struct {
				Function struct{ Name, Arguments string } `json:"function"`
			} `json:"tool_calls"`
		}
	}
	var out strings.Builder
	add := func(cs []choice) {
		if len(cs) == 0 {
			return
		}
		c := &cs[0]
		out.WriteString(c.Message.Content)
		out.WriteString(c.Delta.Content)
		// A streamed call comes in fragments: names and arguments are
		// joined without separators, so both forms read the same.
		for _, tc := range append(c.Message.ToolCalls, c.Delta.ToolCalls...) {
			out.WriteString(tc.Function.Name)
			out.WriteString(tc.Function.Arguments)
		}
	}
	var whole struct{ Choices []choice }
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		if json.Unmarshal(t, &whole) == nil {
			add(whole.Choices)
		}
		return strings.TrimSpace(out.String())
	}
	for line := range bytes.Lines(b) {
		data, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte("data:"))
		if !ok {
			continue
		}
		var ev struct{ Choices []choice }
		if json.Unmarshal(bytes.TrimSpace(data), &ev) == nil {
			add(ev.Choices)
		}
	}
	return strings.TrimSpace(out.String())
}
