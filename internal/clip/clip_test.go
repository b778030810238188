package clip

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestText(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want string
	}{
		{"", 3, ""},
		{"abc", 3, "abc"},
		{"abcd", 3, "abc…"},
		{"abcd", 0, "…"},
		{"aé", 2, "a…"},   // é is two bytes: not cut in half
		{"aéb", 3, "aé…"}, // a cut right after a rune keeps it
		{"日本語", 4, "日…"},
	} {
		got := Text(c.s, c.n)
		if got != c.want {
			t.Errorf("Text(%q, %d) = %q, want %q", c.s, c.n, got, c.want)
		}
		if !utf8.ValidString(got) {
			t.Errorf("Text(%q, %d) = %q: not valid UTF-8", c.s, c.n, got)
		}
		if len(strings.TrimSuffix(got, "…")) > c.n {
			t.Errorf("Text(%q, %d) = %q: longer than %d bytes before the mark", c.s, c.n, got, c.n)
		}
	}
}
