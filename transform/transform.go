// Package transform turns decoded API records into warehouse rows: it
// flattens extendedAttributes and connectionEventAttributes into the columns
// the schema declares, normalises instants to UTC, kinds to lower case and
// numeric strings to integers. Pure functions: no I/O, no clock.
package transform

import (
	"encoding/json"

	"github.com/thingsync/thingsync/extract"
)

// Row is one warehouse row. Values is aligned with the schema table's
// Columns: nil is NULL; columns marked Loader in the schema are left nil for
// the loader to fill. Value types: string, int64 (BIGINT), int32 (INTEGER),
// float64, bool, time.Time in UTC (a DATE is midnight UTC), []string.
type Row struct {
	Values []any
	// Unknown holds attribute keys the schema does not know, as sent. The
	// loader turns them into evolved columns (or the extra map).
	Unknown []extract.Attribute
}

// Reject is a record that could not be made into a row.
type Reject struct {
	Stream string
	Device extract.DeviceID
	Reason string
	Raw    json.RawMessage
}
