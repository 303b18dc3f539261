package backend

import (
	"regexp"
	"strings"
)

// An engine's error message is written for the engine's operator: it may
// name the engine's model, its address and, now and then, a key. Clients
// get it with those replaced; the original stays in the error's cause,
// for the logs.

// Placeholders for what is removed from an engine's message.
const (
	redactedURL    = "[url]"
	redactedHost   = "[host]"
	redactedSecret = "[redacted]"
	redactedModel  = "[model]" // the engine's model name, when the public one is unknown
)

// redactions are applied in order; a URL goes first, so its host, path and
// query go with it.
var redactions = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`(?i)\b(?:https?|wss?|grpcs?)://[^\s"'<>` + "`" + `]*[^\s"'<>` + "`" + `.,;:!?)\]]`), redactedURL},
	{regexp.MustCompile(`(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+`), "${1}" + redactedSecret},
	{regexp.MustCompile(`(?i)\b((?:api[_-]?key|apikey|access[_-]?token|auth[_-]?token|secret|password|passwd)\s*[=:]\s*|(?:key|token)=)["']?[^\s"',;&)]+["']?`), "${1}" + redactedSecret},
	{regexp.MustCompile(`\bsk-[A-Za-z0-9_*-]{6,}`), redactedSecret},
	{regexp.MustCompile(`\[[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\](?::\d{1,5})?`), redactedHost},
	{regexp.MustCompile(`\b(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?\b`), redactedHost},
	{regexp.MustCompile(`(?i)\b(?:localhost|[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+):\d{1,5}\b`), redactedHost},
}

// longToken is a run of hex or base64 characters long enough to be a key,
// a hash or a token (see looksSecret). '/' is left out: paths are common
// in messages, and the pieces of a long base64 token between slashes are
// long tokens themselves.
var longToken = regexp.MustCompile(`[A-Za-z0-9+_-]{32,}={0,2}`)

// sanitize returns an engine's message fit for the client: the engine's
// model name (upstream) replaced by the public one, and URLs, addresses and
// secret-looking tokens by placeholders.
func sanitize(msg, upstream, public string) string {
	if public == "" {
		public = redactedModel
	}
	if upstream == "" || upstream == public || !strings.Contains(msg, upstream) {
		return redact(msg)
	}
	// Each piece around the name separately, so the name is found whole
	// and what replaces it is not redacted.
	parts := strings.Split(msg, upstream)
	for i, p := range parts {
		parts[i] = redact(p)
	}
	return strings.Join(parts, public)
}

func redact(s string) string {
	for _, r := range redactions {
		s = r.re.ReplaceAllString(s, r.repl)
	}
	return longToken.ReplaceAllStringFunc(s, func(t string) string {
		if looksSecret(t) {
			return redactedSecret
		}
		return t
	})
}

// looksSecret tells a key, hash or token from a long word: it mixes
// letters and digits.
func looksSecret(t string) bool {
	return strings.ContainsAny(t, "0123456789") && strings.ContainsAny(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
}
