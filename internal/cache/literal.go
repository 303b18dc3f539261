package cache

import (
	"slices"
	"strings"
	"unicode"
)

// LiteralsAgree is the semantic cache's second check on a hit, after the
// similarity: whether two prompts agree on the words a sentence encoder
// barely sees but an answer depends on. Embeddings put "What is 12 times
// 13?" and "... 14?" at a similarity of 0.99, and so a negation, a swapped
// unit or the order of two names ("from English to German"); no threshold
// tells them apart, so a hit needs, besides the similarity:
//
//   - the same numbers (digits or number words), in the same order;
//   - as many negations (not, no, never, n't, without…);
//   - no word negated by a prefix in the other (safe / unsafe);
//   - the same names — capitalised words past a sentence's start,
//     acronyms, quoted words — in the same order, whatever their case;
//   - the same units (miles, grams, Celsius…), in the same order;
//   - no word whose opposite is in the other (ascending / descending);
//   - the same objects of a direction (to, from, into, than…) both use.
//
// It errs towards a miss: a paraphrase that says "five" for "5" misses.
func LiteralsAgree(a, b string) bool {
	ta, tb := literalTokens(a), literalTokens(b)
	if !slices.Equal(ta.filter(isNumber), tb.filter(isNumber)) ||
		ta.count(isNegation) != tb.count(isNegation) ||
		!slices.Equal(ta.filter(isUnit), tb.filter(isUnit)) {
		return false
	}
	names := map[string]bool{}
	for _, t := range append(slices.Clone(ta), tb...) {
		if t.name {
			names[t.word] = true
		}
	}
	inNames := func(w string) bool { return names[w] }
	if !slices.Equal(ta.filter(inNames), tb.filter(inNames)) {
		return false
	}
	if !sameObjects(ta, tb) {
		return false
	}
	sa, sb := ta.set(), tb.set()
	return !opposed(sa, sb) && !opposed(sb, sa)
}

// directions are the prepositions whose object says which way a question
// goes: "convert a string to an integer" is not "an integer to a string".
var directions = setOf("to from into than versus vs toward towards")

// determiners are skipped to find a preposition's object.
var determiners = setOf("a an the my your our their his her its this that these those some any")

// sameObjects reports whether each direction preposition both prompts use
// has the same objects in both (one only one of them uses is no matter:
// "how do I cook rice" is "the best way to cook rice").
func sameObjects(a, b tokens) bool {
	oa, ob := objects(a), objects(b)
	for p, wa := range oa {
		if wb, ok := ob[p]; ok && !slices.Equal(wa, wb) {
			return false
		}
	}
	return true
}

// objects maps each direction preposition of ts to the words after it.
func objects(ts tokens) map[string][]string {
	var m map[string][]string
	for i, t := range ts {
		if !directions[t.word] {
			continue
		}
		j := i + 1
		for j < len(ts) && determiners[ts[j].word] {
			j++
		}
		if j < len(ts) {
			if m == nil {
				m = map[string][]string{}
			}
			m[t.word] = append(m[t.word], ts[j].word)
		}
	}
	return m
}

// token is a word of a prompt, lowercased (a possessive 's dropped, a
// plural's s for units), and whether it reads as a name.
type token struct {
	word string
	name bool
}

type tokens []token

func (ts tokens) filter(keep func(string) bool) []string {
	var out []string
	for _, t := range ts {
		if keep(t.word) {
			out = append(out, t.word)
		}
	}
	return out
}

func (ts tokens) count(match func(string) bool) int { return len(ts.filter(match)) }

func (ts tokens) set() map[string]bool {
	s := make(map[string]bool, len(ts))
	for _, t := range ts {
		s[t.word] = true
	}
	return s
}

// literalTokens splits s into words: runs of letters, digits and
// apostrophes, a number keeping its separators ("1,000.5").
func literalTokens(s string) tokens {
	var out tokens
	rs := []rune(s)
	start := true   // at a sentence's start: a capital says nothing there
	quoted := false // inside double quotes
	for i := 0; i < len(rs); {
		r := rs[i]
		if !isWordRune(r) {
			switch r {
			case '.', '!', '?', ':', ';', '\n':
				start = true
			case '"', '“', '”':
				quoted = !quoted
			}
			i++
			continue
		}
		j := i
		for j < len(rs) && (isWordRune(rs[j]) || (rs[j] == ',' || rs[j] == '.') && j > i && j+1 < len(rs) &&
			unicode.IsDigit(rs[j-1]) && unicode.IsDigit(rs[j+1])) {
			j++
		}
		raw := string(rs[i:j])
		w := strings.ToLower(raw)
		w = strings.TrimSuffix(strings.TrimSuffix(w, "'s"), "’s")
		w = strings.Trim(w, "'’")
		if strings.ContainsAny(w, "0123456789") {
			w = strings.ReplaceAll(w, ",", "")
		}
		upper := unicode.IsUpper(rs[i])
		acronym := len(raw) > 1 && strings.ToUpper(raw) == raw && strings.ToLower(raw) != raw
		pronoun := raw == "I" || strings.HasPrefix(raw, "I'") || strings.HasPrefix(raw, "I’")
		name := quoted || acronym && !pronoun || upper && !start && !pronoun
		if u, ok := units[w]; ok {
			w = u
		}
		if w != "" {
			out = append(out, token{word: w, name: name})
		}
		start = false
		i = j
	}
	return out
}

func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || r == '\'' || r == '’'
}

func isNumber(w string) bool { return strings.ContainsAny(w, "0123456789") || numberWords[w] }

func isNegation(w string) bool {
	return negations[w] || strings.HasSuffix(w, "n't") || strings.HasSuffix(w, "n’t")
}

func isUnit(w string) bool { _, ok := unitNames[w]; return ok }

// opposed reports whether a word only a has is the opposite of a word
// only b has, by a negating prefix or the opposites list.
func opposed(a, b map[string]bool) bool {
	for w := range a {
		if b[w] {
			continue
		}
		for _, p := range []string{"un", "dis", "non", "in", "im", "ir", "il"} {
			if rest, ok := strings.CutPrefix(w, p); ok && len(rest) >= 3 && b[rest] && !a[rest] {
				return true
			}
		}
		for _, o := range opposites[w] {
			if b[o] && !a[o] {
				return true
			}
		}
	}
	return false
}

var negations = setOf("not no never none nothing nobody nowhere neither nor without cannot")

var numberWords = setOf(`zero one two three four five six seven eight nine ten eleven twelve thirteen
fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty
ninety hundred thousand million billion trillion dozen half twice thrice`)

// units maps each unit word's forms to one (its name in unitNames).
var units, unitNames = unitForms(`meter:meters:metre:metres:m kilometer:kilometers:kilometre:kilometres:km
centimeter:centimeters:cm millimeter:millimeters:mm mile:miles mi foot:feet:ft inch:inches yard:yards
gram:grams:g kilogram:kilograms:kg pound:pounds:lb:lbs ounce:ounces:oz ton:tons:tonne:tonnes stone
liter:liters:litre:litres:l milliliter:milliliters:ml gallon:gallons quart:quarts pint:pints cup:cups
tablespoon:tablespoons:tbsp teaspoon:teaspoons:tsp second:seconds:sec:secs minute:minutes:min:mins
hour:hours:hr:hrs day:days week:weeks month:months year:years decade:decades century:centuries
millisecond:milliseconds:ms celsius fahrenheit kelvin degree:degrees percent
dollar:dollars:usd euro:euros:eur yen:jpy yuan rupee:rupees pence penny:pennies cent:cents
byte:bytes kb kilobyte:kilobytes mb megabyte:megabytes gb gigabyte:gigabytes tb terabyte:terabytes
bit:bits volt:volts watt:watts kwh calorie:calories kcal joule:joules acre:acres hectare:hectares
mph kph knot:knots hz hertz ghz mhz`)

// opposites are pairs of words whose swap turns a question around.
var opposites = pairsOf(`ascending:descending before:after increase:decrease increasing:decreasing
maximum:minimum max:min largest:smallest biggest:smallest highest:lowest longest:shortest
fastest:slowest most:least more:less more:fewer best:worst better:worse first:last above:below
over:under buy:sell buying:selling pros:cons true:false male:female north:south east:west
left:right up:down open:close start:end import:export input:output inside:outside plus:minus
add:subtract encrypt:decrypt encode:decode upload:download win:lose gain:lose hot:cold
cheap:expensive old:new young:old earlier:later past:future positive:negative top:bottom
early:late fast:slow heavy:light strong:weak rich:poor wet:dry safe:dangerous legal:illegal
advantages:disadvantages benefits:risks push:pull send:receive sender:receiver client:server
enable:disable allow:deny accept:reject always:never all:none`)

func setOf(words string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(words) {
		m[w] = true
	}
	return m
}

func unitForms(spec string) (forms map[string]string, names map[string]struct{}) {
	forms, names = map[string]string{}, map[string]struct{}{}
	for _, group := range strings.Fields(spec) {
		fs := strings.Split(group, ":")
		names[fs[0]] = struct{}{}
		for _, f := range fs {
			forms[f] = fs[0]
		}
	}
	return forms, names
}

func pairsOf(spec string) map[string][]string {
	m := map[string][]string{}
	for _, p := range strings.Fields(spec) {
		a, b, _ := strings.Cut(p, ":")
		m[a] = append(m[a], b)
		m[b] = append(m[b], a)
	}
	return m
}
