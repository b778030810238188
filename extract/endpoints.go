package extract

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unsafe"
)

// DevicePage is one answer of the device list.
type DevicePage struct {
	Devices []Device
	HasMore bool
	// LargestDeviceID is the paging cursor for the next page: the largest
	// DeviceId extended attribute on this page (-1 when none carries one).
	LargestDeviceID int64
}

// DevicePage fetches the device page after largestDeviceIDSeen (-1 for the
// first page).
func (c *Client) DevicePage(ctx context.Context, largestDeviceIDSeen int64) (DevicePage, error) {
	body := map[string]any{"accountName": c.cfg.AccountName}
	if largestDeviceIDSeen >= 0 {
		body["largestDeviceIdSeen"] = largestDeviceIDSeen
	}
	var out struct {
		HasMoreData bool     `json:"hasMoreData"`
		Devices     []Device `json:"devices"`
	}
	status, err := c.callStatus(ctx, "devices", http.MethodPost, "/api/m2m/v1/devices/actions/list", body, &out, callOpts{})
	if err != nil {
		return DevicePage{}, err
	}
	p := DevicePage{Devices: out.Devices, HasMore: out.HasMoreData || status == http.StatusAccepted, LargestDeviceID: -1}
	for _, d := range out.Devices {
		p.LargestDeviceID = max(p.LargestDeviceID, d.Number())
	}
	return p, nil
}

// Number is the device's number in the account's list (its DeviceId
// attribute), by which the list is paged; -1 when it has none.
func (d Device) Number() int64 {
	for _, a := range d.ExtendedAttributes {
		if a.Key != "DeviceId" {
			continue
		}
		if v, ok, err := ParseInt(a.Value); err == nil && ok {
			return v
		}
	}
	return -1
}

// Devices walks every device page and hands each to fn, with whether more
// pages follow.
func (c *Client) Devices(ctx context.Context, fn func(page []Device, more bool) error) error {
	return c.DevicesAfter(ctx, -1, fn)
}

// DevicesAfter is Devices from the first device whose number (the
// DeviceId the list is paged by) is above after; -1: from the start.
func (c *Client) DevicesAfter(ctx context.Context, after int64, fn func(page []Device, more bool) error) error {
	cursor := after
	for {
		page, err := c.DevicePage(ctx, cursor)
		if err != nil {
			return fmt.Errorf("device page after %d: %w", cursor, err)
		}
		if err := fn(page.Devices, page.HasMore); err != nil {
			if errors.Is(err, ErrListRepeats) {
				return fmt.Errorf("device page after %d: %w", cursor, err)
			}
			return err
		}
		if !page.HasMore {
			return nil
		}
		if page.LargestDeviceID <= cursor {
			return fmt.Errorf("device page after %d: %w", cursor, ErrNoProgress)
		}
		cursor = page.LargestDeviceID
	}
}

func apiTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// UsagePage is one answer of the usage history.
type UsagePage struct {
	Records []UsageRecord
	HasMore bool
	// Bytes is about what the records hold in memory: the answer they
	// point into, their structs and their attribute slices.
	Bytes int
}

// UsagePage fetches one page of a device's usage history.
func (c *Client) UsagePage(ctx context.Context, id DeviceID, earliest, latest time.Time) (UsagePage, error) {
	body := map[string]any{"deviceId": id, "earliest": apiTime(earliest), "latest": apiTime(latest)}
	var out usagePageWire
	status, err := c.callStatus(ctx, "usage", http.MethodPost, "/api/m2m/v1/devices/usage/actions/list", body, &out, callOpts{rangeCall: true})
	if err != nil {
		return UsagePage{}, refusedRange(err)
	}
	return UsagePage{Records: out.UsageHistory, HasMore: out.HasMoreData || status == http.StatusAccepted, Bytes: out.bytes}, nil
}

// ConnectionPage is one answer of the connection history.
type ConnectionPage struct {
	Events  []ConnectionEvent
	HasMore bool
	Bytes   int // as UsagePage.Bytes
}

// ConnectionPage fetches one page of a device's connection history.
func (c *Client) ConnectionPage(ctx context.Context, id DeviceID, earliest, latest time.Time) (ConnectionPage, error) {
	body := map[string]any{"deviceId": id, "earliest": apiTime(earliest), "latest": apiTime(latest)}
	var out connectionPageWire
	status, err := c.callStatus(ctx, "connections", http.MethodPost, "/api/m2m/v1/devices/connections/actions/listHistory", body, &out, callOpts{rangeCall: true})
	if err != nil {
		return ConnectionPage{}, refusedRange(err)
	}
	return ConnectionPage{Events: out.ConnectionHistory, HasMore: out.HasMoreData || status == http.StatusAccepted, Bytes: out.bytes}, nil
}

type usagePageWire struct {
	HasMoreData  bool          `json:"hasMoreData"`
	UsageHistory []UsageRecord `json:"usageHistory"`
	bytes        int
}

func (p *usagePageWire) decodeBody(b []byte) error {
	p.bytes = len(b)
	if recs, more, ok := decodeUsagePage(b); ok {
		p.UsageHistory, p.HasMoreData = recs, more
	} else if err := json.Unmarshal(b, p); err != nil {
		return err
	}
	p.bytes = finishPage(p.UsageHistory, len(b))
	return nil
}

// MaxRecordBytes is the largest history record loaded: a connection event
// is about 2 KB, a usage record 300 bytes, one with a dozen odd keys of
// kilobytes each (escaped six times over) some 100 KB. A larger one is
// rejected with its reason (and a summary of it as its raw record): values
// of megabytes, under the answer cap, would make DuckDB's commit fail for
// want of memory and stop the whole run (docs/design.md).
const MaxRecordBytes = 1 << 20

// historyRecord is what finishPage needs of a decoded history record.
type historyRecord[R any] interface {
	*R
	raw() []byte
	attrs() []Attribute
	// tooLarge replaces the record by its summary, rejected with the reason.
	tooLarge()
	detach()
}

// finishPage rejects a page's records over MaxRecordBytes and, when there
// was one, copies the others out of the answer (answer bytes long) so that
// it can be freed. It returns about what the records hold in memory: the
// answer they point into, or their copies, plus their structs and
// attribute slices.
func finishPage[R any, P historyRecord[R]](recs []R, answer int) int {
	held := answer
	if slices.ContainsFunc(recs, func(r R) bool { return len(P(&r).raw()) > MaxRecordBytes }) {
		held = 0
		for i := range recs {
			r := P(&recs[i])
			if len(r.raw()) > MaxRecordBytes {
				r.tooLarge()
			} else {
				r.detach()
			}
			held += len(r.raw())
		}
	}
	var zero R
	for i := range recs {
		held += int(unsafe.Sizeof(zero)) + cap(P(&recs[i]).attrs())*int(unsafe.Sizeof(Attribute{}))
	}
	return held
}

func (r *UsageRecord) raw() []byte            { return r.Raw }
func (r *UsageRecord) attrs() []Attribute     { return r.ExtendedAttributes }
func (e *ConnectionEvent) raw() []byte        { return e.Raw }
func (e *ConnectionEvent) attrs() []Attribute { return e.Attributes }

func (r *UsageRecord) tooLarge() {
	*r = UsageRecord{Timestamp: r.Timestamp, TimestampText: strings.Clone(r.TimestampText), Raw: tooLargeRaw(r.Raw), Err: tooLargeErr(len(r.Raw))}
}

func (e *ConnectionEvent) tooLarge() {
	*e = ConnectionEvent{OccurredAt: e.OccurredAt, OccurredAtText: strings.Clone(e.OccurredAtText), Raw: tooLargeRaw(e.Raw), Err: tooLargeErr(len(e.Raw))}
}

func tooLargeErr(n int) error {
	return fmt.Errorf("record of %d bytes is larger than %d MiB, the most a record may be", n, MaxRecordBytes>>20)
}

// tooLargeRaw stands for an oversized record in rejected_records: valid
// JSON with its size, digest (records differ where their first bytes do
// not) and first bytes.
func tooLargeRaw(raw []byte) json.RawMessage {
	head := raw[:min(len(raw), 256)]
	sum := sha256.Sum256(raw)
	b, _ := json.Marshal(struct {
		Truncated bool   `json:"truncated"`
		Bytes     int    `json:"bytes"`
		SHA256    string `json:"sha256"`
		Head      string `json:"head"`
	}{true, len(raw), hex.EncodeToString(sum[:]), string(head)})
	return b
}

// detach copies what the record holds out of the answer it was decoded
// from, so that the answer can be freed.
func (r *UsageRecord) detach() {
	r.Raw = bytes.Clone(r.Raw)
	r.TimestampText, r.Source = strings.Clone(r.TimestampText), strings.Clone(r.Source)
	r.ExtendedAttributes = detachAttrs(r.ExtendedAttributes)
}

func (e *ConnectionEvent) detach() {
	e.Raw = bytes.Clone(e.Raw)
	e.OccurredAtText = strings.Clone(e.OccurredAtText)
	e.Attributes = detachAttrs(e.Attributes)
}

func detachAttrs(attrs []Attribute) []Attribute {
	out := make([]Attribute, len(attrs))
	for i, a := range attrs {
		out[i] = Attribute{Key: strings.Clone(a.Key), Value: strings.Clone(a.Value), Null: a.Null}
	}
	return out
}

type connectionPageWire struct {
	HasMoreData       bool              `json:"hasMoreData"`
	ConnectionHistory []ConnectionEvent `json:"connectionHistory"`
	bytes             int
}

// decodeBody reads the page with the one-pass scanner, falling back to
// encoding/json for shapes it does not take.
func (p *connectionPageWire) decodeBody(b []byte) error {
	p.bytes = len(b)
	if evs, more, ok := decodeConnectionPage(b); ok {
		p.ConnectionHistory, p.HasMoreData = evs, more
	} else if err := json.Unmarshal(b, p); err != nil {
		return err
	}
	p.bytes = finishPage(p.ConnectionHistory, len(b))
	return nil
}

// pager follows the history endpoints' paging: the next request starts at
// the last record's time, so records at that instant come back and are
// dropped when already seen (compared as sent: several connection events
// can share one second).
type pager struct {
	cursor   time.Time
	boundary map[string]bool
}

// keep tells whether a record of the current page is new.
func (p *pager) keep(at time.Time, raw []byte) bool {
	return !(at.Equal(p.cursor) && p.boundary[string(raw)])
}

// advance moves the cursor to the page's last parseable time.
func (p *pager) advance(times []time.Time, raws [][]byte) error {
	next := time.Time{}
	for i := len(times) - 1; i >= 0; i-- {
		if !times[i].IsZero() {
			next = times[i]
			break
		}
	}
	if next.IsZero() || !next.After(p.cursor) {
		return fmt.Errorf("%w: page of %d records ends at %s, cursor %s", ErrNoProgress, len(times), next.Format(time.RFC3339), p.cursor.Format(time.RFC3339))
	}
	p.cursor = next
	p.boundary = map[string]bool{}
	for i, t := range times {
		if t.Equal(next) {
			p.boundary[string(bytes.TrimSpace(raws[i]))] = true
		}
	}
	return nil
}

// Paging limits. A window may take at most max(minPages, its days, up to
// pageDays, × the stream's records a day / 500) pages: far more than any
// device needs (usage is one record a day; 25,000 connection events a day
// is one every 3.5 s), so a history that keeps answering hasMoreData with
// records that stay inside the window fails the window instead of running
// on. A wider window does not get a higher ceiling: the walker halves one
// that passes it down to pageDays (Walk.stream), so a history that never
// ends costs a ceiling of pages per halving, not a year of pages.
const (
	minPages          = 100
	pageDays          = 3
	usagePerDay       = 24
	connectionsPerDay = 25_000
)

// maxPages is the page ceiling of a window [earliest, latest].
func maxPages(earliest, latest time.Time, perDay int) int {
	days := min(math.Ceil(latest.Sub(earliest).Hours()/24), pageDays)
	return max(minPages, int(math.Ceil(days*float64(perDay)/float64(pageSize))))
}

// pageSize is the most records a history page holds.
const pageSize = 500

// UsageHistory fetches every page of a device's usage in [earliest, latest].
func (c *Client) UsageHistory(ctx context.Context, id DeviceID, earliest, latest time.Time) ([]UsageRecord, error) {
	recs, err := history(earliest, latest, maxPages(earliest, latest, usagePerDay), c.cfg.MaxBodyBytes, func(from time.Time) ([]UsageRecord, bool, int, error) {
		p, err := c.UsagePage(ctx, id, from, latest)
		return p.Records, p.HasMore, p.Bytes, err
	}, func(r UsageRecord) (time.Time, []byte) { return r.Timestamp, r.Raw },
		func(r *UsageRecord, why string) { r.Err = errors.New("timestamp: " + why) })
	if pagingError(err) {
		err = fmt.Errorf("usage of %s: %w", id, err)
	}
	return recs, err
}

// ConnectionHistory fetches every page of a device's connection events in
// [earliest, latest].
func (c *Client) ConnectionHistory(ctx context.Context, id DeviceID, earliest, latest time.Time) ([]ConnectionEvent, error) {
	evs, err := history(earliest, latest, maxPages(earliest, latest, connectionsPerDay), c.cfg.MaxBodyBytes, func(from time.Time) ([]ConnectionEvent, bool, int, error) {
		p, err := c.ConnectionPage(ctx, id, from, latest)
		return p.Events, p.HasMore, p.Bytes, err
	}, func(e ConnectionEvent) (time.Time, []byte) { return e.OccurredAt, e.Raw },
		func(e *ConnectionEvent, why string) { e.Err = errors.New("occurredAt: " + why) })
	if pagingError(err) {
		err = fmt.Errorf("connections of %s: %w", id, err)
	}
	return evs, err
}

// pagingError tells the errors of the paging itself, which do not say
// which device they are about.
func pagingError(err error) bool {
	var big *TooLargeError
	return errors.Is(err, ErrNoProgress) || errors.Is(err, ErrTooManyPages) || (errors.As(err, &big) && big.Window)
}

// history is the paging loop of both history endpoints: fetch a page from
// the cursor, keep what is new, move the cursor to the last record's time.
// It ends when a page says there is no more or holds a record after latest
// (the API answers none there: nothing past it is asked for, and reject
// marks each such record, for the loader to keep aside with the reason),
// and fails when the window takes more than maxPages pages or its records
// more than maxBytes.
func history[R any](earliest, latest time.Time, maxPages int, maxBytes int64, page func(from time.Time) ([]R, bool, int, error),
	at func(R) (time.Time, []byte), reject func(r *R, why string)) ([]R, error) {
	p := pager{cursor: earliest}
	var (
		out   []R
		held  int64
		pages int
	)
	for {
		if pages++; pages > maxPages {
			return nil, fmt.Errorf("%w: still more after %d pages, the most a window of %s may take (the API keeps answering hasMoreData); cursor %s",
				ErrTooManyPages, maxPages, latest.Sub(earliest).Round(time.Second), p.cursor.Format(time.RFC3339))
		}
		recs, more, size, err := page(p.cursor)
		if err != nil {
			return nil, err
		}
		if held += int64(size); held > maxBytes {
			return nil, &TooLargeError{Limit: maxBytes, Window: true}
		}
		times := make([]time.Time, len(recs))
		raws := make([][]byte, len(recs))
		past := false
		for i, r := range recs {
			times[i], raws[i] = at(r)
			if times[i].After(latest) {
				past = true
			}
		}
		if out == nil && !more && !past {
			// One page, the usual answer: nothing to drop (only a later
			// page repeats records) and nowhere to move on to.
			return recs, nil
		}
		for i, r := range recs {
			if times[i].After(latest) {
				reject(&r, fmt.Sprintf("%s is after %s, the latest asked for", times[i].Format(time.RFC3339), latest.UTC().Format(time.RFC3339)))
				out = append(out, r)
			} else if p.keep(times[i], bytes.TrimSpace(raws[i])) {
				out = append(out, r)
			}
		}
		if !more || past {
			return out, nil
		}
		if err := p.advance(times, raws); err != nil {
			return nil, err
		}
	}
}

// RatedUsage fetches a device's rated usage for its current billing cycle.
func (c *Client) RatedUsage(ctx context.Context, id DeviceID) (RatedUsage, error) {
	var out struct {
		DeviceInformation *RatedUsage `json:"deviceInformation"`
	}
	if err := c.call(ctx, "rated", http.MethodPost, "/api/m2m/v1/devices/usage/actions/ratedusage", map[string]any{"deviceId": id}, &out, callOpts{}); err != nil {
		return RatedUsage{}, err
	}
	if out.DeviceInformation == nil {
		return RatedUsage{}, errors.New("rated usage: answer carries no deviceInformation")
	}
	return *out.DeviceInformation, nil
}

// MaxAggregateDevices is the most devices one promo aggregate usage
// request may carry (the API answers INPUT_INVALID.NumberofDevices past it).
const MaxAggregateDevices = 200

// AggregateService is the callback service that carries promo aggregate
// usage: the vendor does not name it, DeviceUsage is the likely one.
const AggregateService = "DeviceUsage"

// RequestAggregateUsage asks for the promo aggregate usage of up to
// MaxAggregateDevices ICCIDs over [start, end); the data arrives later by
// callback.
func (c *Client) RequestAggregateUsage(ctx context.Context, ids []DeviceID, start, end time.Time) (string, error) {
	if len(ids) == 0 || len(ids) > MaxAggregateDevices {
		return "", fmt.Errorf("aggregate usage: %d devices, want 1 to %d", len(ids), MaxAggregateDevices)
	}
	body := map[string]any{"accountName": c.cfg.AccountName, "deviceIds": ids, "startTime": apiTime(start), "endTime": apiTime(end)}
	var out struct {
		RequestID Text `json:"requestId"`
	}
	if err := c.call(ctx, "aggregate", http.MethodPost, "/api/m2m/v1/devices/usage/actions/promoaggregateusage", body, &out, callOpts{}); err != nil {
		return "", err
	}
	if out.RequestID == "" {
		return "", errors.New("aggregate usage: answer carries no requestId")
	}
	return string(out.RequestID), nil
}

// Callback is a registered callback listener.
type Callback struct {
	AccountName string `json:"accountName"`
	Name        string `json:"name"`
	URL         string `json:"url"`
}

// RegisterCallback registers the listener URL for a callback service.
func (c *Client) RegisterCallback(ctx context.Context, service, callbackURL, username, password string) error {
	body := map[string]string{"name": service, "url": callbackURL, "username": username, "password": password}
	return c.call(ctx, "callbacks", http.MethodPost, "/api/m2m/v1/callbacks/"+url.PathEscape(c.cfg.AccountName), body, nil, callOpts{})
}

// ListCallbacks lists the account's registered callback listeners.
func (c *Client) ListCallbacks(ctx context.Context) ([]Callback, error) {
	var out []Callback
	err := c.call(ctx, "callbacks", http.MethodGet, "/api/m2m/v1/callbacks/"+url.PathEscape(c.cfg.AccountName), nil, &out, callOpts{})
	return out, err
}
