package sim

import (
	"unicode"
	"unicode/utf8"
)

// blockHasher turns a prompt into the chained hashes of its full KV blocks,
// for prefix caching. The simulator has no real tokens, so it walks the
// prompt as the chat template renders it (the tools, then each message's
// role, content and tool calls, then the generation prompt) and cuts it
// into tokens exactly where countTokens counts them; media parts are as
// many tokens as they cost, identified by their bytes. The hash of block k
// covers everything rendered before token (k+1)·block_size and chains the
// hash of block k-1, as vLLM's hash(parent, tokens) does: two prompts share
// their leading block hashes exactly as far as their renderings agree.
//
// A nil *blockHasher hashes nothing, so callers need not check.
type blockHasher struct {
	size   int    // tokens per block
	h      uint64 // FNV-1a over everything rendered so far
	pos    int    // tokens so far
	next   int    // the token that starts the next block
	parent uint64 // the last full block's hash
	blocks []uint64
}

// newBlockHasher returns a hasher when p caches prefixes and has an engine
// to cache them in, else nil.
// sizeHint (the request body's length) sizes the hash list.
func newBlockHasher(p *Profile, sizeHint int) *blockHasher {
	if p == nil || !p.prefixCaching() || p.zeroLatency() {
		return nil
	}
	n := min(sizeHint/(3*p.BlockSize), p.MaxModelLen/p.BlockSize) + 1 // ~3 bytes a token at least
	return &blockHasher{size: p.BlockSize, h: 14695981039346656037, next: p.BlockSize, blocks: make([]uint64, 0, n)}
}

// token starts a token; when it starts a block, the previous block is
// complete and gets its hash.
func (b *blockHasher) token() {
	if b.pos == b.next {
		b.parent = mix(b.parent, b.h)
		b.blocks = append(b.blocks, b.parent)
		b.next += b.size
	}
	b.pos++
}

func (b *blockHasher) byte(c byte) {
	b.h ^= uint64(c)
	b.h *= 1099511628211
}

// text renders s as countTokens cuts it: a token starts at every 5th
// letter of a word run, at each CJK character and at every other
// non-space character.
func (b *blockHasher) text(s string) {
	if b == nil {
		return
	}
	run := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_':
				if run%charsPerToken == 0 {
					b.token()
				}
				run++
			case c == ' ' || c == '\n' || c == '\t' || c == '\r':
				run = 0
			default:
				run = 0
				b.token()
			}
			b.h = (b.h ^ uint64(c)) * 1099511628211
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul):
			run = 0
			b.token()
		case unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r):
			if run%charsPerToken == 0 {
				b.token()
			}
			run++
		case unicode.IsSpace(r):
			run = 0
		default:
			run = 0
			b.token()
		}
		for j := range size {
			b.byte(s[i+j])
		}
		i += size
	}
	b.byte(0xff) // a separator, so "ab"+"c" and "a"+"bc" differ
}

// segment renders n tokens identified by content: template markers (the
// role), a media part (its URL or data).
func (b *blockHasher) segment(content string, n int) {
	if b == nil {
		return
	}
	if n > 0 {
		b.token()
		n--
	}
	for i := 0; i < len(content); i++ {
		b.byte(content[i])
	}
	b.byte(0xff)
	for range n {
		b.token()
	}
}

// id renders one token given by its id (a completions prompt of token ids).
func (b *blockHasher) id(v uint64) {
	if b == nil {
		return
	}
	b.token()
	for range 8 {
		b.byte(byte(v))
		v >>= 8
	}
}

// finish hashes the last block if it is full and returns the block hashes.
func (b *blockHasher) finish() []uint64 {
	if b == nil {
		return nil
	}
	if b.pos == b.next {
		b.parent = mix(b.parent, b.h)
		b.blocks = append(b.blocks, b.parent)
		b.next += b.size
	}
	return b.blocks
}
