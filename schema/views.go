package schema

// Views analysts asked for (issue 5). Each is declared with the columns
// DuckDB derives from its SELECT, in order and with their types; the load
// tests check the two agree, so the documentation cannot drift from the SQL.

func usageMonthlyView() Table {
	return Table{
		Name: UsageMonthly,
		Comment: "Monthly usage per device: usage_daily summed by UTC calendar month. " +
			"is_provisional says whether the month's figures can still change: the current month, and any month with a day " +
			"on or after the device's usage settled_until, are provisional.",
		// Sums are cast back to BIGINT: DuckDB sums integers into HUGEINT,
		// which drivers and Parquet readers handle poorly, and a device's
		// month cannot come near 2^63 bytes. is_provisional is computed
		// from the checkpoint here, at query time: it is never stale.
		View: `WITH m AS (
  SELECT device_kind, device_id,
         CAST(date_trunc('month', usage_date) AS DATE) AS month,
         CAST(sum(bytes_used) AS BIGINT) AS bytes_used,
         CAST(sum(sms_used) AS BIGINT) AS sms_used,
         CAST(sum(mo_sms) AS BIGINT) AS mo_sms,
         CAST(sum(mt_sms) AS BIGINT) AS mt_sms,
         CAST(sum(international_usage) AS BIGINT) AS international_usage,
         CAST(sum(domestic_usage) AS BIGINT) AS domestic_usage
  FROM usage_daily
  GROUP BY device_kind, device_id, month
)
SELECT m.device_kind, m.device_id, m.month, m.bytes_used, m.sms_used, m.mo_sms, m.mt_sms,
       m.international_usage, m.domestic_usage,
       CAST(m.international_usage AS DOUBLE)
         / nullif(coalesce(m.domestic_usage, 0) + coalesce(m.international_usage, 0), 0) AS international_share,
       coalesce(CAST(c.settled_until AT TIME ZONE 'UTC' AS DATE) < CAST(m.month + INTERVAL 1 MONTH AS DATE), true) AS is_provisional
FROM m
LEFT JOIN sync_checkpoints c ON c.stream = 'usage' AND c.device_kind = m.device_kind AND c.device_id = m.device_id`,
		// The key of a view is the uniqueness its SQL guarantees,
		// documented like a table's.
		Columns: append(identity(),
			Column{Name: "month", Type: Date, Key: true, Comment: "First day of the UTC calendar month."},
			Column{Name: "bytes_used", Type: BigInt, Comment: "Bytes the device sent or received in the month (sum of usage_daily.bytes_used)."},
			Column{Name: "sms_used", Type: BigInt, Comment: "SMS messages sent or received in the month (sum of usage_daily.sms_used)."},
			Column{Name: "mo_sms", Type: BigInt, Comment: "Mobile-originated SMS messages in the month (sum of usage_daily.mo_sms); NULL when no day reported it."},
			Column{Name: "mt_sms", Type: BigInt, Comment: "Mobile-terminated SMS messages in the month (sum of usage_daily.mt_sms); NULL when no day reported it."},
			Column{Name: "international_usage", Type: BigInt, Comment: "International bytes in the month, for RTR customers; NULL when no day reported it."},
			Column{Name: "domestic_usage", Type: BigInt, Comment: "Domestic bytes in the month, for RTR customers; NULL when no day reported it."},
			Column{Name: "international_share", Type: Double, Comment: "international_usage / (domestic_usage + international_usage), from 0 to 1; NULL when both are 0 or unreported."},
			Column{Name: ProvisionalColumn, Type: Boolean, Comment: "True while a day of the month is on or after the device's usage settled_until (sync_checkpoints), or the device has no checkpoint: " +
				"a loaded day may still be revised, or later days are yet to come. False once every day of the month is settled. Computed from the checkpoint when queried."},
		),
	}
}

func deviceLatestView() Table {
	devices := devicesTable()
	cols := identity()
	cols = append(cols, columnsOf(devices, "account_name", "iccid", "imei", "mdn", "msisdn", "meid", "esn", "eid", "imsi", "state",
		"service_plan", "group_names", "last_connection_at", "last_seen_at")...)
	cols = append(cols,
		Column{Name: "last_usage_date", Type: Date, Comment: "Latest UTC day with a usage_daily row, zero-byte days included; NULL when none is loaded."},
		Column{Name: "last_day_with_data", Type: Date, Comment: "Latest UTC day on which the device used data (usage_daily.bytes_used > 0); NULL when it has none loaded. A day with only SMS, or a zero-byte row, is no data."},
		Column{Name: "last_session_end", Type: TimestampTZ, Comment: "When the device's latest loaded session ended (the latest Stop event in connection_events, UTC); NULL when none is loaded."},
		Column{Name: "billing_start_date", Type: TimestampTZ, Comment: "Start of the latest billing cycle in rated_usage (UTC); NULL when the device has no rated usage."},
		Column{Name: "billing_end_date", Type: TimestampTZ, Comment: "End of that billing cycle (UTC)."},
		Column{Name: "billing_data_usage", Type: Double, Comment: "Rated data usage of that billing cycle, in billing_unit."},
		Column{Name: "billing_unit", Type: Varchar, Comment: "Unit of billing_data_usage as the API sent it: KB, MB or GB."},
		Column{Name: "billing_data_usage_bytes", Type: BigInt, Comment: "Rated data usage of that billing cycle in bytes (decimal units)."},
	)
	return Table{
		Name: DeviceLatest,
		Comment: "One row per device of the devices table with its latest known facts: identifiers, state, service plan and groups, " +
			"last usage day, last day with data, last connection and last session end and the latest billing cycle's rated usage. " +
			"A device with no usage, events or rated usage still appears, with NULLs.",
		// LEFT JOINs from devices: every device appears once, whatever the
		// fact tables hold. The fact tables are aggregated before the join so
		// no join multiplies rows.
		View: `WITH u AS (
  SELECT device_kind, device_id, max(usage_date) AS last_usage_date,
         max(usage_date) FILTER (WHERE bytes_used > 0) AS last_day_with_data
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
       d.state, d.service_plan, d.group_names, d.last_connection_at, d.last_seen_at,
       u.last_usage_date, u.last_day_with_data, s.last_session_end,
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
