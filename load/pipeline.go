package load

import (
	"context"
	"encoding/json"
	"time"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/schema"
	"github.com/thingsync/thingsync/transform"
)

// Pipeline turns what the walker fetches into rows and hands them to the
// writer: it is the extract.Sink of a run.
type Pipeline struct {
	wh *Warehouse
	wr *Writer
	tf *transform.Transformer
}

// NewPipeline connects a run's writer to the walker.
func NewPipeline(wh *Warehouse, wr *Writer, tf *transform.Transformer) *Pipeline {
	return &Pipeline{wh: wh, wr: wr, tf: tf}
}

// States reads the checkpoints of a stream for a chunk of listed devices.
func (p *Pipeline) States(ctx context.Context, stream string, devices []extract.DeviceID) (map[extract.DeviceID]extract.State, error) {
	return p.wh.DeviceStates(ctx, stream, devices)
}

// Devices stores a page of the device list.
func (p *Pipeline) Devices(ctx context.Context, page []extract.Device, seenAt time.Time) error {
	rows := make([]transform.Row, 0, len(page))
	for _, d := range page {
		row, err := p.tf.Device(d, seenAt)
		if err != nil {
			continue // a device without a usable identifier cannot be stored or fetched
		}
		rows = append(rows, row)
	}
	return p.wr.Submit(ctx, Unit{Table: schema.Devices, Rows: rows})
}

// Batch stores one device-window with the checkpoint it completes.
func (p *Pipeline) Batch(ctx context.Context, b extract.Batch) error {
	u := Unit{Checkpoint: &CheckpointUpdate{
		Stream: b.Stream, Device: b.Device,
		SettledUntil: b.Window.Settle, FetchedUntil: b.Window.To, FetchedFrom: b.Window.From,
		Retire: b.Retire, Idle: b.Idle, RecordsAt: b.RecordsAt, Sessions: b.Sessions, OpenSince: b.OpenSince, CycleEnd: b.CycleEnd,
	}}
	if b.Idle {
		return p.wr.Submit(ctx, u)
	}
	if !b.Window.From.IsZero() && !b.Window.From.Before(b.FetchedUntil) {
		// Every committed row of the device-stream lies before
		// FetchedUntil (rows commit with the checkpoint that records it):
		// from the next whole UTC day on, this window's keys are new.
		u.FreshFrom, u.FreshTo = ceilDay(b.Window.From), b.Window.To
	}
	switch b.Stream {
	case schema.StreamUsage:
		u.Table = schema.UsageDaily
		u.Rows, u.Rejects = p.tf.Usage(b.Device, b.Usage, b.Window.To)
	case schema.StreamConnections:
		u.Table = schema.ConnectionEvents
		u.Rows, u.Rejects = p.tf.Events(b.Device, b.Events, b.Window.To)
	case schema.StreamRated:
		if b.Rated == nil {
			break
		}
		u.Table = schema.RatedUsage
		row, err := p.tf.Rated(b.Device, *b.Rated, b.Window.To)
		if err != nil {
			raw, _ := json.Marshal(b.Rated)
			u.Rejects = []transform.Reject{{Stream: b.Stream, Device: b.Device, Reason: err.Error(), Raw: raw}}
			break
		}
		u.Rows = []transform.Row{row}
	}
	return p.wr.Submit(ctx, u)
}

// Visited records that the walk reached a device.
func (p *Pipeline) Visited(ctx context.Context, dev extract.DeviceID) error {
	return p.wr.Submit(ctx, Unit{Visited: []extract.DeviceID{dev}})
}

// Failed records a device's failure on a stream; its checkpoint stays.
func (p *Pipeline) Failed(ctx context.Context, stream string, dev extract.DeviceID, err error) error {
	return p.wr.Submit(ctx, Unit{Checkpoint: &CheckpointUpdate{Stream: stream, Device: dev, Err: err.Error()}})
}

// ceilDay is the first UTC midnight at or after t: a key's date can be
// shared with rows of an earlier window only before it.
func ceilDay(t time.Time) time.Time {
	d := schema.Day(t)
	if d.Before(t) {
		d = d.AddDate(0, 0, 1)
	}
	return d
}
