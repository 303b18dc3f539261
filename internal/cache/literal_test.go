package cache

import "testing"

// TestLiteralsAgree: what the similarity cannot tell apart, the literal
// check does; paraphrases pass it.
func TestLiteralsAgree(t *testing.T) {
	tests := []struct {
		a, b  string
		agree bool
	}{
		{"What is the capital of France?", "What's the capital of France?", true},
		{"how do i install node on ubuntu", "How do I install Node on Ubuntu?", true},
		{"What is London's weather like in winter?", "What is the weather like in London in winter?", true},
		{"What does HTTP stand for?", "What is HTTP short for?", true},
		{"I'm cold. What should I wear?", "What should I wear? I'm cold.", true},
		{"Sum 1,000 and 2.5", "Add up 1000 and 2.5", true},
		{"What is 12 times 13?", "What is 12 times 14?", false},
		{"Give me 5 tips for better sleep.", "Give me five tips for better sleep.", false}, // errs towards a miss
		{"Give me three tips.", "Give me four tips.", false},
		{"Which foods are safe for dogs?", "Which foods are not safe for dogs?", false},
		{"Can I swim?", "Why can't I swim?", false},
		{"Is it safe to take ibuprofen with alcohol?", "Is it unsafe to take ibuprofen with alcohol?", false},
		{"What are the advantages of remote work?", "What are the disadvantages of remote work?", false},
		{"What is the capital of France?", "What is the capital of Germany?", false},
		{"Did Rome conquer Carthage?", "Did Carthage conquer Rome?", false},
		{`Translate "thank you" into German.`, `Translate "thanks" into German.`, false},
		{"What is 30 degrees Celsius in Fahrenheit?", "What is 30 degrees Fahrenheit in Celsius?", false},
		{"Convert 10 miles to kilometers.", "Convert 10 miles to meters.", false},
		{"How many seconds are in an hour?", "How many minutes are in an hour?", false},
		{"Sort them in ascending order.", "Sort them in descending order.", false},
		{"What is the speed of light?", "How fast is the speed of light?", true},
		{"How do I convert a string to an integer?", "How do I convert an integer to a string?", false},
		{"Is a car faster than a bike?", "Is a bike faster than a car?", false},
		{"How do I cook rice?", "What's the best way to cook rice?", true},
		{"How do I learn to play the guitar?", "How can I learn to play guitar?", true},
	}
	for _, tt := range tests {
		t.Run(tt.a+" / "+tt.b, func(t *testing.T) {
			if got := LiteralsAgree(tt.a, tt.b); got != tt.agree {
				t.Errorf("LiteralsAgree = %v, want %v", got, tt.agree)
			}
			if got := LiteralsAgree(tt.b, tt.a); got != tt.agree {
				t.Errorf("LiteralsAgree, swapped = %v, want %v", got, tt.agree)
			}
		})
	}
}
