package ingest

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/thingsync/thingsync/aggregate"
	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/load"
	"github.com/thingsync/thingsync/schema"
)

// The statuses a run ends with, as sync_runs records them.
const (
	StatusOK          = "ok"
	StatusPartial     = "partial"
	StatusFailed      = "failed"
	StatusInterrupted = "interrupted"
	// StatusBudget: the run reached its budget (THINGSYNC_RUN_BUDGET) and
	// stopped cleanly; the next run carries on after it.
	StatusBudget = "budget"
)

// Kind says what a run's Error means for whoever started the run.
type Kind int

const (
	// CannotRun: the run could not do its work (the warehouse, the login,
	// the device list, recording the run); nothing new can be trusted to
	// be loaded.
	CannotRun Kind = iota + 1
	// Partial: what was fetched is loaded, but not all of it (devices
	// failed, a signal, the device list cut short, the aggregate step, a
	// --device that matched nothing); the next run takes the rest.
	Partial
)

// Error is the error of a run that did not end ok.
type Error struct {
	Kind Kind
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

func cannotRun(err error) error { return &Error{Kind: CannotRun, Err: err} }

func partial(err error) error { return &Error{Kind: Partial, Err: err} }

// Ended is what a run knows once its work is over.
type Ended struct {
	Result extract.Result
	// WalkErr is the walk's error, CloseErr the writer's (committing the
	// last batches), AggErr the aggregate step's.
	WalkErr, CloseErr, AggErr error
	// Interrupted: the run's context ended (a signal).
	Interrupted bool
}

// Outcome is how a run ended: Status and Detail as sync_runs records
// them, and Err, an *Error, for whoever started the run (nil when ok).
type Outcome struct {
	Status string
	Detail string
	Err    error
}

// Decide is the outcome of a run that ended as e. The first cause wins: a
// commit that failed, a signal, a device list cut short, a walk that
// failed, devices that failed, the aggregate step. A --device that no
// listed device matched makes an ok run partial and is added to a partial
// one's message.
func Decide(e Ended) Outcome {
	o := Outcome{Status: StatusOK}
	var incomplete *extract.ListIncompleteError
	switch {
	case e.CloseErr != nil:
		o = Outcome{StatusFailed, e.CloseErr.Error(), cannotRun(fmt.Errorf("write warehouse: %w", e.CloseErr))}
	case e.WalkErr != nil && e.Interrupted:
		o = Outcome{StatusInterrupted, "stopped by signal", partial(errors.New("interrupted; the next run resumes from the checkpoints"))}
	case errors.As(e.WalkErr, &incomplete):
		// The devices listed are loaded: like devices that failed, the
		// ones the list never reached are the next run's.
		o = Outcome{StatusPartial, e.WalkErr.Error(), partial(fmt.Errorf("%w; the devices listed are loaded", e.WalkErr))}
	case e.WalkErr != nil:
		o = Outcome{StatusFailed, e.WalkErr.Error(), cannotRun(e.WalkErr)}
	case e.Result.Budget:
		// Not an error: a fleet larger than one night's requests is
		// visited over several runs, each carrying on after the last.
		detail := fmt.Sprintf("run budget reached after %d of %d devices listed; the next run carries on after them", e.Result.DevicesDone, e.Result.Devices)
		if e.Result.DevicesFailed > 0 {
			detail += fmt.Sprintf("; %d devices failed", e.Result.DevicesFailed)
		}
		o = Outcome{Status: StatusBudget, Detail: detail}
	case e.Result.DevicesFailed > 0:
		o = Outcome{StatusPartial, "", partial(fmt.Errorf("%d of %d devices failed; the others are loaded", e.Result.DevicesFailed, e.Result.Devices))}
	case e.AggErr != nil:
		o = Outcome{StatusPartial, "aggregate: " + e.AggErr.Error(), partial(fmt.Errorf("aggregate usage: %w", e.AggErr))}
	}
	if len(e.Result.Unmatched) > 0 && (o.Err == nil || o.Status == StatusPartial) {
		// A device named that the account does not list is a mistake in
		// the command, not an ok run of nothing.
		names := make([]string, len(e.Result.Unmatched))
		for i, id := range e.Result.Unmatched {
			names[i] = id.String()
		}
		msg := "no device of the account matches --device " + strings.Join(names, ", ")
		if o.Err == nil {
			o = Outcome{StatusPartial, msg, partial(errors.New(msg))}
		} else {
			o.Detail = strings.TrimPrefix(o.Detail+"; "+msg, "; ")
			o.Err = partial(fmt.Errorf("%w; %s", errors.Unwrap(o.Err), msg))
		}
	}
	return o
}

// Unrecorded is o once recording it in sync_runs failed with err: a run
// that ended ok has then failed; one that did not keeps its own error.
func (o Outcome) Unrecorded(err error) Outcome {
	if err == nil || o.Err != nil {
		return o
	}
	return Outcome{Status: StatusFailed, Detail: o.Detail, Err: cannotRun(fmt.Errorf("record run outcome: %w", err))}
}

// WriteSummary prints the run's summary line, unless the run failed: then
// the error (exit 3) is the whole story, and a summary of zeros would read
// like a quiet success.
func (r Report) WriteSummary(w io.Writer) {
	if r.Summary != "" && r.Status != StatusFailed {
		fmt.Fprintln(w, r.Summary)
	}
}

// Summary is a run's one summary line: devices, requests, rows per table,
// rejects and duration, and the aggregate requests when agg is not nil.
func Summary(kind string, res extract.Result, c extract.Counters, t load.Totals, d time.Duration, agg *aggregate.Report) string {
	var b strings.Builder
	if res.DevicesDone == res.Devices {
		fmt.Fprintf(&b, "%s: %d devices (%d failed)", kind, res.Devices, res.DevicesFailed)
	} else {
		// Cut short (a signal, a broken list): what was done, not what
		// was listed.
		fmt.Fprintf(&b, "%s: %d listed, %d done, %d failed", kind, res.Devices, res.DevicesDone, res.DevicesFailed)
	}
	fmt.Fprintf(&b, ", %d requests, %d retries", c.TotalRequests(), c.TotalRetries())
	for _, table := range []string{schema.Devices, schema.UsageDaily, schema.ConnectionEvents, schema.RatedUsage} {
		tt, ok := t.Tables[table]
		if !ok && table == schema.RatedUsage {
			continue
		}
		fmt.Fprintf(&b, ", %s +%d ~%d", table, tt.Inserted, tt.Updated)
	}
	fmt.Fprintf(&b, ", %d rejected, %s", t.Rejected, d.Round(time.Millisecond))
	if res.Budget {
		b.WriteString("; run budget reached, the next run carries on")
	}
	if agg != nil {
		fmt.Fprintf(&b, ", aggregate requests %d (%d asked again), %d received, %d pending", agg.Requested, agg.Reasked, agg.Received, agg.Pending)
	}
	return b.String()
}
