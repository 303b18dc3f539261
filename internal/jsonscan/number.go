package jsonscan

import (
	"errors"
	"math"
	"strconv"
)

var (
	errRange      = errors.New("number out of range")
	errNotInteger = errors.New("number is not an integer")
	errNumber     = errors.New("malformed number")
)

// ParseFloat converts a number literal a Decoder has validated to a float64.
// It fails on magnitudes beyond float64 (underflow rounds to zero, as
// strconv does).
func ParseFloat(lit []byte) (float64, error) {
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil {
		if math.IsInf(f, 0) {
			return 0, errRange
		}
		var ne *strconv.NumError
		if errors.As(err, &ne) && ne.Err == strconv.ErrRange {
			return f, nil
		}
		return 0, errNumber
	}
	return f, nil
}

// ParseInt converts a number literal a Decoder has validated to an int64.
// The value must be integral and in range; 3.0 and 1e3 are integral, 2.5 is not.
func ParseInt(lit []byte) (int64, error) {
	neg := len(lit) > 0 && lit[0] == '-'
	digits := lit
	if neg {
		digits = lit[1:]
	}
	plain := len(digits) > 0 && len(digits) <= 18
	for _, c := range digits {
		if !isDigit(c) {
			plain = false
			break
		}
	}
	if plain { // at most 18 digits cannot overflow
		var n int64
		for _, c := range digits {
			n = n*10 + int64(c-'0')
		}
		if neg {
			n = -n
		}
		return n, nil
	}
	f, err := ParseFloat(lit)
	if err != nil {
		return 0, err
	}
	if f != math.Trunc(f) {
		return 0, errNotInteger
	}
	if f < -(1<<63) || f >= 1<<63 {
		return 0, errRange
	}
	return int64(f), nil
}
