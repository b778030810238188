package transform

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/schema"
)

// usageLayout is where usage_daily's columns sit.
type usageLayout struct {
	attrs                              attrMap
	kind, id, date, bytes, sms, source int
}

func newUsageLayout(t schema.Table) usageLayout {
	return usageLayout{
		attrs:  newAttrMap(t),
		kind:   mustIndex(t, "device_kind"),
		id:     mustIndex(t, "device_id"),
		date:   mustIndex(t, "usage_date"),
		bytes:  mustIndex(t, "bytes_used"),
		sms:    mustIndex(t, "sms_used"),
		source: mustIndex(t, "source"),
	}
}

// eventsLayout is where connection_events' columns sit.
type eventsLayout struct {
	attrs                    attrMap
	kind, id, at, event, typ int
}

func newEventsLayout(t schema.Table) eventsLayout {
	l := eventsLayout{
		attrs: newAttrMap(t),
		kind:  mustIndex(t, "device_kind"),
		id:    mustIndex(t, "device_id"),
		at:    mustIndex(t, "occurred_at"),
		event: mustIndex(t, "event"),
	}
	// The event falls back to AccountStatusType, wherever the schema puts
	// that attribute.
	typ, ok := l.attrs.column("AccountStatusType")
	if !ok {
		panic("transform: connection_events has no column for AccountStatusType")
	}
	l.typ = typ
	return l
}

// Usage turns a device's usage history records, fetched up to asOf, into
// usage_daily rows. Every record becomes exactly one row or one reject, in
// order: a record that failed to decode (Err set), has no timestamp or one
// outside the plausible window (Plausible), or carries a value that does
// not fit its column (a negative count among them) is rejected with the
// reason and its raw JSON; the others still make rows. A zero asOf sets no
// upper bound.
func (t *Transformer) Usage(dev extract.DeviceID, recs []extract.UsageRecord, asOf time.Time) ([]Row, []Reject) {
	return records(schema.StreamUsage, dev, recs, t.usage.attrs.width,
		func(r *extract.UsageRecord) (json.RawMessage, string) {
			switch {
			case r.Err != nil:
				return r.Raw, r.Err.Error()
			case r.Timestamp.IsZero():
				return r.Raw, "timestamp: missing"
			}
			if why := implausible(r.Timestamp, asOf); why != "" {
				return r.Raw, "timestamp: " + why
			}
			return r.Raw, ""
		}, t.usageRow)
}

// EarliestPlausible is the first instant a record may carry: the API keeps
// a year of history, and a date before this one is a placeholder or a
// corrupt value, not an instant of use.
var EarliestPlausible = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// plausibleSlack is how far past the end of what was asked for a record
// may lie: clocks and day boundaries differ, a year does not.
const plausibleSlack = 24 * time.Hour

// implausible says why an instant cannot be one of a record fetched up to
// asOf, or "". One rule for both ends: not before EarliestPlausible, not
// more than a day after asOf (no upper bound when asOf is zero).
func implausible(at, asOf time.Time) string {
	switch {
	case at.Before(EarliestPlausible):
		return fmt.Sprintf("%s is before %s", at.UTC().Format(time.RFC3339), EarliestPlausible.Format(time.DateOnly))
	case !asOf.IsZero() && at.After(asOf.Add(plausibleSlack)):
		return fmt.Sprintf("%s is more than a day after %s, the end of the range asked for", at.UTC().Format(time.RFC3339), asOf.UTC().Format(time.RFC3339))
	}
	return ""
}

// records is the loop Usage and Events share: one row or one reject per
// record, rows' values from one slab, unknown attributes from one slice.
// check says why a decoded record cannot be a row; fill builds the row.
func records[R any](stream string, dev extract.DeviceID, recs []R, width int,
	check func(r *R) (raw json.RawMessage, reason string),
	fill func(vals []any, r *R, kind, id any, unknown []extract.Attribute, seen *keyCache) ([]extract.Attribute, string),
) ([]Row, []Reject) {
	kind, id, why := identity(dev)
	dev = normalDevice(dev)
	if why != "" {
		rejects := make([]Reject, len(recs))
		for i := range recs {
			raw, _ := check(&recs[i])
			rejects[i] = Reject{Stream: stream, Device: dev, Reason: why, Raw: bytes.Clone(raw)}
		}
		return nil, rejects
	}
	rows := make([]Row, 0, len(recs))
	slab := newRowSlab(len(recs), width)
	var (
		unknown []extract.Attribute
		rejects []Reject
		seen    keyCache
	)
	for i := range recs {
		r := &recs[i]
		raw, reason := check(r)
		if reason == "" {
			vals := slab.next()
			start := len(unknown)
			if unknown, reason = fill(vals, r, kind, id, unknown, &seen); reason == "" {
				row := Row{Values: vals}
				if len(unknown) > start {
					row.Unknown = unknown[start:len(unknown):len(unknown)]
					for j := range row.Unknown {
						u := &row.Unknown[j]
						u.Key, u.Value = seen.arena.clone(u.Key), seen.arena.clone(u.Value)
					}
				}
				rows = append(rows, row)
				continue
			}
			slab.drop()
		}
		// Raw points into the response page: keep a copy, not the page.
		rejects = append(rejects, Reject{Stream: stream, Device: dev, Reason: reason, Raw: bytes.Clone(raw)})
	}
	return rows, rejects
}

func (t *Transformer) usageRow(vals []any, r *extract.UsageRecord, kind, id any, unknown []extract.Attribute, seen *keyCache) ([]extract.Attribute, string) {
	l := &t.usage
	vals[l.kind] = kind
	vals[l.id] = id
	y, m, d := r.Timestamp.UTC().Date()
	vals[l.date] = time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	if r.BytesUsed.Valid {
		if r.BytesUsed.V < 0 {
			return unknown, fmt.Sprintf("bytesUsed: value %d %v", r.BytesUsed.V, errNegative)
		}
		vals[l.bytes] = r.BytesUsed.V
	}
	if r.SMSUsed.Valid {
		v := r.SMSUsed.V
		if v < 0 {
			return unknown, fmt.Sprintf("smsUsed: value %d %v", v, errNegative)
		}
		if v > 1<<31-1 {
			return unknown, fmt.Sprintf("smsUsed: value %d %v", v, errInt32Range)
		}
		vals[l.sms] = int32(v)
	}
	if !isNullText(r.Source) {
		vals[l.source] = seen.arena.clone(r.Source)
	}
	return l.attrs.flatten(vals, r.ExtendedAttributes, unknown, seen)
}

// Events turns a device's connection history records, fetched up to asOf,
// into connection_events rows, one row or one reject per record, as Usage
// does (the same plausible window for occurredAt).
// The event column comes from the Event attribute, or AccountStatusType
// when Event is missing or NULL; a record with neither is rejected, as is
// one without occurredAt. account_session_id may be NULL.
func (t *Transformer) Events(dev extract.DeviceID, recs []extract.ConnectionEvent, asOf time.Time) ([]Row, []Reject) {
	return records(schema.StreamConnections, dev, recs, t.events.attrs.width,
		func(r *extract.ConnectionEvent) (json.RawMessage, string) {
			switch {
			case r.Err != nil:
				return r.Raw, r.Err.Error()
			case r.OccurredAt.IsZero():
				return r.Raw, "occurredAt: missing"
			}
			if why := implausible(r.OccurredAt, asOf); why != "" {
				return r.Raw, "occurredAt: " + why
			}
			return r.Raw, ""
		}, t.eventRow)
}

func (t *Transformer) eventRow(vals []any, r *extract.ConnectionEvent, kind, id any, unknown []extract.Attribute, seen *keyCache) ([]extract.Attribute, string) {
	l := &t.events
	vals[l.kind] = kind
	vals[l.id] = id
	vals[l.at] = r.OccurredAt.UTC()
	start := len(unknown)
	unknown, reason := l.attrs.flatten(vals, r.Attributes, unknown, seen)
	if reason != "" {
		return unknown, reason
	}
	if vals[l.event] == nil {
		vals[l.event] = vals[l.typ]
	}
	if vals[l.event] == nil {
		return unknown[:start], "no Event or AccountStatusType attribute"
	}
	return unknown, ""
}
