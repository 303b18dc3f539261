package resilience

import "strings"

// Class is a set of error classes: why a model could not answer, as the
// fallback chains see it. A chain moves to its next model only for the
// classes that model is listed for.
type Class uint8

// The error classes.
const (
	// Unavailable: no deployment could be reached or answered; it was
	// unreachable, cut the connection, answered 5xx, or is misconfigured,
	// or every breaker is open.
	Unavailable Class = 1 << iota
	// Timeout: a connect or first_token timeout.
	Timeout
	// RateLimited: the engine answered 429.
	RateLimited
	// Overloaded: the engine ran out of memory or KV cache.
	Overloaded
	// ContextLength: the prompt and max_tokens exceed the model's window.
	ContextLength

	// AnyClass is every class: a fallback listed without classes.
	AnyClass = Unavailable | Timeout | RateLimited | Overloaded | ContextLength
)

// classNames are the names config uses, in the order of the bits.
var classNames = []string{"unavailable", "timeout", "rate_limited", "overloaded", "context_length"}

// ClassNames lists the names of the classes, for config and its errors.
func ClassNames() []string { return append([]string(nil), classNames...) }

// ParseClass returns the class of one name, or 0 when unknown.
func ParseClass(name string) Class {
	for i, n := range classNames {
		if n == name {
			return 1 << i
		}
	}
	return 0
}

// Has reports whether c includes every class of o.
func (c Class) Has(o Class) bool { return o != 0 && c&o == o }

// String names the classes of c, "+"-joined, as the fallback header does.
func (c Class) String() string {
	var names []string
	for i, n := range classNames {
		if c&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	return strings.Join(names, "+")
}
