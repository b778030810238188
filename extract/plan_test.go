package extract

import (
	"testing"
	"time"
)

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestPlanIncremental(t *testing.T) {
	now := ts("2026-11-22T12:30:00Z")
	day := 24 * time.Hour
	usage := Plan{Now: now, Start: ts("2025-11-22T00:00:00Z"), Ceiling: 30 * day, Lookback: 3 * day, Daily: true}
	conns := Plan{Now: now, Start: ts("2025-11-22T00:00:00Z"), Ceiling: 3 * day, Lookback: day}
	tests := []struct {
		name      string
		plan      Plan
		settled   time.Time
		wantN     int
		wantFirst Window
		wantLast  Window
	}{
		{"usage, no checkpoint: from start, 30-day steps", usage, time.Time{}, 13,
			Window{ts("2025-11-22T00:00:00Z"), ts("2025-12-22T00:00:00Z"), ts("2025-12-22T00:00:00Z")},
			Window{ts("2026-11-17T00:00:00Z"), now.Add(time.Second), ts("2026-11-19T00:00:00Z")}},
		{"usage, settled three days ago: one window, settles whole days", usage, ts("2026-11-19T00:00:00Z"), 1,
			Window{ts("2026-11-19T00:00:00Z"), now.Add(time.Second), ts("2026-11-19T00:00:00Z")},
			Window{ts("2026-11-19T00:00:00Z"), now.Add(time.Second), ts("2026-11-19T00:00:00Z")}},
		{"connections, checkpoint mid-day", conns, ts("2026-11-20T07:15:00Z"), 1,
			Window{ts("2026-11-20T07:15:00Z"), now.Add(time.Second), ts("2026-11-21T12:30:00Z")},
			Window{ts("2026-11-20T07:15:00Z"), now.Add(time.Second), ts("2026-11-21T12:30:00Z")}},
		{"checkpoint older than retention is clamped", usage, ts("2020-01-01T00:00:00Z"), 13,
			Window{ts("2025-11-22T00:00:00Z"), ts("2025-12-22T00:00:00Z"), ts("2025-12-22T00:00:00Z")},
			Window{ts("2026-11-17T00:00:00Z"), now.Add(time.Second), ts("2026-11-19T00:00:00Z")}},
		{"start before retention is clamped", Plan{Now: now, Start: ts("2020-01-01T00:00:00Z"), Ceiling: 400 * day, Lookback: 3 * day, Daily: true}, time.Time{}, 1,
			Window{ts("2025-11-22T00:00:00Z"), now.Add(time.Second), ts("2026-11-19T00:00:00Z")},
			Window{ts("2025-11-22T00:00:00Z"), now.Add(time.Second), ts("2026-11-19T00:00:00Z")}},
		{"checkpoint in the future: nothing to do", usage, now.Add(time.Hour), 0, Window{}, Window{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := tt.plan.Incremental(tt.settled)
			if len(ws) != tt.wantN {
				t.Fatalf("Incremental(%v) = %d windows %v, want %d", tt.settled, len(ws), ws, tt.wantN)
			}
			if tt.wantN == 0 {
				return
			}
			if ws[0] != tt.wantFirst || ws[len(ws)-1] != tt.wantLast {
				t.Errorf("Incremental(%v): first %+v last %+v, want %+v and %+v", tt.settled, ws[0], ws[len(ws)-1], tt.wantFirst, tt.wantLast)
			}
			for i := 1; i < len(ws); i++ {
				if !ws[i].From.Equal(ws[i-1].To) {
					t.Errorf("gap or overlap between %v and %v", ws[i-1], ws[i])
				}
				if ws[i].Settle.Before(ws[i-1].Settle) {
					t.Errorf("settle moves backwards between %v and %v", ws[i-1], ws[i])
				}
			}
		})
	}
}

func TestPlanBackfill(t *testing.T) {
	now := ts("2026-11-22T12:30:00Z")
	day := 24 * time.Hour
	p := Plan{Now: now, Start: ts("2026-01-01T00:00:00Z"), Ceiling: 30 * day, Lookback: 3 * day, Daily: true}
	// Starting after the checkpoint would leave a gap: no settle.
	ws := p.Backfill(ts("2026-10-01T00:00:00Z"), ts("2026-10-11T00:00:00Z"), ts("2026-06-01T00:00:00Z"))
	if len(ws) != 1 || !ws[0].Settle.IsZero() {
		t.Errorf("gap backfill = %+v, want one window without settle", ws)
	}
	// Starting at or before the checkpoint: settle may advance (load keeps the greatest).
	ws = p.Backfill(ts("2026-05-01T00:00:00Z"), ts("2026-07-01T00:00:00Z"), ts("2026-06-01T00:00:00Z"))
	if len(ws) != 3 || !ws[2].Settle.Equal(ts("2026-07-01T00:00:00Z")) {
		t.Errorf("contiguous backfill = %+v, want 3 windows settling to 07-01", ws)
	}
	// Beyond now is clipped, and never settles past the lookback.
	ws = p.Backfill(ts("2026-11-01T00:00:00Z"), ts("2026-12-31T00:00:00Z"), ts("2026-11-10T00:00:00Z"))
	if last := ws[len(ws)-1]; !last.To.Equal(now.Add(time.Second)) || !last.Settle.Equal(ts("2026-11-19T00:00:00Z")) {
		t.Errorf("backfill past now ends %+v", last)
	}
}

func TestSplit(t *testing.T) {
	tests := []struct {
		name  string
		in    Window
		want  int
		ok    bool
		first time.Duration
	}{
		{"30 days halves at a day boundary", Window{From: ts("2026-01-01T00:00:00Z"), To: ts("2026-01-31T00:00:00Z")}, 2, true, 15 * 24 * time.Hour},
		{"two days into days", Window{From: ts("2026-01-01T00:00:00Z"), To: ts("2026-01-03T00:00:00Z")}, 2, true, 24 * time.Hour},
		{"a day into hours", Window{From: ts("2026-01-01T00:00:00Z"), To: ts("2026-01-02T00:00:00Z")}, 24, true, time.Hour},
		{"an hour cannot split", Window{From: ts("2026-01-01T00:00:00Z"), To: ts("2026-01-01T01:00:00Z")}, 0, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parts, ok := Split(tt.in)
			if ok != tt.ok || len(parts) != tt.want {
				t.Fatalf("Split(%v) = %d parts, %v; want %d, %v", tt.in, len(parts), ok, tt.want, tt.ok)
			}
			if !ok {
				return
			}
			if d := parts[0].To.Sub(parts[0].From); d != tt.first {
				t.Errorf("first part %v long, want %v", d, tt.first)
			}
			if !parts[0].From.Equal(tt.in.From) || !parts[len(parts)-1].To.Equal(tt.in.To) {
				t.Errorf("parts %v do not cover %v", parts, tt.in)
			}
			for i := 1; i < len(parts); i++ {
				if !parts[i].From.Equal(parts[i-1].To) {
					t.Errorf("gap between %v and %v", parts[i-1], parts[i])
				}
			}
		})
	}
}
