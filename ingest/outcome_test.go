package ingest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/thingsync/thingsync/aggregate"
	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/load"
	"github.com/thingsync/thingsync/schema"
)

// TestDecide covers every way a run ends: its status and sync_runs detail,
// the kind of its error (what the CLI maps to exit 1 or 3) and the error's
// words, which the operator reads.
func TestDecide(t *testing.T) {
	walkErr := fmt.Errorf("list devices: %w", extract.ErrLoginRejected)
	listErr := &extract.ListIncompleteError{Listed: 400, Err: errors.New("page 3: 503")}
	closeErr := errors.New("disk full")
	aggErr := errors.New("register callback listener: 500")
	done := extract.Result{Devices: 5, DevicesDone: 5}
	failed := extract.Result{Devices: 5, DevicesDone: 5, DevicesFailed: 2}
	unmatched := []extract.DeviceID{{Kind: "imei", ID: "1"}, {Kind: "iccid", ID: "2"}}
	with := func(r extract.Result, ids []extract.DeviceID) extract.Result { r.Unmatched = ids; return r }
	budget := extract.Result{Devices: 9, DevicesDone: 4, Budget: true}
	budgetFailed := extract.Result{Devices: 9, DevicesDone: 4, DevicesFailed: 1, Budget: true}
	const noMatch = "no device of the account matches --device imei:1, iccid:2"

	for _, tc := range []struct {
		name   string
		in     Ended
		status string
		detail string
		kind   Kind // 0: no error
		msg    string
		is     error // the error still wraps this cause
	}{
		{name: "ok", in: Ended{Result: done}, status: StatusOK},
		{name: "ok though a signal came after the walk", in: Ended{Result: done, Interrupted: true}, status: StatusOK},
		{name: "commit failed", in: Ended{Result: done, CloseErr: closeErr},
			status: StatusFailed, detail: "disk full", kind: CannotRun, msg: "write warehouse: disk full", is: closeErr},
		{name: "commit failed beats a signal", in: Ended{Result: done, WalkErr: walkErr, CloseErr: closeErr, Interrupted: true},
			status: StatusFailed, detail: "disk full", kind: CannotRun, msg: "write warehouse: disk full", is: closeErr},
		{name: "interrupted", in: Ended{Result: failed, WalkErr: errors.New("context canceled"), Interrupted: true},
			status: StatusInterrupted, detail: "stopped by signal", kind: Partial, msg: "interrupted; the next run resumes from the checkpoints"},
		{name: "device list cut short", in: Ended{Result: done, WalkErr: listErr},
			status: StatusPartial, detail: listErr.Error(), kind: Partial,
			msg: "device list incomplete after 400 devices: page 3: 503; the devices listed are loaded", is: listErr},
		{name: "device list cut short, wrapped", in: Ended{Result: done, WalkErr: fmt.Errorf("walk: %w", listErr)},
			status: StatusPartial, detail: "walk: " + listErr.Error(), kind: Partial,
			msg: "walk: device list incomplete after 400 devices: page 3: 503; the devices listed are loaded", is: listErr},
		{name: "walk failed", in: Ended{WalkErr: walkErr},
			status: StatusFailed, detail: "list devices: login rejected", kind: CannotRun, msg: "list devices: login rejected", is: extract.ErrLoginRejected},
		{name: "budget reached", in: Ended{Result: budget},
			status: StatusBudget, detail: "run budget reached after 4 of 9 devices listed; the next run carries on after them"},
		{name: "budget reached with devices failed", in: Ended{Result: budgetFailed},
			status: StatusBudget, detail: "run budget reached after 4 of 9 devices listed; the next run carries on after them; 1 devices failed"},
		{name: "a signal beats the budget", in: Ended{Result: budget, WalkErr: errors.New("context canceled"), Interrupted: true},
			status: StatusInterrupted, detail: "stopped by signal", kind: Partial, msg: "interrupted; the next run resumes from the checkpoints"},
		{name: "commit failed beats the budget", in: Ended{Result: budget, CloseErr: closeErr},
			status: StatusFailed, detail: "disk full", kind: CannotRun, msg: "write warehouse: disk full", is: closeErr},
		{name: "devices failed", in: Ended{Result: failed},
			status: StatusPartial, kind: Partial, msg: "2 of 5 devices failed; the others are loaded"},
		{name: "devices failed beat the aggregate step", in: Ended{Result: failed, AggErr: aggErr},
			status: StatusPartial, kind: Partial, msg: "2 of 5 devices failed; the others are loaded"},
		{name: "aggregate step failed", in: Ended{Result: done, AggErr: aggErr},
			status: StatusPartial, detail: "aggregate: register callback listener: 500", kind: Partial,
			msg: "aggregate usage: register callback listener: 500", is: aggErr},
		{name: "unmatched device, else ok", in: Ended{Result: with(done, unmatched)},
			status: StatusPartial, detail: noMatch, kind: Partial, msg: noMatch},
		{name: "unmatched device and devices failed", in: Ended{Result: with(failed, unmatched)},
			status: StatusPartial, detail: noMatch, kind: Partial, msg: "2 of 5 devices failed; the others are loaded; " + noMatch},
		{name: "unmatched device and the aggregate step", in: Ended{Result: with(done, unmatched), AggErr: aggErr},
			status: StatusPartial, detail: "aggregate: register callback listener: 500; " + noMatch, kind: Partial,
			msg: "aggregate usage: register callback listener: 500; " + noMatch, is: aggErr},
		{name: "unmatched device and the list cut short", in: Ended{Result: with(done, unmatched), WalkErr: listErr},
			status: StatusPartial, detail: listErr.Error() + "; " + noMatch, kind: Partial,
			msg: listErr.Error() + "; the devices listed are loaded; " + noMatch, is: listErr},
		{name: "unmatched device left out of a failed run", in: Ended{Result: with(done, unmatched), WalkErr: walkErr},
			status: StatusFailed, detail: "list devices: login rejected", kind: CannotRun, msg: "list devices: login rejected", is: extract.ErrLoginRejected},
		{name: "unmatched device left out of an interrupted run", in: Ended{Result: with(done, unmatched), WalkErr: errors.New("context canceled"), Interrupted: true},
			status: StatusInterrupted, detail: "stopped by signal", kind: Partial, msg: "interrupted; the next run resumes from the checkpoints"},
		{name: "unmatched device left out when the commit failed", in: Ended{Result: with(done, unmatched), CloseErr: closeErr},
			status: StatusFailed, detail: "disk full", kind: CannotRun, msg: "write warehouse: disk full", is: closeErr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Decide(tc.in)
			checkOutcome(t, o, tc.status, tc.detail, tc.kind, tc.msg, tc.is)
		})
	}
}

func checkOutcome(t *testing.T, o Outcome, status, detail string, kind Kind, msg string, is error) {
	t.Helper()
	if o.Status != status || o.Detail != detail {
		t.Errorf("status %q, detail %q; want %q, %q", o.Status, o.Detail, status, detail)
	}
	if kind == 0 {
		if o.Err != nil {
			t.Errorf("error %v; want none", o.Err)
		}
		return
	}
	var e *Error
	if !errors.As(o.Err, &e) {
		t.Fatalf("error %v (%T); want an *Error", o.Err, o.Err)
	}
	if e.Kind != kind || e.Error() != msg {
		t.Errorf("error kind %d %q; want kind %d %q", e.Kind, e.Error(), kind, msg)
	}
	if is != nil && !errors.Is(o.Err, is) {
		t.Errorf("error %q does not wrap %q", o.Err, is)
	}
}

// A run whose outcome cannot be recorded has failed, unless it already
// ended with an error of its own, which stays the one reported.
func TestUnrecorded(t *testing.T) {
	finishErr := errors.New("database is locked")
	ok := Decide(Ended{})
	checkOutcome(t, ok.Unrecorded(nil), StatusOK, "", 0, "", nil)
	checkOutcome(t, ok.Unrecorded(finishErr), StatusFailed, "", CannotRun, "record run outcome: database is locked", finishErr)
	part := Decide(Ended{Result: extract.Result{Devices: 3, DevicesFailed: 1}})
	checkOutcome(t, part.Unrecorded(finishErr), StatusPartial, "", Partial, "1 of 3 devices failed; the others are loaded", nil)
}

func TestSummary(t *testing.T) {
	c := extract.Counters{Requests: map[string]int{"devices": 3, "usage": 7}, Retries: map[string]int{"usage": 2}}
	tot := load.Totals{Rejected: 4, Tables: map[string]load.TableTotals{
		schema.Devices: {Inserted: 5}, schema.UsageDaily: {Inserted: 30, Updated: 2},
	}}
	for _, tc := range []struct {
		name string
		res  extract.Result
		tot  load.Totals
		agg  *aggregate.Report
		want string
	}{
		{name: "all done, no rated usage", res: extract.Result{Devices: 5, DevicesDone: 5, DevicesFailed: 1}, tot: tot,
			want: "sync: 5 devices (1 failed), 10 requests, 2 retries, devices +5 ~0, usage_daily +30 ~2, connection_events +0 ~0, 4 rejected, 1.5s"},
		{name: "cut short", res: extract.Result{Devices: 5, DevicesDone: 3}, tot: tot,
			want: "sync: 5 listed, 3 done, 0 failed, 10 requests, 2 retries, devices +5 ~0, usage_daily +30 ~2, connection_events +0 ~0, 4 rejected, 1.5s"},
		{name: "rated usage and aggregate requests", res: extract.Result{}, agg: &aggregate.Report{Requested: 3, Reasked: 1, Received: 2, Pending: 1},
			tot: load.Totals{Tables: map[string]load.TableTotals{schema.RatedUsage: {Updated: 6}}},
			want: "sync: 0 devices (0 failed), 10 requests, 2 retries, devices +0 ~0, usage_daily +0 ~0, connection_events +0 ~0, rated_usage +0 ~6, " +
				"0 rejected, 1.5s, aggregate requests 3 (1 asked again), 2 received, 1 pending"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Summary("sync", tc.res, c, tc.tot, 1500*time.Millisecond+300*time.Microsecond, tc.agg); got != tc.want {
				t.Errorf("Summary =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}
