package jsonscan

import (
	"errors"
	"math"
	"strconv"
)

// Errors of ParseInt and ParseFloat, for errors.Is.
var (
	ErrRange      = errors.New("number out of range")
	ErrNotInteger = errors.New("number is not an integer")
	errNumber     = errors.New("malformed number")
)

// ParseFloat converts a number literal a Decoder has validated to a float64.
// It fails on magnitudes beyond float64 (underflow rounds to zero, as
// strconv does).
func ParseFloat(lit []byte) (float64, error) {
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil {
		if math.IsInf(f, 0) {
			return 0, ErrRange
		}
		var ne *strconv.NumError
		if errors.As(err, &ne) && ne.Err == strconv.ErrRange {
			return f, nil
		}
		return 0, errNumber
	}
	return f, nil
}

// ParseInt converts a number literal a Decoder has validated to an int64,
// exactly (no float64 rounding): 3.0, 1e3 and 25e-1 are integral and
// accepted, 2.5 is ErrNotInteger, and an integral value outside int64 is
// ErrRange.
func ParseInt(lit []byte) (int64, error) {
	neg := len(lit) > 0 && lit[0] == '-'
	if neg {
		lit = lit[1:]
	}
	// lit is int [frac] [exp]: split it.
	i := 0
	for i < len(lit) && isDigit(lit[i]) {
		i++
	}
	if i == len(lit) && i > 0 && i <= 18 { // the common case: at most 18 digits cannot overflow
		var n int64
		for _, c := range lit {
			n = n*10 + int64(c-'0')
		}
		if neg {
			n = -n
		}
		return n, nil
	}
	intPart, frac := lit[:i], []byte(nil)
	if i < len(lit) && lit[i] == '.' {
		j := i + 1
		for j < len(lit) && isDigit(lit[j]) {
			j++
		}
		frac, i = lit[i+1:j], j
	}
	exp := 0
	if i < len(lit) && (lit[i] == 'e' || lit[i] == 'E') {
		i++
		expNeg := i < len(lit) && lit[i] == '-'
		if i < len(lit) && (lit[i] == '+' || lit[i] == '-') {
			i++
		}
		for ; i < len(lit); i++ {
			if exp < 1e6 { // beyond, the value is 0, out of range or not an integer anyway
				exp = exp*10 + int(lit[i]-'0')
			}
		}
		if expNeg {
			exp = -exp
		}
	}
	if len(intPart) == 0 || i != len(lit) {
		return 0, errNumber
	}
	// The value is the digits of intPart and frac, times 10^(exp-len(frac)).
	digits := func(k int) byte { // k-th digit of intPart+frac
		if k < len(intPart) {
			return intPart[k]
		}
		return frac[k-len(intPart)]
	}
	n := len(intPart) + len(frac)
	first := 0 // skip leading zeros
	for first < n && digits(first) == '0' {
		first++
	}
	last := n // the value's integer digits end here (exclusive), once scaled
	scale := exp - len(frac)
	if scale < 0 {
		last = n + scale // the digits from last on are the fraction: they must be zeros
		for k := max(last, first); k < n; k++ {
			if digits(k) != '0' {
				return 0, ErrNotInteger
			}
		}
		scale = 0
	}
	if first >= last {
		return 0, nil // zero, however written
	}
	if last-first+scale > 19 {
		return 0, ErrRange
	}
	var u uint64
	for k := first; k < last; k++ {
		u = u*10 + uint64(digits(k)-'0')
	}
	for ; scale > 0; scale-- {
		u *= 10
	}
	// 19 digits fit a uint64; the int64 bounds are checked on it.
	switch {
	case !neg && u <= math.MaxInt64:
		return int64(u), nil
	case neg && u <= 1<<63:
		return int64(-u), nil
	}
	return 0, ErrRange
}
