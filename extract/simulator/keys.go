package simulator

import (
	"math/rand/v2"
	"strconv"
	"strings"
)

// OddKey is an attribute key the HostileKeys or KeySeed quirk sends, with
// its value on every usage record of device 0.
type OddKey struct {
	// JSON is the key exactly as it goes on the wire: a JSON string whose
	// bytes outside the escapes JSON requires are sent raw, invalid UTF-8
	// included.
	JSON  []byte
	Value string
}

// hostileKeys are the HostileKeys quirk's keys: every kind of byte a column
// name or a statement's text cannot carry as it is.
func hostileKeys() []string {
	return []string{
		"x\x00",
		"\x00",
		`x"; DROP TABLE usage_daily; --`,
		`'); DROP TABLE devices; --`,
		"line\nbreak\r\ttab",
		"bad\xff\xfeutf8",
		"\xc3(",
		"\xed\xa0\x80surrogate",
		"温度",
		"Ünïcode Kéy",
		"emoji😀",
		"select",
		"extra",
		"row_hash",
		"",
		`back\slash`,
		strings.Repeat("Long", 10<<10/4),
	}
}

// maxRandomKey is the longest random key: 10 KB.
const maxRandomKey = 10 << 10

// randomKeys draws n keys of random bytes from seed: mostly short, some
// long, every byte value possible, NUL, quotes, backslashes and bytes of
// invalid UTF-8 more often than chance.
func randomKeys(seed int64, n int) []string {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6b657973))
	special := []byte{0, '"', '\'', '\\', ';', '\n', '-', ' ', 0xff, 0xc3, 0x80}
	keys := make([]string, n)
	for i := range keys {
		size := 1 + rng.IntN(24)
		switch rng.IntN(10) {
		case 0:
			size = 0
		case 1:
			size = 1 + rng.IntN(maxRandomKey)
		}
		b := make([]byte, size)
		for j := range b {
			switch rng.IntN(4) {
			case 0:
				b[j] = special[rng.IntN(len(special))]
			case 1:
				b[j] = byte('a' + rng.IntN(26))
			default:
				b[j] = byte(rng.IntN(256))
			}
		}
		keys[i] = string(b)
	}
	return keys
}

// RandomKeysPerRecord is how many keys the KeySeed quirk draws.
const RandomKeysPerRecord = 12

// oddKeys returns the keys the HostileKeys and KeySeed quirks send.
func oddKeys(q Quirks) []OddKey {
	var raw []string
	if q.HostileKeys {
		raw = append(raw, hostileKeys()...)
	}
	if q.KeySeed != 0 {
		raw = append(raw, randomKeys(q.KeySeed, RandomKeysPerRecord)...)
	}
	out := make([]OddKey, len(raw))
	for i, k := range raw {
		out[i] = OddKey{JSON: appendRawStr(nil, k), Value: "v" + strconv.Itoa(i)}
	}
	return out
}

// OddKeys returns the keys the HostileKeys and KeySeed quirks send on each
// usage record of device 0, in the order sent.
func (s *Simulator) OddKeys() []OddKey { return s.oddKeys }

// appendRawStr appends s as a JSON string the way a careless server writes
// it: quotes, backslashes and control bytes escaped, every other byte as
// it is, even when it is not UTF-8.
func appendRawStr(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
