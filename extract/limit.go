package extract

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// RangeLimit learns, for one history stream and the whole fleet, how wide a
// range the API answers in one request. A run asks each device-stream's
// whole span, up to the ceiling (THINGSYNC_WINDOW_*); a refusal
// (ErrRangeRefused) says the account's API answers less, and from then on
// the walk asks the widest width answered, not the ceiling, so that a
// fleet pays a few refusals, not one per device. Between the widest
// answered and the narrowest refused width it tries the middle (whole
// days), so the width it settles on is within two days of the API's limit
// after a handful of refusals.
//
// How the width grows again: the ceiling always caps it, and a run that
// starts with a learned refusal asks one window (per stream) at the
// ceiling; answered, the limit is forgotten (the API, or the operator's
// raised ceiling, allows it now), refused, it costs that one request. A
// timeout (ErrRangeTimeout) is not a refusal: it is about one device's
// data and the API's load at that moment, so it splits that window and
// leaves the width alone.
//
// Safe for concurrent use.
type RangeLimit struct {
	ceiling time.Duration

	mu     sync.Mutex
	known  RangeLearned
	loaded RangeLearned
	// probe: this run may still ask one window at the ceiling.
	probe bool
}

// RangeLearned is what a RangeLimit knows, kept across runs.
type RangeLearned struct {
	// Answered is the widest range answered (0: none yet).
	Answered time.Duration
	// Refused is the narrowest range refused (0: none; the ceiling is the
	// width).
	Refused time.Duration
}

// String is the form kept in the warehouse (ParseRangeLearned reads it).
func (l RangeLearned) String() string {
	return fmt.Sprintf("answered=%s refused=%s", l.Answered, l.Refused)
}

// ParseRangeLearned reads RangeLearned.String.
func ParseRangeLearned(s string) (RangeLearned, error) {
	var l RangeLearned
	for _, f := range strings.Fields(s) {
		k, v, ok := strings.Cut(f, "=")
		d, err := time.ParseDuration(v)
		if !ok || err != nil || d < 0 {
			return RangeLearned{}, fmt.Errorf("learned range %q: want answered=DURATION refused=DURATION", s)
		}
		switch k {
		case "answered":
			l.Answered = d
		case "refused":
			l.Refused = d
		default:
			return RangeLearned{}, fmt.Errorf("learned range %q: unknown field %q", s, k)
		}
	}
	return l, nil
}

// NewRangeLimit starts from what earlier runs learned, under ceiling.
func NewRangeLimit(ceiling time.Duration, learned RangeLearned) *RangeLimit {
	if learned.Refused > 0 && learned.Answered >= learned.Refused {
		learned.Answered = 0
	}
	return &RangeLimit{ceiling: ceiling, known: learned, loaded: learned, probe: learned.Refused > 0}
}

// Width is how wide a window to ask next when want is left to fetch: the
// ceiling while nothing was refused, else the learned width (or, once a
// run, the ceiling again, to see whether the limit is gone).
func (l *RangeLimit) Width(want time.Duration) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.known.Refused == 0 {
		return l.ceiling
	}
	w := l.width()
	if l.probe && want > w && l.ceiling > w {
		l.probe = false
		return l.ceiling
	}
	return w
}

// width is the learned width, under the ceiling.
func (l *RangeLimit) width() time.Duration {
	lo, hi := l.known.Answered, l.known.Refused
	var w time.Duration
	switch {
	case lo == 0:
		w = whole(hi / 2)
	default:
		if w = whole(lo + (hi-lo)/2); w <= lo {
			w = whole(lo)
		}
	}
	return min(max(w, time.Second), l.ceiling)
}

// whole rounds a width down to whole days (whole hours under two days):
// windows then end at midnight, as the daily usage records do.
func whole(d time.Duration) time.Duration {
	switch {
	case d >= 48*time.Hour:
		return d.Truncate(24 * time.Hour)
	case d >= 2*time.Hour:
		return d.Truncate(time.Hour)
	}
	return d
}

// Answered records a window of length d the API answered.
func (l *RangeLimit) Answered(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.known.Answered = max(l.known.Answered, d)
	if l.known.Refused > 0 && d >= l.known.Refused {
		// As wide a range as one refused is answered now: the limit was
		// lifted (or never was what it seemed).
		l.known.Refused = 0
	}
}

// Refused records a window of length d the API refused as too long, and
// gives the width to ask instead.
func (l *RangeLimit) Refused(d time.Duration) (width time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.known.Refused == 0 || d < l.known.Refused {
		l.known.Refused = d
	}
	if l.known.Answered >= l.known.Refused {
		// The API refuses what it answered before: learn again from here.
		l.known.Answered = 0
	}
	return l.width()
}

// Learned is what the limit knows now; changed says it differs from what
// it started from.
func (l *RangeLimit) Learned() (learned RangeLearned, changed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.known, l.known != l.loaded
}
