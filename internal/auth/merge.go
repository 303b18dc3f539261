package auth

import (
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/omnigate/omnigate/internal/config"
)

// Where a key comes from.
const (
	SourceConfig = "config" // auth.keys
	SourceStore  = "store"  // auth.store, through the admin API
)

// Entry is one key as the directory lists it: its record, where it comes
// from, and whether it is in force.
type Entry struct {
	Record
	Source string
	// Ignored says why the key is not in force; "" when it is.
	Ignored string

	sum [32]byte // the hash's bytes
}

// merge lists the config file's keys, then the store's, sorted as given.
// The file wins: a store key with the name or the hash of a config key is
// ignored (the file is the operator's word, and a name is what the logs,
// the metrics and the limits count by, so two keys may not share one). A
// store key with a malformed hash or a name seen before is ignored too
// (the store's constraints should make both impossible).
func merge(conf []config.APIKey, stored []Record) []Entry {
	out := make([]Entry, 0, len(conf)+len(stored))
	names := make(map[string]string, len(conf)+len(stored)) // name → source
	hashes := make(map[[32]byte]string, len(conf)+len(stored))
	add := func(r Record, source string) {
		e := Entry{Record: r, Source: source}
		sum, ok := hashBytes(r.Hash)
		e.sum = sum
		switch {
		case !ok:
			e.Ignored = "its hash is not " + config.HashPrefix + " and 64 hex digits"
		case names[r.Name] != "":
			e.Ignored = fmt.Sprintf("a key of the %s has its name", sourceText(names[r.Name]))
		case hashes[sum] != "":
			e.Ignored = fmt.Sprintf("a key of the %s has its hash", sourceText(hashes[sum]))
		default:
			names[r.Name], hashes[sum] = source, source
		}
		out = append(out, e)
	}
	for _, k := range conf {
		add(Record{APIKey: k}, SourceConfig)
	}
	for _, r := range stored {
		add(r, SourceStore)
	}
	return out
}

func sourceText(source string) string {
	if source == SourceConfig {
		return "config file"
	}
	return "key store"
}

// hashBytes decodes "sha256:<hex>".
func hashBytes(h string) (sum [32]byte, ok bool) {
	x, ok := strings.CutPrefix(h, config.HashPrefix)
	if !ok || len(x) != 64 {
		return sum, false
	}
	if _, err := hex.Decode(sum[:], []byte(x)); err != nil {
		return sum, false
	}
	return sum, true
}
