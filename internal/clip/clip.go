// Package clip decides how text from outside (API values and keys, error
// messages, failure reasons) is shortened before it reaches a log line, an
// error, a stored reason or a report: at most n bytes, cut on a rune
// boundary so the result stays valid UTF-8 where s was, and marked with "…"
// when anything was cut.
package clip

import "unicode/utf8"

// Text returns s if it holds at most n bytes, else its longest prefix of at
// most n bytes that ends on a rune boundary, followed by "…".
func Text(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := max(n, 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
