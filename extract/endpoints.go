package extract

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
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
		for _, a := range d.ExtendedAttributes {
			if a.Key != "DeviceId" {
				continue
			}
			if v, ok, err := ParseInt(a.Value); err == nil && ok && v > p.LargestDeviceID {
				p.LargestDeviceID = v
			}
		}
	}
	return p, nil
}

// Devices walks every device page and hands each to fn.
func (c *Client) Devices(ctx context.Context, fn func([]Device) error) error {
	cursor := int64(-1)
	for {
		page, err := c.DevicePage(ctx, cursor)
		if err != nil {
			return fmt.Errorf("device page after %d: %w", cursor, err)
		}
		if err := fn(page.Devices); err != nil {
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
}

// UsagePage fetches one page of a device's usage history.
func (c *Client) UsagePage(ctx context.Context, id DeviceID, earliest, latest time.Time) (UsagePage, error) {
	body := map[string]any{"deviceId": id, "earliest": apiTime(earliest), "latest": apiTime(latest)}
	var out usagePageWire
	status, err := c.callStatus(ctx, "usage", http.MethodPost, "/api/m2m/v1/devices/usage/actions/list", body, &out, callOpts{rangeCall: true})
	if err != nil {
		return UsagePage{}, err
	}
	return UsagePage{Records: out.UsageHistory, HasMore: out.HasMoreData || status == http.StatusAccepted}, nil
}

// ConnectionPage is one answer of the connection history.
type ConnectionPage struct {
	Events  []ConnectionEvent
	HasMore bool
}

// ConnectionPage fetches one page of a device's connection history.
func (c *Client) ConnectionPage(ctx context.Context, id DeviceID, earliest, latest time.Time) (ConnectionPage, error) {
	body := map[string]any{"deviceId": id, "earliest": apiTime(earliest), "latest": apiTime(latest)}
	var out connectionPageWire
	status, err := c.callStatus(ctx, "connections", http.MethodPost, "/api/m2m/v1/devices/connections/actions/listHistory", body, &out, callOpts{rangeCall: true})
	if err != nil {
		return ConnectionPage{}, err
	}
	return ConnectionPage{Events: out.ConnectionHistory, HasMore: out.HasMoreData || status == http.StatusAccepted}, nil
}

type usagePageWire struct {
	HasMoreData  bool          `json:"hasMoreData"`
	UsageHistory []UsageRecord `json:"usageHistory"`
}

func (p *usagePageWire) decodeBody(b []byte) error {
	if recs, more, ok := decodeUsagePage(b); ok {
		p.UsageHistory, p.HasMoreData = recs, more
		return nil
	}
	return json.Unmarshal(b, p)
}

type connectionPageWire struct {
	HasMoreData       bool              `json:"hasMoreData"`
	ConnectionHistory []ConnectionEvent `json:"connectionHistory"`
}

// decodeBody reads the page with the one-pass scanner, falling back to
// encoding/json for shapes it does not take.
func (p *connectionPageWire) decodeBody(b []byte) error {
	if evs, more, ok := decodeConnectionPage(b); ok {
		p.ConnectionHistory, p.HasMoreData = evs, more
		return nil
	}
	return json.Unmarshal(b, p)
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

// UsageHistory fetches every page of a device's usage in [earliest, latest].
func (c *Client) UsageHistory(ctx context.Context, id DeviceID, earliest, latest time.Time) ([]UsageRecord, error) {
	recs, err := history(earliest, func(from time.Time) ([]UsageRecord, bool, error) {
		p, err := c.UsagePage(ctx, id, from, latest)
		return p.Records, p.HasMore, err
	}, func(r UsageRecord) (time.Time, []byte) { return r.Timestamp, r.Raw })
	if errors.Is(err, ErrNoProgress) {
		err = fmt.Errorf("usage of %s: %w", id, err)
	}
	return recs, err
}

// ConnectionHistory fetches every page of a device's connection events in
// [earliest, latest].
func (c *Client) ConnectionHistory(ctx context.Context, id DeviceID, earliest, latest time.Time) ([]ConnectionEvent, error) {
	evs, err := history(earliest, func(from time.Time) ([]ConnectionEvent, bool, error) {
		p, err := c.ConnectionPage(ctx, id, from, latest)
		return p.Events, p.HasMore, err
	}, func(e ConnectionEvent) (time.Time, []byte) { return e.OccurredAt, e.Raw })
	if errors.Is(err, ErrNoProgress) {
		err = fmt.Errorf("connections of %s: %w", id, err)
	}
	return evs, err
}

// history is the paging loop of both history endpoints: fetch a page from
// the cursor, keep what is new, move the cursor to the last record's time.
func history[R any](earliest time.Time, page func(from time.Time) ([]R, bool, error), at func(R) (time.Time, []byte)) ([]R, error) {
	p := pager{cursor: earliest}
	var out []R
	for {
		recs, more, err := page(p.cursor)
		if err != nil {
			return out, err
		}
		if out == nil && !more {
			// One page, the usual answer: nothing to drop (only a later
			// page repeats records) and nowhere to move on to.
			return recs, nil
		}
		times := make([]time.Time, len(recs))
		raws := make([][]byte, len(recs))
		for i, r := range recs {
			times[i], raws[i] = at(r)
			if p.keep(times[i], bytes.TrimSpace(raws[i])) {
				out = append(out, r)
			}
		}
		if !more {
			return out, nil
		}
		if err := p.advance(times, raws); err != nil {
			return out, err
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

// RequestAggregateUsage asks for the promo aggregate usage of up to 200
// ICCIDs over [start, end); the data arrives later by callback.
func (c *Client) RequestAggregateUsage(ctx context.Context, ids []DeviceID, start, end time.Time) (string, error) {
	if len(ids) == 0 || len(ids) > 200 {
		return "", fmt.Errorf("aggregate usage: %d devices, want 1 to 200", len(ids))
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
