package transform

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/schema"
)

// devicesLayout is where the devices table's columns sit.
type devicesLayout struct {
	width                                          int
	kind, id, account                              int
	idents                                         []identCol
	deviceIDKey                                    string // schema.AttrKey("DeviceId")
	state, carrier, plan, connected, ip, groups    int
	tsID, created, activated, connectedAt, billing int
	lastSeen                                       int
}

func newDevicesLayout(t schema.Table) devicesLayout {
	l := devicesLayout{
		width:       len(t.Columns),
		kind:        mustIndex(t, "device_kind"),
		id:          mustIndex(t, "device_id"),
		account:     mustIndex(t, "account_name"),
		state:       mustIndex(t, "state"),
		carrier:     mustIndex(t, "carrier_name"),
		plan:        mustIndex(t, "service_plan"),
		connected:   mustIndex(t, "connected"),
		ip:          mustIndex(t, "ip_address"),
		groups:      mustIndex(t, "group_names"),
		tsID:        mustIndex(t, "thingspace_device_id"),
		created:     mustIndex(t, "created_at"),
		activated:   mustIndex(t, "last_activation_at"),
		connectedAt: mustIndex(t, "last_connection_at"),
		billing:     mustIndex(t, "billing_cycle_end_at"),
		lastSeen:    mustIndex(t, "last_seen_at"),
	}
	// The identifier kinds of the device list that have a column, named
	// after the kind. Only these are written: a kind is API text and must
	// not be able to fill, say, state.
	for _, k := range []string{"iccid", "imei", "mdn", "msisdn", "meid", "esn", "eid", "imsi"} {
		if i := t.Index(k); i >= 0 {
			l.idents = append(l.idents, identCol{kind: k, col: i})
		}
	}
	// The API's internal device id arrives as the DeviceId extended
	// attribute.
	l.deviceIDKey = schema.AttrKey("DeviceId")
	return l
}

// identCol is the column of one identifier kind.
type identCol struct {
	kind string
	col  int
}

// Device turns an entry of the device list into a devices row, seen at
// seenAt. Its identity is extract.Identity of its identifiers; a device with
// none is an error. Every identifier kind the table has a column for fills
// it (the first of a kind wins, as for the identity); state, carrier and
// plan come from the first carrierInformations entry, state lower-cased.
//
// The dates and the DeviceId attribute are informational, not part of the
// key: one that is empty or cannot be parsed is stored as NULL rather than
// losing the device — the device list is what every other stream walks.
func (t *Transformer) Device(d extract.Device, seenAt time.Time) (Row, error) {
	l := &t.devices
	ids := lowerKinds(d.DeviceIDs)
	ident, ok := extract.Identity(ids)
	if !ok {
		return Row{}, fmt.Errorf("device of account %s: no identifier of kind iccid, imei, meid, esn, mdn, msisdn or eid", quote(d.AccountName))
	}
	vals := make([]any, l.width)
	vals[l.kind] = ident.Kind
	vals[l.id] = ident.ID
	vals[l.account] = text(d.AccountName)
	for _, ic := range l.idents {
		for _, id := range ids {
			if id.Kind == ic.kind && id.ID != "" {
				vals[ic.col] = id.ID
				break
			}
		}
	}
	if len(d.CarrierInformations) > 0 {
		c := d.CarrierInformations[0]
		vals[l.state] = text(strings.ToLower(strings.TrimSpace(c.State)))
		vals[l.carrier] = text(c.CarrierName)
		vals[l.plan] = text(c.ServicePlan)
	}
	vals[l.connected] = d.Connected
	vals[l.ip] = text(d.IPAddress)
	if d.GroupNames != nil {
		vals[l.groups] = slices.Clone(d.GroupNames)
	}
	for _, a := range d.ExtendedAttributes {
		var buf [64]byte
		if string(appendAttrKey(buf[:0], a.Key)) != l.deviceIDKey {
			continue
		}
		// A bad DeviceId is NULL: see the doc comment. The last one wins.
		if v, ok, err := extract.ParseInt(a.Value); err == nil && ok && !a.Null {
			vals[l.tsID] = v
		} else {
			vals[l.tsID] = nil
		}
	}
	vals[l.created] = optionalTime(d.CreatedAt)
	vals[l.activated] = optionalTime(d.LastActivationDate)
	vals[l.connectedAt] = optionalTime(d.LastConnectionDate)
	vals[l.billing] = optionalTime(d.BillingCycleEndDate)
	vals[l.lastSeen] = seenAt.UTC()
	return Row{Values: vals}, nil
}

// lowerKinds returns ids with lower-case kinds; decoded ids already are, so
// it copies only when one is not.
func lowerKinds(ids []extract.DeviceID) []extract.DeviceID {
	for i, id := range ids {
		if k := strings.ToLower(strings.TrimSpace(id.Kind)); k != id.Kind {
			out := slices.Clone(ids)
			for j := i; j < len(out); j++ {
				out[j].Kind = strings.ToLower(strings.TrimSpace(out[j].Kind))
			}
			return out
		}
	}
	return ids
}

// text is a VARCHAR value: NULL for "" and "null".
func text(s string) any {
	if isNullText(s) {
		return nil
	}
	return s
}

// optionalTime is an informational instant: NULL when empty or unparsable
// (see Device).
func optionalTime(s string) any {
	if isNullText(s) {
		return nil
	}
	ts, err := extract.ParseTime(s)
	if err != nil {
		return nil
	}
	return ts
}

// requiredTime is an instant a row's key needs.
func requiredTime(field, s string) (time.Time, error) {
	if isNullText(s) {
		return time.Time{}, fmt.Errorf("%s: missing", field)
	}
	ts, err := extract.ParseTime(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", field, err)
	}
	return ts, nil
}

// ratedLayout is where rated_usage's columns sit.
type ratedLayout struct {
	width                            int
	kind, id, start, end, reset, mdn int
	usage, unit, bytes, fetched      int
}

func newRatedLayout(t schema.Table) ratedLayout {
	return ratedLayout{
		width:   len(t.Columns),
		kind:    mustIndex(t, "device_kind"),
		id:      mustIndex(t, "device_id"),
		start:   mustIndex(t, "billing_start_date"),
		end:     mustIndex(t, "billing_end_date"),
		reset:   mustIndex(t, "billing_reset_date"),
		mdn:     mustIndex(t, "mdn"),
		usage:   mustIndex(t, "data_usage"),
		unit:    mustIndex(t, "unit"),
		bytes:   mustIndex(t, "data_usage_bytes"),
		fetched: mustIndex(t, "fetched_at"),
	}
}

// unitBytes is the decimal factor of a rated usage unit (the rated usage
// page lists KB, MB and GB; the column comment fixes them as decimal).
func unitBytes(unit string) (float64, bool) {
	switch strings.ToUpper(strings.TrimSpace(unit)) {
	case "KB":
		return 1e3, true
	case "MB":
		return 1e6, true
	case "GB":
		return 1e9, true
	}
	return 0, false
}

// Rated turns a rated usage answer for dev, fetched at fetchedAt, into a
// rated_usage row. billing_start_date is part of the key: missing or
// unparsable, it is an error; the end and reset dates are NULL then. unit is
// stored as sent and matched case-insensitively; data_usage_bytes is
// data_usage × 10³/10⁶/10⁹, rounded to the nearest byte. An unknown unit, or
// a non-finite or overflowing usage, is an error. A NULL data usage leaves
// both usage columns NULL, whatever the unit.
func (t *Transformer) Rated(dev extract.DeviceID, r extract.RatedUsage, fetchedAt time.Time) (Row, error) {
	l := &t.rated
	kind, id, why := identity(dev)
	if why != "" {
		return Row{}, errors.New(why)
	}
	start, err := requiredTime("billingStartDate", r.BillingStartDate)
	if err != nil {
		return Row{}, fmt.Errorf("rated usage of %s: %w", dev, err)
	}
	if why := implausible(start, fetchedAt); why != "" {
		return Row{}, fmt.Errorf("rated usage of %s: billingStartDate: %s", dev, why)
	}
	vals := make([]any, l.width)
	vals[l.kind] = kind
	vals[l.id] = id
	vals[l.start] = start
	vals[l.end] = optionalTime(r.BillingEndDate)
	vals[l.reset] = optionalTime(r.BillingResetDate)
	vals[l.mdn] = text(string(r.MDN))
	vals[l.unit] = text(r.Unit)
	if r.DataUsage.Valid {
		v := r.DataUsage.V
		if v < 0 {
			return Row{}, fmt.Errorf("rated usage of %s: dataUsage: value %v %v", dev, v, errNegative)
		}
		factor, ok := unitBytes(r.Unit)
		if !ok {
			return Row{}, fmt.Errorf("rated usage of %s: unknown unit %s (want KB, MB or GB)", dev, quote(r.Unit))
		}
		b := math.Round(v * factor)
		if math.IsNaN(b) || b >= 1<<63 || b < -(1<<63) {
			return Row{}, fmt.Errorf("rated usage of %s: data usage %v %s does not fit in bytes", dev, v, quote(r.Unit))
		}
		vals[l.usage] = v
		vals[l.bytes] = int64(b)
	}
	vals[l.fetched] = fetchedAt.UTC()
	return Row{Values: vals}, nil
}

// aggregateLayout is where aggregate_usage's columns sit.
type aggregateLayout struct {
	width                               int
	kind, id, start, end, data, sms, mo int
	mt, request, received               int
}

func newAggregateLayout(t schema.Table) aggregateLayout {
	return aggregateLayout{
		width:    len(t.Columns),
		kind:     mustIndex(t, "device_kind"),
		id:       mustIndex(t, "device_id"),
		start:    mustIndex(t, "start_time"),
		end:      mustIndex(t, "end_time"),
		data:     mustIndex(t, "data_usage"),
		sms:      mustIndex(t, "sms_usage"),
		mo:       mustIndex(t, "mo_sms"),
		mt:       mustIndex(t, "mt_sms"),
		request:  mustIndex(t, "request_id"),
		received: mustIndex(t, "received_at"),
	}
}

// Aggregate turns one device's entry of an aggregate usage callback into an
// aggregate_usage row. The identity is extract.Identity of its
// deviceIdentifierCollection; none, a missing or bad start or end date, or
// an SMS count outside INTEGER is an error.
func (t *Transformer) Aggregate(requestID string, p extract.PromoUsage, receivedAt time.Time) (Row, error) {
	l := &t.agg
	ident, ok := extract.Identity(lowerKinds(p.DeviceIdentifierCollection))
	if !ok {
		return Row{}, fmt.Errorf("aggregate usage of request %s: no identifier of kind iccid, imei, meid, esn, mdn, msisdn or eid", quote(requestID))
	}
	start, err := requiredTime("startDate", p.StartDate)
	if err != nil {
		return Row{}, fmt.Errorf("aggregate usage of %s: %w", ident, err)
	}
	end, err := requiredTime("endDate", p.EndDate)
	if err != nil {
		return Row{}, fmt.Errorf("aggregate usage of %s: %w", ident, err)
	}
	if why := implausible(start, receivedAt); why != "" {
		return Row{}, fmt.Errorf("aggregate usage of %s: startDate: %s", ident, why)
	}
	// The period may end after the callback (a month asked for while it
	// runs): only its start is held to the day after receipt.
	if why := implausible(end, time.Time{}); why != "" {
		return Row{}, fmt.Errorf("aggregate usage of %s: endDate: %s", ident, why)
	}
	vals := make([]any, l.width)
	vals[l.kind] = ident.Kind
	vals[l.id] = ident.ID
	vals[l.start] = start
	vals[l.end] = end
	if p.DataUsage.Valid {
		if p.DataUsage.V < 0 {
			return Row{}, fmt.Errorf("aggregate usage of %s: dataUsage: value %d %v", ident, p.DataUsage.V, errNegative)
		}
		vals[l.data] = p.DataUsage.V
	}
	for _, c := range []struct {
		col   int
		name  string
		value extract.Int
	}{{l.sms, "smsUsage", p.SMSUsage}, {l.mo, "moSms", p.MoSMS}, {l.mt, "mtSms", p.MtSMS}} {
		if !c.value.Valid {
			continue
		}
		if c.value.V < 0 {
			return Row{}, fmt.Errorf("aggregate usage of %s: %s: value %d %v", ident, c.name, c.value.V, errNegative)
		}
		if c.value.V > 1<<31-1 {
			return Row{}, fmt.Errorf("aggregate usage of %s: %s: value %d %v", ident, c.name, c.value.V, errInt32Range)
		}
		vals[c.col] = int32(c.value.V)
	}
	vals[l.request] = text(requestID)
	vals[l.received] = receivedAt.UTC()
	return Row{Values: vals}, nil
}
