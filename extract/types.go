package extract

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DeviceID is one identifier of a device as the API sends it. Kind is
// lower-cased on decoding: the API sends "ICCID", "iccId" and "iccid" alike.
type DeviceID struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
}

func (d *DeviceID) UnmarshalJSON(b []byte) error {
	var raw struct {
		Kind Text `json:"kind"`
		ID   Text `json:"id"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	d.Kind = strings.ToLower(strings.TrimSpace(string(raw.Kind)))
	d.ID = strings.TrimSpace(string(raw.ID))
	return nil
}

func (d DeviceID) String() string { return d.Kind + ":" + d.ID }

// Attribute is one entry of the API's key/value arrays (extendedAttributes,
// connectionEventAttributes). Values arrive as strings, numbers, booleans or
// null; Value holds them as text, Null marks an explicit null.
type Attribute struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	Null  bool   `json:"-"`
}

func (a *Attribute) UnmarshalJSON(b []byte) error {
	var raw struct {
		Key   Text            `json:"key"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	a.Key = string(raw.Key)
	var v Text
	if err := v.UnmarshalJSON(raw.Value); err != nil {
		return fmt.Errorf("attribute %q: %w", a.Key, err)
	}
	a.Value = string(v)
	a.Null = len(raw.Value) == 0 || bytes.Equal(bytes.TrimSpace(raw.Value), []byte("null"))
	return nil
}

// Text decodes a JSON string, number, boolean or null into text: the API
// sends numbers as strings and, in places, strings as numbers.
type Text string

func (t *Text) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || bytes.Equal(b, []byte("null")):
		*t = ""
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*t = Text(s)
	case b[0] == '{' || b[0] == '[':
		return fmt.Errorf("want a scalar, got %.20s", b)
	default:
		*t = Text(b)
	}
	return nil
}

// Int is an integer that may arrive as a JSON number or a numeric string.
// Valid is false for null, "" and "null".
type Int struct {
	V     int64
	Valid bool
}

func (n *Int) UnmarshalJSON(b []byte) error {
	var t Text
	if err := t.UnmarshalJSON(b); err != nil {
		return err
	}
	v, ok, err := ParseInt(string(t))
	if err != nil {
		return err
	}
	*n = Int{V: v, Valid: ok}
	return nil
}

// ParseInt reads an integer the way the API writes one: "123", "123.0",
// "1e3"; "", "null" and "NULL" are absent (ok false) and not an error.
func ParseInt(s string) (v int64, ok bool, err error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "null") {
		return 0, false, nil
	}
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v, true, nil
	}
	f, ferr := strconv.ParseFloat(s, 64)
	if ferr != nil || f != float64(int64(f)) || f > 9.2e18 || f < -9.2e18 {
		return 0, false, fmt.Errorf("not an integer: %q", s)
	}
	return int64(f), true, nil
}

// Float is a number that may arrive as a JSON number or a numeric string.
type Float struct {
	V     float64
	Valid bool
}

func (n *Float) UnmarshalJSON(b []byte) error {
	var t Text
	if err := t.UnmarshalJSON(b); err != nil {
		return err
	}
	s := strings.TrimSpace(string(t))
	if s == "" || strings.EqualFold(s, "null") {
		*n = Float{}
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("not a number: %q", s)
	}
	*n = Float{V: f, Valid: true}
	return nil
}

// timeLayouts are the formats seen in the API's pages and payloads (listed
// in docs/design.md). Zone-less forms are UTC.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T 15:04:05Z07:00",
	"2006-01-02T 15:04:05",
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05.999999999",
	"01/02/2006 15:04:05",
	"01/02/2006",
	"2006-01-02",
}

// ParseTime parses every timestamp format the API is known to send and
// returns the instant in UTC; a value without a zone is UTC.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, fmt.Errorf("empty timestamp")
	}
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			if t.Year() < 1970 {
				// Zero dates ("0001-01-01") stand for "no value", not an instant.
				return time.Time{}, fmt.Errorf("implausible timestamp %q", s)
			}
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("unrecognised timestamp %q", s)
}

// Device is one entry of the device list.
type Device struct {
	AccountName         string        `json:"accountName"`
	DeviceIDs           []DeviceID    `json:"deviceIds"`
	CarrierInformations []CarrierInfo `json:"carrierInformations"`
	Connected           bool          `json:"connected"`
	CreatedAt           string        `json:"createdAt"`
	ExtendedAttributes  []Attribute   `json:"extendedAttributes"`
	GroupNames          []string      `json:"groupNames"`
	IPAddress           string        `json:"ipAddress"`
	LastActivationDate  string        `json:"lastActivationDate"`
	LastConnectionDate  string        `json:"lastConnectionDate"`
	BillingCycleEndDate string        `json:"billingCycleEndDate"`
}

// CarrierInfo is one entry of a device's carrierInformations.
type CarrierInfo struct {
	CarrierName string `json:"carrierName"`
	ServicePlan string `json:"servicePlan"`
	State       string `json:"state"`
}

// UsageRecord is one day of a device's usage history. Record-level problems
// (a bad timestamp, a non-numeric count) do not fail the page: Err says what
// is wrong and Raw keeps the record as sent, so the loader can reject it alone.
type UsageRecord struct {
	Timestamp          time.Time // UTC; zero when Err is set
	TimestampText      string    // as sent; the next page starts here
	BytesUsed          Int
	SMSUsed            Int
	Source             string
	ExtendedAttributes []Attribute
	Raw                json.RawMessage
	Err                error
}

func (r *UsageRecord) UnmarshalJSON(b []byte) error {
	raw := append(json.RawMessage(nil), b...)
	*r = UsageRecord{Raw: raw}
	if fastUsage(raw, r) {
		return nil
	}
	*r = UsageRecord{Raw: raw}
	return r.slowDecode(raw)
}

// slowDecode is the general decoder, for shapes fastUsage does not take.
func (r *UsageRecord) slowDecode(b []byte) error {
	var raw struct {
		BytesUsed          *Text       `json:"bytesUsed"`
		SMSUsed            *Text       `json:"smsUsed"`
		Source             Text        `json:"source"`
		Timestamp          Text        `json:"timestamp"`
		ExtendedAttributes []Attribute `json:"extendedAttributes"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		r.Err = recordError("usage record", err)
		return nil
	}
	r.Source = string(raw.Source)
	r.TimestampText = string(raw.Timestamp)
	r.ExtendedAttributes = raw.ExtendedAttributes
	var bytesUsed, smsUsed string
	if raw.BytesUsed != nil {
		bytesUsed = string(*raw.BytesUsed)
	}
	if raw.SMSUsed != nil {
		smsUsed = string(*raw.SMSUsed)
	}
	r.finish(bytesUsed, smsUsed)
	return nil
}

// finish parses the numbers and the timestamp; the first problem is the
// record's error.
func (r *UsageRecord) finish(bytesUsed, smsUsed string) {
	var err error
	if r.BytesUsed.V, r.BytesUsed.Valid, err = ParseInt(bytesUsed); err != nil {
		r.Err = fmt.Errorf("bytesUsed: %w", err)
	}
	if r.SMSUsed.V, r.SMSUsed.Valid, err = ParseInt(smsUsed); err != nil && r.Err == nil {
		r.Err = fmt.Errorf("smsUsed: %w", err)
	}
	ts, err := ParseTime(r.TimestampText)
	if err != nil && r.Err == nil {
		r.Err = fmt.Errorf("timestamp: %w", err)
	}
	r.Timestamp = ts
}

// ConnectionEvent is one event of a device's connection history.
type ConnectionEvent struct {
	OccurredAt     time.Time // UTC; zero when Err is set
	OccurredAtText string    // as sent, offset included
	Attributes     []Attribute
	Raw            json.RawMessage
	Err            error
}

func (e *ConnectionEvent) UnmarshalJSON(b []byte) error {
	e.Raw = append(json.RawMessage(nil), b...)
	if fastEvent(e.Raw, e) {
		return nil
	}
	return e.slowDecode(e.Raw)
}

// slowDecode is the general decoder, for shapes fastEvent does not take.
func (e *ConnectionEvent) slowDecode(b []byte) error {
	*e = ConnectionEvent{Raw: e.Raw}
	var raw struct {
		Attributes []Attribute `json:"connectionEventAttributes"`
		OccurredAt *Text       `json:"occurredAt"`
		OccuredAt  *Text       `json:"occuredAt"` // the prose's spelling; accept both
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		e.Err = recordError("connection event", err)
		return nil
	}
	e.Attributes = raw.Attributes
	switch {
	case raw.OccurredAt != nil:
		e.OccurredAtText = string(*raw.OccurredAt)
	case raw.OccuredAt != nil:
		e.OccurredAtText = string(*raw.OccuredAt)
	}
	ts, err := ParseTime(e.OccurredAtText)
	if err != nil {
		e.Err = fmt.Errorf("occurredAt: %w", err)
	}
	e.OccurredAt = ts
	return nil
}

// recordError says briefly why a record could not be decoded: it becomes a
// rejected record's reason, where Go type names would only confuse.
func recordError(what string, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return fmt.Errorf("decode %s: want a JSON object, got %s", what, te.Value)
		}
		return fmt.Errorf("decode %s: %s: unexpected %s", what, te.Field, te.Value)
	}
	return fmt.Errorf("decode %s: %v", what, err)
}

// RatedUsage is the deviceInformation of a ratedusage answer.
type RatedUsage struct {
	BillingStartDate string `json:"billingStartDate"`
	BillingEndDate   string `json:"billingEndDate"`
	BillingResetDate string `json:"billingResetDate"`
	DataUsage        Float  `json:"dataUsage"`
	MDN              Text   `json:"mdn"`
	Unit             string `json:"unit"`
}

// AggregateCallback is the body ThingSpace POSTs to the callback listener for
// a promo aggregate usage request: first a "Request Completed Processing"
// notice with an empty deviceResponse, then the data.
type AggregateCallback struct {
	Username             string `json:"username"`
	Password             string `json:"password"`
	RequestID            string `json:"requestId"`
	Comment              string `json:"comment"`
	CallbackCount        Int    `json:"callbackCount"`
	MaxCallbackThreshold Int    `json:"maxCallbackThreshold"`
	DeviceResponse       struct {
		DevicePromoUsageResponse []PromoUsage `json:"devicePromoUsageResponse"`
	} `json:"deviceResponse"`
}

// PromoUsage is one device's aggregate usage inside a callback.
type PromoUsage struct {
	DeviceIdentifierCollection []DeviceID `json:"deviceIdentifierCollection"`
	DataUsage                  Int        `json:"dataUsage"`
	SMSUsage                   Int        `json:"smsUsage"`
	MoSMS                      Int        `json:"moSms"`
	MtSMS                      Int        `json:"mtSms"`
	StartDate                  string     `json:"startDate"`
	EndDate                    string     `json:"endDate"`
}

// identityKinds is the order in which a device's identifiers are tried for
// its warehouse identity.
var identityKinds = [...]string{"iccid", "imei", "meid", "esn", "mdn", "msisdn", "eid"}

// Identity picks the one (kind, id) pair a device is addressed by: the first
// kind it has in the order iccid, imei, meid, esn, mdn, msisdn, eid. ok is
// false when it has none of them.
func Identity(ids []DeviceID) (id DeviceID, ok bool) {
	for _, kind := range identityKinds {
		for _, d := range ids {
			if d.Kind == kind && d.ID != "" {
				return d, true
			}
		}
	}
	return DeviceID{}, false
}

// ID returns the device's identifier of the given kind (lower-case), or "".
func (d Device) ID(kind string) string {
	for _, id := range d.DeviceIDs {
		if id.Kind == kind {
			return id.ID
		}
	}
	return ""
}
