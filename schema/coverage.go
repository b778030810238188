package schema

// The coverage ledger is derived from the checkpoints: a device-stream's
// loaded days are one stretch [covered_from, fetched_until), final before
// settled_until. So the state stays one row per device and stream however
// many days it spans, and the summaries (status, backfill --gaps) are
// arithmetic on 2 rows a device, not on one row per device-day as
// coverage_days lists them.

// coverageWant is the wanted range as of the latest sync and the
// checkpoints' stretches in UTC days.
const coverageWant = `WITH latest AS (
  SELECT CAST(coalesce(max(started_at), now()) AT TIME ZONE 'UTC' AS DATE) AS last_day,
         CAST(max_by(wanted_from, started_at) AT TIME ZONE 'UTC' AS DATE) AS wanted
  FROM sync_runs WHERE kind <> 'backfill'
), want AS (
  SELECT CAST(greatest(coalesce(wanted, last_day - INTERVAL 12 MONTH), last_day - INTERVAL 12 MONTH) AS DATE) AS first_day, last_day
  FROM latest
), cp AS (
  SELECT stream, device_kind, device_id, updated_at, coalesce(retired, false) AS retired, idle_since IS NOT NULL AS idle,
         CAST(covered_from AT TIME ZONE 'UTC' AS DATE) AS cf,
         CAST(settled_until AT TIME ZONE 'UTC' AS DATE) AS sd,
         CAST(fetched_until AT TIME ZONE 'UTC' AS DATE)
           + CASE WHEN fetched_until AT TIME ZONE 'UTC' > CAST(fetched_until AT TIME ZONE 'UTC' AS DATE) THEN 1 ELSE 0 END AS fd
  FROM sync_checkpoints WHERE stream IN ('usage', 'connections')
), r AS (
  SELECT d.device_kind, d.device_id, s.stream, w.first_day,
         CASE WHEN c.retired AND c.fd IS NOT NULL THEN least(w.last_day + 1, c.fd) ELSE w.last_day + 1 END AS want_end,
         -- greatest and least skip NULLs: nothing loaded must stay NULL.
         CASE WHEN c.cf IS NOT NULL AND c.fd IS NOT NULL THEN greatest(w.first_day, c.cf) END AS lo,
         CASE WHEN c.cf IS NOT NULL AND c.fd IS NOT NULL THEN least(w.last_day + 1, c.fd) END AS hi, c.sd, c.updated_at,
         -- An idle device-stream's days after its last fetch are pending:
         -- the idle rule reads them again (usage at its recheck,
         -- connections once it connects), so they are not gaps.
         CASE WHEN coalesce(c.idle, false) AND c.fd IS NOT NULL THEN greatest(w.first_day, least(w.last_day + 1, c.fd)) END AS pend
  FROM devices d CROSS JOIN (SELECT unnest(['usage', 'connections']) AS stream) s CROSS JOIN want w
  LEFT JOIN cp c ON c.stream = s.stream AND c.device_kind = d.device_kind AND c.device_id = d.device_id
)`

func coverageView() Table {
	return Table{
		Name: Coverage,
		Comment: "Coverage ledger, one row per device and history stream (usage, connections): how many UTC days of the wanted range " +
			"are settled (loaded and final), provisional (loaded while younger than the lookback; re-read by every run that fetches the device), " +
			"pending (after the last fetch of a device the idle rule skips: read again at its usage recheck or once it connects) or missing " +
			"(never loaded, or the device failed). The wanted range is as of the latest sync: from its wanted_from " +
			"(THINGSYNC_START, never before the 12-month retention) to the day it started; a retired device is not wanted after its last fetch. " +
			"coverage_days lists the same per day; `thingsync backfill --gaps` re-fetches the missing days.",
		View: coverageWant + `
SELECT device_kind, device_id, stream, first_day, CAST(want_end - 1 AS DATE) AS last_day,
       CASE WHEN hi > lo THEN lo END AS covered_from,
       CASE WHEN hi > lo THEN CAST(hi - 1 AS DATE) END AS covered_until,
       CAST(CASE WHEN hi > lo THEN greatest(0, least(hi, coalesce(sd, lo)) - lo) ELSE 0 END AS INTEGER) AS settled_days,
       CAST(CASE WHEN hi > lo THEN (hi - lo) - greatest(0, least(hi, coalesce(sd, lo)) - lo) ELSE 0 END AS INTEGER) AS provisional_days,
       CAST(CASE WHEN pend < want_end THEN want_end - pend ELSE 0 END AS INTEGER) AS pending_days,
       CAST((want_end - first_day) - CASE WHEN hi > lo THEN hi - lo ELSE 0 END - CASE WHEN pend < want_end THEN want_end - pend ELSE 0 END AS INTEGER) AS missing_days,
       CASE WHEN hi > lo THEN updated_at END AS fetched_at
FROM r`,
		Columns: []Column{
			{Name: "device_kind", Type: Varchar, Key: true, Comment: "Kind of the device's identity."},
			{Name: "device_id", Type: Varchar, Key: true, Comment: "Value of the device's identity."},
			{Name: "stream", Type: Varchar, Key: true, Comment: "History stream: usage or connections."},
			{Name: "first_day", Type: Date, Comment: "First wanted UTC day."},
			{Name: "last_day", Type: Date, Comment: "Last wanted UTC day (the latest sync's day, or a retired device's last fetched day)."},
			{Name: "covered_from", Type: Date, Comment: "First loaded day inside the wanted range; NULL when none is loaded."},
			{Name: "covered_until", Type: Date, Comment: "Last loaded day inside the wanted range; NULL when none is loaded."},
			{Name: "settled_days", Type: Integer, Comment: "Wanted days loaded and final."},
			{Name: "provisional_days", Type: Integer, Comment: "Wanted days loaded while younger than the lookback: every run re-reads them."},
			{Name: "pending_days", Type: Integer, Comment: "Wanted days after the last fetch of a device the idle rule skips (THINGSYNC_IDLE_RECHECK): not loaded yet, read again by its next usage recheck or once it connects; not gaps."},
			{Name: "missing_days", Type: Integer, Comment: "Wanted days never loaded (before covered_from or after covered_until) and not pending."},
			{Name: "fetched_at", Type: TimestampTZ, Comment: "When the device-stream's checkpoint last moved (its latest successful fetch); NULL when nothing is loaded."},
		},
	}
}

func coverageDaysView() Table {
	return Table{
		Name: CoverageDays,
		Comment: "Coverage ledger per day: every device, history stream and wanted UTC day (see coverage) with its state: " +
			"settled, provisional, pending or missing. Filter it by device or day: over a whole large fleet it is one row per device-day.",
		View: coverageWant + `
SELECT r.device_kind, r.device_id, r.stream, CAST(t.day AS DATE) AS day,
       CASE WHEN t.day >= r.lo AND t.day < least(r.hi, coalesce(r.sd, r.lo)) THEN 'settled'
            WHEN t.day >= r.lo AND t.day < r.hi THEN 'provisional'
            WHEN t.day >= r.pend THEN 'pending'
            ELSE 'missing' END AS state,
       CASE WHEN t.day >= r.lo AND t.day < r.hi THEN r.updated_at END AS fetched_at
FROM r, range(r.first_day, r.want_end, INTERVAL 1 DAY) AS t(day)`,
		Columns: []Column{
			{Name: "device_kind", Type: Varchar, Key: true, Comment: "Kind of the device's identity."},
			{Name: "device_id", Type: Varchar, Key: true, Comment: "Value of the device's identity."},
			{Name: "stream", Type: Varchar, Key: true, Comment: "History stream: usage or connections."},
			{Name: "day", Type: Date, Key: true, Comment: "UTC day."},
			{Name: "state", Type: Varchar, Comment: "settled, provisional, pending (after the last fetch of a device the idle rule skips: read again at its recheck or once it connects) or missing."},
			{Name: "fetched_at", Type: TimestampTZ, Comment: "When the checkpoint covering the day last moved (the device-stream's latest successful fetch); NULL for a missing day."},
		},
	}
}
