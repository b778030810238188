package schema

// Views analysts asked for (issue 5). Each is declared with the columns
// DuckDB derives from its SELECT, in order and with their types; the load
// tests check the two agree, so the documentation cannot drift from the SQL.

func usageMonthlyView() Table {
	return Table{
		Name: UsageMonthly,
		Comment: "Monthly usage per device: usage_daily summed by UTC calendar month. " +
			"The current month, and days younger than the usage lookback, are provisional.",
		// Sums are cast back to BIGINT: DuckDB sums integers into HUGEINT,
		// which drivers and Parquet readers handle poorly, and a device's
		// month cannot come near 2^63 bytes.
		View: `SELECT device_kind, device_id,
       CAST(date_trunc('month', usage_date) AS DATE) AS month,
       CAST(sum(bytes_used) AS BIGINT) AS bytes_used,
       CAST(sum(sms_used) AS BIGINT) AS sms_used,
       CAST(sum(international_usage) AS BIGINT) AS international_usage,
       CAST(sum(domestic_usage) AS BIGINT) AS domestic_usage,
       CAST(sum(international_usage) AS DOUBLE)
         / nullif(coalesce(sum(domestic_usage), 0) + coalesce(sum(international_usage), 0), 0) AS international_share
FROM usage_daily
GROUP BY device_kind, device_id, month`,
		// The key of a view is the uniqueness its SQL guarantees,
		// documented like a table's.
		Columns: append(identity(),
			Column{Name: "month", Type: Date, Key: true, Comment: "First day of the UTC calendar month."},
			Column{Name: "bytes_used", Type: BigInt, Comment: "Bytes the device sent or received in the month (sum of usage_daily.bytes_used)."},
			Column{Name: "sms_used", Type: BigInt, Comment: "SMS messages sent or received in the month (sum of usage_daily.sms_used)."},
			Column{Name: "international_usage", Type: BigInt, Comment: "International bytes in the month, for RTR customers; NULL when no day reported it."},
			Column{Name: "domestic_usage", Type: BigInt, Comment: "Domestic bytes in the month, for RTR customers; NULL when no day reported it."},
			Column{Name: "international_share", Type: Double, Comment: "international_usage / (domestic_usage + international_usage), from 0 to 1; NULL when both are 0 or unreported."},
		),
	}
}

func deviceLatestView() Table {
	devices := devicesTable()
	cols := identity()
	cols = append(cols, columnsOf(devices, "account_name", "iccid", "imei", "mdn", "msisdn", "meid", "esn", "eid", "imsi", "state", "last_seen_at")...)
	cols = append(cols,
		Column{Name: "last_usage_date", Type: Date, Comment: "Latest UTC day with a usage_daily row; NULL when none is loaded."},
		Column{Name: "last_session_end", Type: TimestampTZ, Comment: "When the device's latest loaded session ended (the latest Stop event in connection_events, UTC); NULL when none is loaded."},
		Column{Name: "billing_start_date", Type: TimestampTZ, Comment: "Start of the latest billing cycle in rated_usage (UTC); NULL when the device has no rated usage."},
		Column{Name: "billing_end_date", Type: TimestampTZ, Comment: "End of that billing cycle (UTC)."},
		Column{Name: "billing_data_usage", Type: Double, Comment: "Rated data usage of that billing cycle, in billing_unit."},
		Column{Name: "billing_unit", Type: Varchar, Comment: "Unit of billing_data_usage as the API sent it: KB, MB or GB."},
		Column{Name: "billing_data_usage_bytes", Type: BigInt, Comment: "Rated data usage of that billing cycle in bytes (decimal units)."},
	)
	return Table{
		Name: DeviceLatest,
		Comment: "One row per device of the devices table with its latest known facts: identifiers and state, " +
			"last usage day, last session end and the latest billing cycle's rated usage. " +
			"A device with no usage, events or rated usage still appears, with NULLs.",
		// LEFT JOINs from devices: every device appears once, whatever the
		// fact tables hold. The fact tables are aggregated before the join so
		// no join multiplies rows.
		View: `WITH u AS (
  SELECT device_kind, device_id, max(usage_date) AS last_usage_date
  FROM usage_daily
  GROUP BY device_kind, device_id
), s AS (
  SELECT device_kind, device_id, max(occurred_at) AS last_session_end
  FROM connection_events
  WHERE event = 'Stop'
  GROUP BY device_kind, device_id
), r AS (
  SELECT device_kind, device_id, billing_start_date, billing_end_date, data_usage, unit, data_usage_bytes
  FROM rated_usage
  QUALIFY row_number() OVER (PARTITION BY device_kind, device_id ORDER BY billing_start_date DESC) = 1
)
SELECT d.device_kind, d.device_id, d.account_name, d.iccid, d.imei, d.mdn, d.msisdn, d.meid, d.esn, d.eid, d.imsi,
       d.state, d.last_seen_at,
       u.last_usage_date, s.last_session_end,
       r.billing_start_date, r.billing_end_date, r.data_usage AS billing_data_usage,
       r.unit AS billing_unit, r.data_usage_bytes AS billing_data_usage_bytes
FROM devices d
LEFT JOIN u ON u.device_kind = d.device_kind AND u.device_id = d.device_id
LEFT JOIN s ON s.device_kind = d.device_kind AND s.device_id = d.device_id
LEFT JOIN r ON r.device_kind = d.device_kind AND r.device_id = d.device_id`,
		Columns: cols,
	}
}

// columnsOf copies the named columns of t, with their types and comments,
// for a view that selects them unchanged: one comment, written once.
func columnsOf(t Table, names ...string) []Column {
	cols := make([]Column, 0, len(names))
	for _, n := range names {
		c, ok := t.Column(n)
		if !ok {
			panic("schema: " + t.Name + " has no column " + n)
		}
		cols = append(cols, Column{Name: c.Name, Type: c.Type, Comment: c.Comment})
	}
	return cols
}
