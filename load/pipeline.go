package load

import (
	"context"
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

// States reads a stream's checkpoints.
func (p *Pipeline) States(ctx context.Context, stream string) (map[extract.DeviceID]extract.State, error) {
	cps, err := p.wh.Checkpoints(ctx, stream)
	if err != nil {
		return nil, err
	}
	out := make(map[extract.DeviceID]extract.State, len(cps))
	for id, cp := range cps {
		out[id] = extract.State{SettledUntil: cp.SettledUntil, Retired: cp.Retired}
	}
	return out, nil
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
		SettledUntil: b.Window.Settle, FetchedUntil: b.Window.To,
		Retire: b.Retire,
	}}
	switch b.Stream {
	case schema.StreamUsage:
		u.Table = schema.UsageDaily
		u.Rows, u.Rejects = p.tf.Usage(b.Device, b.Usage)
	case schema.StreamConnections:
		u.Table = schema.ConnectionEvents
		u.Rows, u.Rejects = p.tf.Events(b.Device, b.Events)
	}
	return p.wr.Submit(ctx, u)
}

// Failed records a device's failure on a stream; its checkpoint stays.
func (p *Pipeline) Failed(ctx context.Context, stream string, dev extract.DeviceID, err error) error {
	return p.wr.Submit(ctx, Unit{Checkpoint: &CheckpointUpdate{Stream: stream, Device: dev, Err: err.Error()}})
}
