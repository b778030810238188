package ingest

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/load"
	"github.com/thingsync/thingsync/schema"
)

// GapPlan is what a gap pass re-fetches.
type GapPlan struct {
	// Ranges are the missing ranges per stream and device.
	Ranges map[string]map[extract.DeviceID][]extract.Range
	// Devices have at least one range, in the order of their names.
	Devices []extract.DeviceID
	// Span runs from the earliest range's start to the latest one's end.
	Span extract.Range
	// DeviceDays counts the days of every range.
	DeviceDays int
}

// PlanGaps turns the coverage ledger's gaps into the ranges a pass
// re-fetches: those of streams, and of devices when it is not empty.
func PlanGaps(gaps []load.Gap, streams map[string]bool, devices map[extract.DeviceID]bool) GapPlan {
	p := GapPlan{Ranges: map[string]map[extract.DeviceID][]extract.Range{}}
	seen := map[extract.DeviceID]bool{}
	for _, g := range gaps {
		if !streams[g.Stream] || (len(devices) > 0 && !devices[g.Device]) {
			continue
		}
		if p.Ranges[g.Stream] == nil {
			p.Ranges[g.Stream] = map[extract.DeviceID][]extract.Range{}
		}
		p.Ranges[g.Stream][g.Device] = append(p.Ranges[g.Stream][g.Device], extract.Range{From: g.From, To: g.To})
		if !seen[g.Device] {
			seen[g.Device] = true
			p.Devices = append(p.Devices, g.Device)
		}
		if p.Span.From.IsZero() || g.From.Before(p.Span.From) {
			p.Span.From = g.From
		}
		if g.To.After(p.Span.To) {
			p.Span.To = g.To
		}
		p.DeviceDays += days(g)
	}
	slices.SortFunc(p.Devices, func(a, b extract.DeviceID) int { return strings.Compare(a.String(), b.String()) })
	return p
}

// GapsLeft summarises the gaps of streams, and of devices when it is not
// empty, per stream in the order the ledger lists them: "" when there are
// none.
func GapsLeft(gaps []load.Gap, streams map[string]bool, devices map[extract.DeviceID]bool) string {
	count := map[string]int{}
	devs := map[string]map[extract.DeviceID]bool{}
	var order []string
	for _, g := range gaps {
		if !streams[g.Stream] || (len(devices) > 0 && !devices[g.Device]) {
			continue
		}
		if devs[g.Stream] == nil {
			devs[g.Stream] = map[extract.DeviceID]bool{}
			order = append(order, g.Stream)
		}
		count[g.Stream] += days(g)
		devs[g.Stream][g.Device] = true
	}
	var parts []string
	for _, st := range order {
		parts = append(parts, fmt.Sprintf("%s %d device-days on %d devices", st, count[st], len(devs[st])))
	}
	return strings.Join(parts, ", ")
}

// days counts a gap's days: its ends are UTC midnights.
func days(g load.Gap) int { return int(g.To.Sub(g.From).Hours() / 24) }

// BackfillGaps re-fetches the coverage ledger's missing device-days of
// the history streams among streams, of only's devices when it is not
// empty, and nothing else. A pass with nothing to fetch records no run
// and says so in its Summary. A device of only that the warehouse does not
// know, or a gap the pass fetched that the ledger still lists, ends it
// Partial.
func (r *Runner) BackfillGaps(ctx context.Context, streams []string, only []extract.DeviceID) (Report, error) {
	rep := Report{Kind: "backfill", Status: StatusFailed}
	gaps, resolved, err := r.readGaps(ctx, only)
	if err != nil {
		return rep, err
	}
	var unknown []string
	for _, d := range only {
		if _, ok := resolved[d]; !ok {
			unknown = append(unknown, d.Kind+":"+d.ID)
		}
	}
	if len(unknown) > 0 {
		// The ledger knows only devices a run has listed: a typo here would
		// otherwise read as "nothing missing".
		return rep, partial(fmt.Errorf("backfill --gaps: no device of the warehouse has --device %s; nothing fetched", strings.Join(unknown, ", ")))
	}
	want := map[string]bool{}
	var history []string
	for _, s := range streams {
		if s == schema.StreamUsage || s == schema.StreamConnections {
			want[s] = true
			history = append(history, s)
		}
	}
	wantDev := map[extract.DeviceID]bool{}
	for _, d := range only {
		wantDev[resolved[d]] = true
	}
	plan := PlanGaps(gaps, want, wantDev)
	if len(plan.Devices) == 0 {
		return Report{Kind: "backfill", Status: StatusOK, Summary: "backfill --gaps: no missing device-days"}, nil
	}
	r.Log.Info().Int("devices", len(plan.Devices)).Int("device_days", plan.DeviceDays).Msg("backfill --gaps: re-fetching the missing device-days")
	rep, err = r.Run(ctx, Spec{Kind: "backfill", Streams: history, Backfill: &plan.Span, Only: plan.Devices, Ranges: plan.Ranges})
	if err != nil {
		return rep, err
	}
	// A pass that ends well leaves nothing missing; if the ledger still
	// lists a gap it fetched, say so rather than report success.
	gaps, _, err = r.readGaps(ctx, nil)
	if err != nil {
		return rep, err
	}
	if left := GapsLeft(gaps, want, wantDev); left != "" {
		return rep, partial(fmt.Errorf("backfill --gaps: missing device-days left after the pass: %s (thingsync status; sql 'SELECT * FROM coverage WHERE missing_days > 0')", left))
	}
	return rep, nil
}

// readGaps reads the ledger's gaps, and which device each of only names.
func (r *Runner) readGaps(ctx context.Context, only []extract.DeviceID) ([]load.Gap, map[extract.DeviceID]extract.DeviceID, error) {
	wh, err := load.Open(ctx, r.Config.DB, r.Log)
	if err != nil {
		return nil, nil, cannotRun(fmt.Errorf("open warehouse %s: %w", r.Config.DB, err))
	}
	defer wh.Close()
	gaps, err := wh.Gaps(ctx)
	if err != nil {
		return nil, nil, cannotRun(err)
	}
	var resolved map[extract.DeviceID]extract.DeviceID
	if len(only) > 0 {
		if resolved, err = wh.ResolveDevices(ctx, only); err != nil {
			return nil, nil, cannotRun(err)
		}
	}
	return gaps, resolved, nil
}
