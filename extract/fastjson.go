package extract

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/bits"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// A connection event carries ~40 key/value attributes. Decoding them with
// encoding/json costs ~100 µs an event (every attribute re-enters the
// decoder), which alone would cap a sync at ~20,000 events/s on two cores.
// This scanner reads the shape the API sends — an object of
// connectionEventAttributes, occurredAt and extendedAttributes — in one
// pass; anything else falls back to encoding/json, so behaviour is the same.

type scan struct {
	b []byte
	i int
	// text, when set, holds the same bytes as b: strings are cut from it
	// instead of allocated one by one. valid says b is known to be UTF-8.
	text  string
	valid bool
}

var errShape = errors.New("unexpected shape")

func (s *scan) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scan) byte(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// str reads a JSON string.
func (s *scan) str() (string, error) {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return "", errShape
	}
	start := s.i + 1
	q := special(s.b[start:])
	if start+q >= len(s.b) {
		return "", errShape
	}
	switch s.b[start+q] {
	case '"':
	case '\\':
		// Escapes are rare: let encoding/json handle the string.
		end := start + q
		for end < len(s.b) {
			if s.b[end] == '\\' {
				end += 2
				continue
			}
			if s.b[end] == '"' {
				break
			}
			end++
		}
		if end >= len(s.b) {
			return "", errShape
		}
		var out string
		if err := json.Unmarshal(s.b[s.i:end+1], &out); err != nil {
			return "", errShape
		}
		s.i = end + 1
		return out, nil
	default: // a control byte, not allowed raw in a JSON string
		return "", errShape
	}
	seg := s.b[start : start+q]
	s.i = start + q + 1
	if !s.valid && !utf8.Valid(seg) {
		return "", errShape
	}
	if s.text != "" {
		return s.text[start : start+q], nil
	}
	return string(seg), nil
}

// special returns the index of the first quote, backslash or byte below
// 0x20 in b, or len(b): one pass, eight bytes at a time, where three
// separate searches were half the decoding time of an event page.
func special(b []byte) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		// A zero byte of x^c marks c; a byte below 0x20 borrows in
		// x − 0x20…20. Borrows only run upwards, so the lowest marked
		// byte is a true one.
		q, bs := x^('"'*ones), x^('\\'*ones)
		m := ((q - ones) &^ q) | ((bs - ones) &^ bs) | ((x - 0x20*ones) &^ x)
		if m &= highs; m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c == '"' || c == '\\' || c < 0x20 {
			return i
		}
	}
	return len(b)
}

// scalar reads a string, number, true, false or null as text.
func (s *scan) scalar() (text string, null bool, err error) {
	s.ws()
	if s.i >= len(s.b) {
		return "", false, errShape
	}
	switch c := s.b[s.i]; {
	case c == '"':
		t, err := s.str()
		return t, false, err
	case c == 'n':
		if bytes.HasPrefix(s.b[s.i:], []byte("null")) {
			s.i += 4
			return "", true, nil
		}
	case c == 't' || c == 'f' || c == '-' || (c >= '0' && c <= '9'):
		start := s.i
		for s.i < len(s.b) {
			c := s.b[s.i]
			if c == ',' || c == '}' || c == ']' || c == ' ' || c == '\n' || c == '\r' || c == '\t' {
				break
			}
			s.i++
		}
		tok := s.b[start:s.i:s.i]
		if !json.Valid(tok) {
			return "", false, errShape
		}
		if s.text != "" {
			return s.text[start:s.i], false, nil
		}
		return string(tok), false, nil
	}
	return "", false, errShape
}

// object reads {"name": value, …}: field gets each member's name and must
// read its value.
func (s *scan) object(field func(name string) error) error {
	if !s.byte('{') {
		return errShape
	}
	if s.byte('}') {
		return nil
	}
	for {
		name, err := s.str()
		if err != nil || !s.byte(':') {
			return errShape
		}
		if err := field(name); err != nil {
			return err
		}
		if s.byte(',') {
			continue
		}
		if s.byte('}') {
			return nil
		}
		return errShape
	}
}

// array reads [value, …]: elem must read each value.
func (s *scan) array(elem func() error) error {
	if !s.byte('[') {
		return errShape
	}
	if s.byte(']') {
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		if s.byte(',') {
			continue
		}
		if s.byte(']') {
			return nil
		}
		return errShape
	}
}

// end tells whether only whitespace is left.
func (s *scan) end() bool {
	s.ws()
	return s.i == len(s.b)
}

// attributes reads [{"key": …, "value": …}, …] or null.
func (s *scan) attributes(into []Attribute) ([]Attribute, error) {
	s.ws()
	if bytes.HasPrefix(s.b[s.i:], []byte("null")) {
		s.i += 4
		return into, nil
	}
	err := s.array(func() error {
		if a, ok := s.plainAttribute(); ok {
			into = append(into, a)
			return nil
		}
		var a Attribute
		var haveKey, haveValue bool
		err := s.object(func(name string) error {
			var err error
			switch name {
			case "key":
				a.Key, err = s.str()
				haveKey = true
			case "value":
				a.Value, a.Null, err = s.scalar()
				haveValue = true
			default:
				err = errShape
			}
			return err
		})
		if err != nil || !haveKey {
			return errShape
		}
		// A missing value is null, as the general decoder has it.
		a.Null = a.Null || !haveValue
		into = append(into, a)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return into, nil
}

// plainAttribute reads an attribute written as the API writes every one,
// {"key":"…","value":…} with no space and no escape in the key, without
// going through object; anything else leaves s where it was.
func (s *scan) plainAttribute() (a Attribute, ok bool) {
	const open, mid = `{"key":"`, `","value":`
	b, at := s.b, s.i
	if len(b)-at < len(open) || string(b[at:at+len(open)]) != open {
		return a, false
	}
	start := at + len(open)
	q := special(b[start:])
	end := start + q
	if end+len(mid) > len(b) || string(b[end:end+len(mid)]) != mid {
		return a, false // the key ends otherwise than in a plain quote
	}
	if !s.valid && !utf8.Valid(b[start:end]) {
		return a, false
	}
	if s.text != "" {
		a.Key = s.text[start:end]
	} else {
		a.Key = string(b[start:end])
	}
	s.i = end + len(mid)
	var err error
	if a.Value, a.Null, err = s.scalar(); err != nil || s.i >= len(b) || b[s.i] != '}' {
		s.i = at
		return Attribute{}, false
	}
	s.i++
	return a, true
}

// fastEvent decodes one connection event of the usual shape; ok is false
// when the record needs the general decoder.
func fastEvent(b []byte, e *ConnectionEvent) (ok bool) {
	s := scan{b: b}
	return fastEventAt(&s, e) && s.end()
}

// fastEventAt decodes the event that starts at s.i and leaves s after it.
func fastEventAt(s *scan, e *ConnectionEvent) (ok bool) {
	var proper, prose *string
	attrs := make([]Attribute, 0, 40)
	err := s.object(func(name string) error {
		var err error
		switch name {
		case "connectionEventAttributes":
			attrs, err = s.attributes(attrs[:0])
		case "occurredAt", "occuredAt":
			t, null, err := s.scalar()
			if err != nil {
				return err
			}
			// Each spelling keeps its last value (null clears it), and
			// occurredAt wins over the prose's occuredAt: as encoding/json
			// fills the general decoder's two pointers.
			v := &t
			if null {
				v = nil
			}
			if name == "occurredAt" {
				proper = v
			} else {
				prose = v
			}
		case "extendedAttributes":
			_, err = s.attributes(nil)
		default:
			err = errShape
		}
		return err
	})
	if err != nil {
		return false
	}
	if cap(attrs)-len(attrs) > 8 {
		// An event with few attributes does not keep room for 40: a page
		// of such events would hold ten times what it weighs.
		attrs = append([]Attribute(nil), attrs...)
	}
	e.Attributes = attrs
	switch {
	case proper != nil:
		e.OccurredAtText = *proper
	case prose != nil:
		e.OccurredAtText = *prose
	}
	ts, err := ParseTime(e.OccurredAtText)
	if err != nil {
		e.Err = errors.New("occurredAt: " + err.Error())
	}
	e.OccurredAt = ts
	return true
}

// skip moves past one JSON value, without validating it: the value is then
// decoded on its own, which validates it.
func (s *scan) skip() error {
	s.ws()
	if s.i >= len(s.b) {
		return errShape
	}
	switch s.b[s.i] {
	case '"':
		_, err := s.str()
		return err
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch c := s.b[s.i]; c {
			case '"':
				if _, err := s.str(); err != nil {
					return err
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return nil
				}
			}
			s.i++
		}
		return errShape
	default:
		_, _, err := s.scalar()
		return err
	}
}

// decodePage reads a history page in one pass: the records of the array
// named list go one by one to elem (reset is called where the array starts:
// a repeated key replaces it, as with encoding/json), hasMoreData is
// returned, other keys are validated and ignored. ok is false when the page
// needs encoding/json.
//
// The records' strings and their Raw point into b, which the caller must
// not change afterwards (a response body is read into a buffer of its own
// and never written again). Sharing b instead of copying it into a string
// saved a copy of every page: a megabyte per 500 events.
func decodePage(b []byte, list string, reset func(), elem func(s *scan) error) (more bool, ok bool) {
	s := scan{b: b, text: unsafe.String(unsafe.SliceData(b), len(b)), valid: utf8.Valid(b)}
	err := s.object(func(name string) error {
		// encoding/json matches keys case-insensitively; do the same, and
		// leave non-ASCII names (its folding rules) to it.
		for i := 0; i < len(name); i++ {
			if name[i] >= 0x80 {
				return errShape
			}
		}
		switch strings.ToLower(name) {
		case list:
			reset()
			return s.array(func() error {
				s.ws()
				return elem(&s)
			})
		case "hasmoredata":
			if s.ws(); s.i < len(b) && b[s.i] == '"' {
				return errShape // a string is not a bool to encoding/json
			}
			t, null, err := s.scalar()
			if err != nil || (!null && t != "true" && t != "false") {
				return errShape
			}
			more = t == "true"
			return nil
		default:
			s.ws()
			start := s.i
			if err := s.skip(); err != nil || !json.Valid(b[start:s.i:s.i]) {
				return errShape
			}
			return nil
		}
	})
	return more, err == nil && s.end()
}

// decodeConnectionPage reads a connection history page in one pass.
func decodeConnectionPage(b []byte) (events []ConnectionEvent, more bool, ok bool) {
	more, ok = decodePage(b, "connectionhistory", func() { events = events[:0] }, func(s *scan) error {
		// One pass: the fast decoder finds the record's end; a record it
		// does not take is skipped and given to encoding/json.
		start, sub := s.i, *s
		var e ConnectionEvent
		if fastEventAt(&sub, &e) {
			s.i = sub.i
			e.Raw = b[start:s.i:s.i]
		} else {
			if err := s.skip(); err != nil {
				return err
			}
			e = ConnectionEvent{Raw: b[start:s.i:s.i]}
			if err := e.slowDecode(e.Raw); err != nil {
				return err
			}
		}
		events = append(events, e)
		return nil
	})
	return events, more, ok
}

// decodeUsagePage reads a usage history page in one pass.
func decodeUsagePage(b []byte) (recs []UsageRecord, more bool, ok bool) {
	more, ok = decodePage(b, "usagehistory", func() { recs = recs[:0] }, func(s *scan) error {
		start, sub := s.i, *s
		var u UsageRecord
		if fastUsageAt(&sub, &u) {
			s.i = sub.i
			u.Raw = b[start:s.i:s.i]
		} else {
			if err := s.skip(); err != nil {
				return err
			}
			u = UsageRecord{Raw: b[start:s.i:s.i]}
			if err := u.slowDecode(u.Raw); err != nil {
				return err
			}
		}
		recs = append(recs, u)
		return nil
	})
	return recs, more, ok
}

// fastUsage decodes one usage record of the usual shape; ok is false when
// the record needs the general decoder.
func fastUsage(b []byte, r *UsageRecord) bool {
	s := scan{b: b}
	return fastUsageAt(&s, r) && s.end()
}

// fastUsageAt decodes the record that starts at s.i and leaves s after it.
func fastUsageAt(s *scan, r *UsageRecord) bool {
	var bytesUsed, smsUsed string
	attrs := make([]Attribute, 0, 4)
	err := s.object(func(name string) error {
		var err error
		switch name {
		case "bytesUsed":
			bytesUsed, _, err = s.scalar()
		case "smsUsed":
			smsUsed, _, err = s.scalar()
		case "source":
			r.Source, _, err = s.scalar()
		case "timestamp":
			r.TimestampText, _, err = s.scalar()
		case "extendedAttributes":
			attrs, err = s.attributes(attrs[:0])
		default:
			err = errShape
		}
		return err
	})
	if err != nil {
		return false
	}
	r.ExtendedAttributes = attrs
	r.finish(bytesUsed, smsUsed)
	return true
}
