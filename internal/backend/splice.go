package backend

import (
	"bytes"

	"github.com/omnigate/omnigate/internal/jsonscan"
	"github.com/omnigate/omnigate/internal/request"
)

// The request body is forwarded as the client sent it. What a deployment
// must change — its own model name, and stream:true for a stream-only
// engine — is spliced in one pass at the spans the parser recorded
// (request.Splice), never found by scanning the body again.

// Values the edits write.
var (
	streamTrue   = []byte("true")
	includeUsage = []byte(`{"include_usage":true}`)
)

// prepare returns the body to send for r: the upstream model name in
// place of the public one and, when aggregate, a stream with a final usage
// chunk asked for (stream replaced by true or inserted; stream_options
// inserted, or put in place of null, when the client sent none). It
// returns r.Body itself when nothing changes.
func (o *OpenAI) prepare(r *Request, aggregate bool) []byte {
	var arr [3]request.Edit
	edits := arr[:0]
	body := r.Body
	if m := r.ModelSpan; o.upstreamQ != nil && m != ([2]int{}) && !bytes.Equal(body[m[0]:m[1]], o.upstreamQ) {
		edits = append(edits, request.Edit{Span: m, Value: o.upstreamQ})
	}
	if aggregate {
		needStream := r.StreamSpan == [2]int{}
		if !needStream {
			edits = append(edits, request.Edit{Span: r.StreamSpan, Value: streamTrue})
		}
		opts := r.StreamOptionsSpan
		needOpts := opts == [2]int{}
		if !needOpts && bytes.Equal(body[opts[0]:opts[1]], []byte("null")) {
			edits = append(edits, request.Edit{Span: opts, Value: includeUsage})
		}
		var ins []byte
		if needStream {
			ins = append(ins, `"stream":true,`...)
		}
		if needOpts {
			ins = append(ins, `"stream_options":{"include_usage":true},`...)
		}
		if ins != nil {
			at := request.InsertAt(body)
			edits = append(edits, request.Edit{Span: [2]int{at, at}, Value: ins})
		}
	}
	if len(edits) == 0 {
		return body
	}
	return request.Splice(body, edits...)
}

// quoteJSON returns s as a JSON string literal.
func quoteJSON(s string) []byte { return jsonscan.AppendString(nil, s) }
