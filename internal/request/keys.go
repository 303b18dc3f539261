package request

import (
	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/jsonscan"
)

// A key sent twice in one object is read differently by different decoders
// (Python's json and Go keep the last, others the first), and the gateway
// could check one value while it rewrites, or the engine reads, the other.
// So Parse rejects duplicates in every object whose members it reads: the
// body and the objects inside it that it inspects (messages, content parts,
// tools, tool_choice, response_format, audio, stream_options, …), all their
// keys, known or not. Objects it only skips (a tool's parameters, a JSON
// schema, logit_bias) are the engine's business.
//
// The keys an object's reader knows it checks itself, for nothing: a flag
// or a bit per key (p.seen for the body). jsonscan.ObjectUnique checks the
// others, the keys whose values the reader leaves unread.
//
// Keys are compared decoded, as every JSON decoder reads them:
// "max\u005ftokens" is max_tokens, for the parameter checks and as a
// duplicate of max_tokens. Decoding an escaped key allocates; no encoder
// escapes a plain ASCII key, so real bodies do not pay for it.

// members reads an object, at path at, whose members fn inspects (skips it
// when fn is nil), rejecting duplicate keys among those fn leaves unread;
// fn rejects repeats of the keys it reads.
func (p *parser) members(at path, fn func(key []byte) error) error {
	if fn == nil {
		return p.d.Object(nil)
	}
	if err := p.d.ObjectUnique(&p.keys, fn); err != nil {
		return duplicateErr(at, err)
	}
	return nil
}

// duplicate is the 400 for a key (decoded) that the object at at has twice.
func duplicate(at path, key []byte) error {
	param := at.child(string(key)).String()
	return apierror.Invalid(param, "Duplicate key '%s' in the request body.", param)
}

// duplicateParam is duplicate for a key of the body.
func duplicateParam(key []byte) error { return duplicate(top(""), key) }

// duplicateErr turns ObjectUnique's error for the object at at into the
// 400 naming the key; other errors pass unchanged.
func duplicateErr(at path, err error) error {
	if dk, ok := err.(*jsonscan.DuplicateKeyError); ok {
		return duplicate(at, []byte(dk.Key))
	}
	return err
}

// again marks a key the object's reader knows as seen (*had) and reports
// whether it was already: a duplicate.
func again(had *bool) bool {
	a := *had
	*had = true
	return a
}
