// Package ingest runs one sync or backfill from start to end and decides
// how it ended. A run holds the warehouse through a load.Gate, records
// itself in sync_runs, walks the account's devices into the writer, asks
// for aggregate usage when that stream is on, and then decides the
// outcome: ok, partial (some devices failed, the device list was cut
// short, the aggregate step failed, a --device matched nothing),
// interrupted (a signal) or failed (nothing could be recorded). The
// outcome is a Status with an Error whose Kind the caller maps (the CLI to
// an exit status).
//
// It also decides which ranges a gap pass re-fetches from the coverage
// ledger, what the run's summary line says, and keeps the progress file a
// run writes beside the warehouse, which readers use while the run holds
// the file.
package ingest
