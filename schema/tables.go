package schema

import "fmt"

// Tables returns every table and view of the warehouse, tables first, in
// creation order. It builds a fresh value on each call: callers may keep and
// change what they get.
func Tables() []Table {
	return []Table{
		devicesTable(),
		deviceHistoryTable(),
		usageDailyTable(),
		connectionEventsTable(),
		ratedUsageTable(),
		aggregateUsageTable(),
		aggregateRequestsTable(),
		syncCheckpointsTable(),
		syncRunsTable(),
		syncLearnedTable(),
		syncRunRatesTable(),
		deviceVisitsTable(),
		rejectedRecordsTable(),
		schemaColumnsTable(),
		schemaMigrationsTable(),
		connectionSessionsView(),
		usageMonthlyView(),
		coverageView(),
		coverageDaysView(),
		deviceLatestView(),
	}
}

func identity() []Column {
	return []Column{
		{Name: "device_kind", Type: Varchar, Key: true, Comment: "Kind of the identifier the device is addressed by: the first it has of iccid, imei, meid, esn, mdn, msisdn, eid (lower-case)."},
		{Name: "device_id", Type: Varchar, Key: true, Comment: "Value of that identifier, as the API sends it (leading zeros kept)."},
	}
}

func loadedAt() Column {
	return Column{Name: LoadedAtColumn, Type: TimestampTZ, Loader: true, Comment: "When thingsync last wrote this row (UTC)."}
}

// rowHash lets the loader tell a re-read row that changed from one that did
// not by comparing one BIGINT, not every column: a revision batch then
// reads only the keys and this column of a large table.
func rowHash() Column {
	return Column{Name: RowHashColumn, Type: BigInt, Loader: true, Comment: "Hash of the row's values (data, evolved and extra columns), kept by the loader to see whether a re-read row changed."}
}

func extra() Column {
	return Column{Name: ExtraColumn, Type: ExtraMap, Loader: true, Comment: "Attribute keys that arrived after this table reached its cap of evolved columns: key as sent → value as sent."}
}

func devicesTable() Table {
	return Table{
		Name:    Devices,
		Comment: "Every device of the account as the device list last showed it; one row per device identity.",
		Order:   []string{"device_kind", "device_id"},
		Columns: append(identity(),
			Column{Name: "account_name", Type: Varchar, Comment: "Billing account the device belongs to (leading zeros kept)."},
			Column{Name: "iccid", Type: Varchar, Comment: "SIM card identifier (ICCID), when the device has one."},
			Column{Name: "imei", Type: Varchar, Comment: "Hardware identifier (IMEI), when the device has one."},
			Column{Name: "mdn", Type: Varchar, Comment: "Mobile directory number (10 digits), when the device has one."},
			Column{Name: "msisdn", Type: Varchar, Comment: "MSISDN (11 digits), when the device has one."},
			Column{Name: "meid", Type: Varchar, Comment: "Mobile equipment identifier (MEID, hex), when the device has one."},
			Column{Name: "esn", Type: Varchar, Comment: "Electronic serial number (ESN), when the device has one."},
			Column{Name: "eid", Type: Varchar, Comment: "eUICC identifier (EID), when the device has one."},
			Column{Name: "imsi", Type: Varchar, Comment: "IMSI, when the device list reports one."},
			Column{Name: "state", Type: Varchar, Comment: "Connectivity state of the first carrier entry, lower-case: active, deactive, suspend, pending activation, pre-active."},
			Column{Name: "carrier_name", Type: Varchar, Comment: "Carrier of the first carrier entry."},
			Column{Name: "service_plan", Type: Varchar, Comment: "Service plan of the first carrier entry."},
			Column{Name: "connected", Type: Boolean, Comment: "Whether the device list reported the device connected when last seen."},
			Column{Name: "ip_address", Type: Varchar, Comment: "IP address the device list reported, as sent."},
			Column{Name: "group_names", Type: VarcharList, Comment: "Device groups the device belongs to."},
			Column{Name: "thingspace_device_id", Type: BigInt, Comment: "The API's internal DeviceId (extended attribute), the device list's paging cursor."},
			Column{Name: "created_at", Type: TimestampTZ, Comment: "When the device was added to the account (UTC)."},
			Column{Name: "last_activation_at", Type: TimestampTZ, Comment: "Last activation date the device list reported (UTC)."},
			Column{Name: "last_connection_at", Type: TimestampTZ, Comment: "Last connection date the device list reported (UTC)."},
			Column{Name: "billing_cycle_end_at", Type: TimestampTZ, Comment: "End of the current billing cycle the device list reported (UTC)."},
			Column{Name: "first_seen_at", Type: TimestampTZ, Loader: true, FirstOf: "last_seen_at", Comment: "When thingsync first saw the device in the device list (UTC)."},
			Column{Name: "last_seen_at", Type: TimestampTZ, Bookkeeping: true, Comment: "When thingsync last saw the device in the device list (UTC)."},
			loadedAt(),
		),
	}
}

func deviceHistoryTable() Table {
	return Table{
		Name: DeviceHistory,
		Comment: "History of each device's state, service plan and groups as the device list showed them: one row per device and period in which the three stayed the same, " +
			"[valid_from, valid_to). Join usage on the day to attribute it to the plan of the time: " +
			"usage_date >= CAST(valid_from AS DATE) AND (valid_to IS NULL OR usage_date < CAST(valid_to AS DATE)). " +
			"Days before a device's first period (history loaded before thingsync first listed it) have no period.",
		Order: []string{"device_kind", "device_id", "valid_from"},
		Columns: append(identity(),
			Column{Name: "valid_from", Type: TimestampTZ, Key: true, Comment: "When the device list first showed the period's values: the listing (last_seen_at) that showed the device new, or changed (UTC)."},
			Column{Name: "valid_to", Type: TimestampTZ, Comment: "When a listing first showed different values, or the first complete listing that no longer showed the device (UTC); NULL for the current period."},
			Column{Name: "state", Type: Varchar, Comment: "Connectivity state in the period (devices.state)."},
			Column{Name: "service_plan", Type: Varchar, Comment: "Service plan in the period (devices.service_plan)."},
			Column{Name: "group_names", Type: VarcharList, Comment: "Device groups in the period (devices.group_names); the same names in another order are the same period."},
			loadedAt(),
		),
	}
}

func usageDailyTable() Table {
	return Table{
		Name:    UsageDaily,
		Comment: "Daily usage per device from the usage history endpoint; one row per device and UTC day. Values younger than the usage lookback are provisional and re-read by every run.",
		Evolves: true,
		Order:   []string{"usage_date", "device_kind", "device_id"},
		Columns: append(identity(),
			Column{Name: "usage_date", Type: Date, Key: true, Comment: "UTC date of the record's timestamp."},
			Column{Name: "bytes_used", Type: BigInt, Comment: "Bytes the device sent or received on that day."},
			Column{Name: "sms_used", Type: Integer, Comment: "SMS messages sent or received on that day."},
			Column{Name: "mo_sms", Type: Integer, Attr: "MoSms", Comment: "Mobile-originated SMS messages on that day (attribute MoSms)."},
			Column{Name: "mt_sms", Type: Integer, Attr: "MtSms", Comment: "Mobile-terminated SMS messages on that day (attribute MtSms)."},
			Column{Name: "domestic_usage", Type: BigInt, Attr: "domesticUsage", Comment: "Domestic bytes on that day, for RTR customers (attribute domesticUsage)."},
			Column{Name: "international_usage", Type: BigInt, Attr: "internationalUsage", Comment: "International bytes on that day, for RTR customers (attribute internationalUsage)."},
			Column{Name: "source", Type: Varchar, Comment: "Source of the usage figures as the API names it, e.g. Raw Usage."},
			Column{Name: ProvisionalColumn, Type: Boolean, Loader: true, Comment: "True while the day is younger than the device's usage settled_until (sync_checkpoints): the API may still revise it and the next run that fetches the device re-reads it; false once settled. Set in the same transaction as the checkpoint, so it agrees with coverage_days."},
			loadedAt(),
			rowHash(),
			extra(),
		),
	}
}

// connectionAttrs lists every connection event attribute key the API is
// known to send (docs/design.md lists them), typed by meaning: bytes, packets
// and seconds BIGINT; counts and codes INTEGER; identifiers, causes and
// addresses VARCHAR (NasIpAddress stays the integer text it is sent as).
func connectionAttrs() []Column {
	return []Column{
		{Name: "bytes_used", Type: BigInt, Attr: "BytesUsed", Comment: "Bytes used in the session (input + output), reported on Stop; 0 on Start."},
		{Name: "input_bytes", Type: BigInt, Attr: "InputBytes", Comment: "Bytes received from the device in the session."},
		{Name: "output_bytes", Type: BigInt, Attr: "OutputBytes", Comment: "Bytes sent to the device in the session."},
		{Name: "account_session_time", Type: BigInt, Attr: "AccountSessionTime", Comment: "Session length in seconds, reported on Stop; 0 on Start."},
		{Name: "account_terminate_cause", Type: Varchar, Attr: "AccountTerminateCause", Comment: "Why the session ended (User_Request, Idle_Timeout, NAS_Request, Admin_Reset, …); 0 on Start."},
		{Name: "account_status_type", Type: Varchar, Attr: "AccountStatusType", Comment: "RADIUS accounting status type: Start or Stop."},
		{Name: "msisdn", Type: Varchar, Attr: "Msisdn", Comment: "MSISDN the network saw for the session."},
		{Name: "username", Type: Varchar, Attr: "Username", Comment: "Network access identifier of the session."},
		{Name: "calling_station_id", Type: Varchar, Attr: "CallingStationId", Aliases: []string{"AccountCallingStationId"}, Comment: "Calling station identifier (the device's number)."},
		{Name: "framed_ip_address", Type: Varchar, Attr: "FramedIpAddress", Comment: "IP address assigned to the device for the session."},
		{Name: "nas_ip_address", Type: Varchar, Attr: "NasIpAddress", Comment: "Network access server address, as sent (an integer, not dotted)."},
		{Name: "nas_port", Type: Varchar, Attr: "NasPort", Comment: "Network access server port identifier."},
		{Name: "nas_identifier", Type: Varchar, Attr: "NasIdentifier", Comment: "Network access server name."},
		{Name: "account_input_packets", Type: BigInt, Attr: "AccountInputPackets", Comment: "Packets received from the device in the session."},
		{Name: "account_output_packets", Type: BigInt, Attr: "AccountOutputPackets", Comment: "Packets sent to the device in the session."},
		{Name: "account_3gpp2_begin_session", Type: Integer, Attr: "Account3Gpp2BeginSession", Comment: "3GPP2 begin-session flag (1 on the first record of a session)."},
		{Name: "account_3gpp2_correlation_id", Type: Varchar, Attr: "Account3Gpp2CorrelationId", Comment: "3GPP2 correlation identifier shared by a session's records."},
		{Name: "account_3gpp2_originating_number_sdbs", Type: Integer, Attr: "Account3Gpp2OriginatingNumberSdbs", Comment: "3GPP2 count of short data bursts originated."},
		{Name: "account_3gpp2_terminating_number_sdbs", Type: Integer, Attr: "Account3Gpp2TerminatingNumberSdbs", Comment: "3GPP2 count of short data bursts terminated."},
		{Name: "account_3gpp2_release_indicator", Type: Integer, Attr: "Account3Gpp2ReleaseIndicator", Comment: "3GPP2 release indicator code."},
		{Name: "account_3gpp2_active_time", Type: BigInt, Attr: "Account3Gpp2ActiveTime", Comment: "3GPP2 active time of the session in seconds."},
		{Name: "account_3gpp2_bad_ppp_frame_count", Type: Integer, Attr: "Account3Gpp2BadPppFrameCount", Comment: "3GPP2 count of bad PPP frames."},
		{Name: "account_3gpp2_fch_frame_size", Type: Integer, Attr: "Account3Gpp2FchFrameSize", Comment: "3GPP2 fundamental channel frame size code."},
		{Name: "account_3gpp2_forward_fch_mux_option", Type: Integer, Attr: "Account3Gpp2ForwardFchMuxOption", Comment: "3GPP2 forward fundamental channel multiplex option."},
		{Name: "account_3gpp2_forward_fch_rc", Type: Integer, Attr: "Account3Gpp2ForwardFchRc", Comment: "3GPP2 forward fundamental channel radio configuration."},
		{Name: "account_3gpp2_forward_traffic_type", Type: Integer, Attr: "Account3Gpp2ForwardTrafficType", Comment: "3GPP2 forward traffic type code."},
		{Name: "account_3gpp2_inbound_mobile_ip_sig_bytes", Type: BigInt, Attr: "Account3Gpp2InboundMobileIpSigBytes", Comment: "3GPP2 inbound Mobile IP signalling bytes."},
		{Name: "account_3gpp2_outbound_mobile_ip_sig_bytes", Type: BigInt, Attr: "Account3Gpp2OutboundMobileIpSigBytes", Comment: "3GPP2 outbound Mobile IP signalling bytes."},
		{Name: "account_3gpp2_ip_technology", Type: Integer, Attr: "Account3Gpp2IpTechnology", Comment: "3GPP2 IP technology code (simple or mobile IP)."},
		{Name: "account_3gpp2_originating_sdb_byte_count", Type: BigInt, Attr: "Account3Gpp2OriginatingSdbByteCount", Comment: "3GPP2 bytes in originated short data bursts."},
		{Name: "account_3gpp2_terminating_sdb_byte_count", Type: BigInt, Attr: "Account3Gpp2TerminatingSdbByteCount", Comment: "3GPP2 bytes in terminated short data bursts."},
		{Name: "account_3gpp2_reverse_fch_mux_option", Type: Integer, Attr: "Account3Gpp2ReverseFchMuxOption", Comment: "3GPP2 reverse fundamental channel multiplex option."},
		{Name: "account_3gpp2_reverse_fch_rc", Type: Integer, Attr: "Account3Gpp2ReverseFchRc", Comment: "3GPP2 reverse fundamental channel radio configuration."},
		{Name: "account_3gpp2_reverse_traffic_type", Type: Integer, Attr: "Account3Gpp2ReverseTrafficType", Comment: "3GPP2 reverse traffic type code."},
		{Name: "account_3gpp2_service_option", Type: Integer, Attr: "Account3Gpp2ServiceOption", Comment: "3GPP2 service option code."},
		{Name: "account_3gpp2_session_continue", Type: Integer, Attr: "Account3Gpp2SessionContinue", Comment: "3GPP2 session-continue flag."},
		{Name: "account_3gpp2_compulsory_tunnel_indicator", Type: Integer, Attr: "Account3Gpp2CompulsoryTunnelIndicator", Comment: "3GPP2 compulsory tunnel indicator."},
		{Name: "account_3gpp2_home_agent_ip_address", Type: Varchar, Attr: "Account3Gpp2HomeAgentIpAddress", Comment: "3GPP2 home agent IP address."},
	}
}

func connectionEventsTable() Table {
	cols := append(identity(),
		Column{Name: "occurred_at", Type: TimestampTZ, Key: true, Comment: "When the event happened (UTC; the source offset is honoured)."},
		Column{Name: "event", Type: Varchar, Key: true, Attr: "Event", Comment: "The event: Start, Stop, …"},
		Column{Name: "account_session_id", Type: Varchar, Key: true, Attr: "AccountSessionId", Comment: "RADIUS accounting session id (hex), the same on a session's Start and Stop; part of the key so events of two sessions at one instant both stay."},
	)
	cols = append(cols, connectionAttrs()...)
	cols = append(cols, loadedAt(), rowHash(), extra())
	return Table{
		Name:    ConnectionEvents,
		Comment: "Connection events (RADIUS-style Start/Stop records) per device from the connection history endpoint, with every attribute flattened into a column.",
		Evolves: true,
		Order:   []string{"occurred_at", "device_kind", "device_id"},
		Columns: cols,
	}
}

func ratedUsageTable() Table {
	return Table{
		Name:    RatedUsage,
		Comment: "Rated (billing-cycle) usage per device with an MDN; one row per device and billing cycle.",
		Order:   []string{"billing_start_date", "device_kind", "device_id"},
		Columns: append(identity(),
			Column{Name: "billing_start_date", Type: TimestampTZ, Key: true, Comment: "Start of the billing cycle (UTC; the API sends it without a zone)."},
			Column{Name: "billing_end_date", Type: TimestampTZ, Comment: "End of the billing cycle (UTC)."},
			Column{Name: "billing_reset_date", Type: TimestampTZ, Comment: "When measurement restarted for the next cycle (UTC)."},
			Column{Name: "mdn", Type: Varchar, Comment: "The phone number the rated usage was asked for."},
			Column{Name: "data_usage", Type: Double, Comment: "Rated data usage in the unit the API sent."},
			Column{Name: "unit", Type: Varchar, Comment: "Unit of data_usage as sent: KB, MB or GB."},
			Column{Name: "data_usage_bytes", Type: BigInt, Comment: "data_usage in bytes, decimal units: KB = 1,000, MB = 1,000,000, GB = 1,000,000,000 bytes."},
			Column{Name: "fetched_at", Type: TimestampTZ, Bookkeeping: true, Comment: "When thingsync fetched this value (UTC)."},
			loadedAt(),
		),
	}
}

func aggregateUsageTable() Table {
	return Table{
		Name:    AggregateUsage,
		Comment: "Promotional aggregate usage per device and period, delivered by callback.",
		Order:   []string{"start_time", "device_kind", "device_id"},
		Columns: append(identity(),
			Column{Name: "start_time", Type: TimestampTZ, Key: true, Comment: "Start of the period (UTC)."},
			Column{Name: "end_time", Type: TimestampTZ, Key: true, Comment: "End of the period (UTC)."},
			Column{Name: "data_usage", Type: BigInt, Comment: "Bytes used in the period."},
			Column{Name: "sms_usage", Type: Integer, Comment: "SMS messages in the period."},
			Column{Name: "mo_sms", Type: Integer, Comment: "Mobile-originated SMS messages in the period."},
			Column{Name: "mt_sms", Type: Integer, Comment: "Mobile-terminated SMS messages in the period."},
			Column{Name: "request_id", Type: Varchar, Bookkeeping: true, Comment: "The aggregate usage request whose callback delivered the row."},
			Column{Name: "received_at", Type: TimestampTZ, Bookkeeping: true, Comment: "When the callback was received (UTC)."},
			loadedAt(),
		),
	}
}

func aggregateRequestsTable() Table {
	return Table{
		Name:    AggregateRequests,
		Comment: "Aggregate usage requests sent to ThingSpace and their callbacks; a request is pending until its data arrives.",
		Order:   []string{"requested_at"},
		Columns: []Column{
			{Name: "request_id", Type: Varchar, Key: true, Comment: "The requestId ThingSpace answered."},
			{Name: "start_time", Type: TimestampTZ, Comment: "Start of the requested period (UTC)."},
			{Name: "end_time", Type: TimestampTZ, Comment: "End of the requested period (UTC)."},
			{Name: "devices", Type: JSON, Comment: "The device identifiers asked for (JSON array of {kind, id})."},
			{Name: "device_count", Type: Integer, Comment: "How many devices the request asked for."},
			{Name: "status", Type: Varchar, Comment: "pending, completed (the completion notice arrived), received (data stored), superseded (asked again after the deadline) or failed."},
			{Name: "requested_at", Type: TimestampTZ, Comment: "When the request was sent (UTC)."},
			{Name: "completed_at", Type: TimestampTZ, Comment: "When the Request Completed Processing callback arrived (UTC)."},
			{Name: "received_at", Type: TimestampTZ, Comment: "When the data callback was stored (UTC)."},
			{Name: "deliveries", Type: Integer, Comment: "Callbacks accepted for the request, repeats included."},
			{Name: "superseded_by", Type: Varchar, Comment: "Request that replaced this one after its deadline passed."},
		},
	}
}

func syncCheckpointsTable() Table {
	return Table{
		Name:    SyncCheckpoints,
		Comment: "Where each device and stream stands: everything before settled_until is loaded and final.",
		Order:   []string{"stream", "device_kind", "device_id"},
		Columns: []Column{
			{Name: "stream", Type: Varchar, Key: true, Comment: "Stream: usage, connections, rated or aggregate."},
			{Name: "device_kind", Type: Varchar, Key: true, Comment: "Kind of the device's identity."},
			{Name: "device_id", Type: Varchar, Key: true, Comment: "Value of the device's identity."},
			{Name: "settled_until", Type: TimestampTZ, Comment: "Everything before this instant is loaded and final (it was older than the lookback when fetched). Never moves backwards."},
			{Name: "fetched_until", Type: TimestampTZ, Comment: "End of the last successful fetch; data between settled_until and here is provisional."},
			{Name: "updated_at", Type: TimestampTZ, Comment: "When the checkpoint last changed (UTC)."},
			{Name: "last_error", Type: Varchar, Comment: "The last error fetching this device and stream; NULL after a success."},
			{Name: "failures", Type: Integer, Comment: "Consecutive failed runs for this device and stream."},
			{Name: "retired", Type: Boolean, Comment: "True once a deactivated or vanished device has been fetched a last time: it is not asked again."},
			{Name: "covered_from", Type: TimestampTZ, Comment: "Start of the stretch loaded without a gap up to fetched_until; wanted days before it are missing (coverage_days)."},
			{Name: "idle_since", Type: TimestampTZ, Comment: "Since when runs skip this device and stream as idle (THINGSYNC_IDLE_RECHECK); NULL once fetched again. Its days after fetched_until are pending in coverage_days."},
			{Name: "open_since", Type: TimestampTZ, Comment: "Connections: start of a session whose Start is loaded and whose Stop is not, as of fetched_until; NULL when none. Such a device is asked again even when the device list shows it idle."},
			{Name: "records_at", Type: TimestampTZ, Comment: "When a fetch of this device and stream last returned records (UTC)."},
			{Name: "cycle_end", Type: TimestampTZ, Comment: "Rated: billing end date of the cycle last fetched; rated usage is asked again once that cycle has closed."},
		},
	}
}

func syncRunsTable() Table {
	return Table{
		Name:    SyncRuns,
		Comment: "One row per sync, backfill or scheduled run, with its outcome and counts.",
		Order:   []string{"started_at"},
		Columns: []Column{
			{Name: "run_id", Type: Varchar, Key: true, Comment: "Identifier of the run (also in every log line of the run)."},
			{Name: "kind", Type: Varchar, Comment: "sync, backfill or scheduled."},
			{Name: "streams", Type: Varchar, Comment: "Comma-separated streams the run covered."},
			{Name: "started_at", Type: TimestampTZ, Comment: "When the run started (UTC)."},
			{Name: "finished_at", Type: TimestampTZ, Comment: "When the run ended (UTC); NULL while running or if the process died."},
			{Name: "wanted_from", Type: TimestampTZ, Comment: "First instant the run wanted for a device without a checkpoint: THINGSYNC_START, never before the 12-month retention (coverage_days counts missing days from the latest run's)."},
			{Name: "status", Type: Varchar, Comment: "running, ok, partial (some devices failed), failed, interrupted, or abandoned (its process ended without recording an outcome; marked by the next run)."},
			{Name: "devices", Type: Integer, Comment: "Devices the run walked."},
			{Name: "devices_failed", Type: Integer, Comment: "Devices with at least one failed stream."},
			{Name: "requests", Type: BigInt, Comment: "API requests made, retries included."},
			{Name: "retries", Type: BigInt, Comment: "API requests that were retries."},
			{Name: "usage_inserted", Type: BigInt, Comment: "usage_daily rows inserted."},
			{Name: "usage_updated", Type: BigInt, Comment: "usage_daily rows replaced by revised values."},
			{Name: "events_inserted", Type: BigInt, Comment: "connection_events rows inserted."},
			{Name: "events_updated", Type: BigInt, Comment: "connection_events rows rewritten."},
			{Name: "rated_upserted", Type: BigInt, Comment: "rated_usage rows written."},
			{Name: "aggregate_upserted", Type: BigInt, Comment: "aggregate_usage rows written."},
			{Name: "rejected", Type: BigInt, Comment: "Records rejected (see rejected_records)."},
			{Name: "error", Type: Varchar, Comment: "Why the run failed, when it did."},
		},
	}
}

func syncLearnedTable() Table {
	return Table{
		Name:    SyncLearned,
		Comment: "What runs learned about the account and kept for the next run (such as the request rate it allows), one row per name.",
		Order:   []string{"name"},
		Columns: []Column{
			{Name: "name", Type: Varchar, Key: true, Comment: "What was learned."},
			{Name: "value", Type: Varchar, Comment: "The value learned, as text."},
			{Name: "learned_at", Type: TimestampTZ, Comment: "When a run last set it (UTC)."},
			{Name: "run_id", Type: Varchar, Comment: "Run that last set it."},
		},
	}
}

// RunRatesKept is how many runs' request rates sync_run_rates keeps.
const RunRatesKept = 30

func syncRunRatesTable() Table {
	return Table{
		Name: SyncRunRates,
		Comment: "The API request rate of each of the last runs, one row per minute it sent requests: requests, throttled answers (429, 503) and the ceiling " +
			"the client kept (THINGSYNC_RATE_LIMIT, or what the adaptive rate had reached). Kept for the last " + fmt.Sprint(RunRatesKept) + " runs; the status page draws the last run's.",
		Order: []string{"run_id", "minute"},
		Columns: []Column{
			{Name: "run_id", Type: Varchar, Key: true, Comment: "Run that sent the requests (sync_runs.run_id)."},
			{Name: "minute", Type: TimestampTZ, Key: true, Comment: "Start of the UTC minute."},
			{Name: "requests", Type: Integer, Comment: "API requests sent in that minute (answered in it), every endpoint, retries and logins included."},
			{Name: "throttled", Type: Integer, Comment: "Of those, answers 429 or 503 (the API asking to slow down)."},
			{Name: "rate_limit", Type: Double, Comment: "Requests per second the client allowed at the end of that minute."},
		},
	}
}

func deviceVisitsTable() Table {
	return Table{
		Name:    DeviceVisits,
		Comment: "When a run last reached each device (fetched its streams, or found it idle): a run cut short by its budget reaches part of the fleet, the next one carries on.",
		Order:   []string{"device_kind", "device_id"},
		Columns: []Column{
			{Name: "device_kind", Type: Varchar, Key: true, Comment: "Kind of the device's identity."},
			{Name: "device_id", Type: Varchar, Key: true, Comment: "Value of the device's identity."},
			{Name: "visited_at", Type: TimestampTZ, Comment: "When a run last reached the device (UTC)."},
			{Name: "run_id", Type: Varchar, Comment: "Run that last reached it."},
		},
	}
}

func rejectedRecordsTable() Table {
	return Table{
		Name:    RejectedRecords,
		Comment: "API records that could not be made into rows, with the reason and the record as sent; one row per distinct record.",
		Order:   []string{"first_seen_at"},
		Columns: []Column{
			{Name: "stream", Type: Varchar, Key: true, Comment: "Stream the record came from."},
			{Name: "device_kind", Type: Varchar, Key: true, Comment: "Kind of the device's identity."},
			{Name: "device_id", Type: Varchar, Key: true, Comment: "Value of the device's identity."},
			{Name: "record_hash", Type: Varchar, Key: true, Comment: "SHA-256 of the raw record, so a record re-read by later runs is kept once."},
			{Name: "reason", Type: Varchar, Comment: "Why the record was rejected."},
			{Name: "raw", Type: JSON, Comment: "The record exactly as the API sent it."},
			{Name: "run_id", Type: Varchar, Comment: "Run that last saw the record."},
			{Name: "first_seen_at", Type: TimestampTZ, Comment: "When the record was first rejected (UTC)."},
			{Name: "last_seen_at", Type: TimestampTZ, Comment: "When the record was last rejected (UTC)."},
			{Name: "times_seen", Type: Integer, Comment: "How many times runs have rejected this record."},
		},
	}
}

func schemaColumnsTable() Table {
	return Table{
		Name:    SchemaColumns,
		Comment: "Columns added by schema evolution: API attribute keys the schema did not know, each recorded when first seen.",
		Order:   []string{"table_name", "first_seen_at"},
		Columns: []Column{
			{Name: "table_name", Type: Varchar, Key: true, Comment: "Table the key was seen in."},
			{Name: "attribute_key", Type: Varchar, Key: true, Comment: "The attribute key exactly as the API sent it."},
			{Name: "column_name", Type: Varchar, Comment: "Column that holds it (sanitised snake_case), or extra when the table had reached its cap and the value went to the extra map."},
			{Name: "first_seen_at", Type: TimestampTZ, Comment: "When the key was first seen (UTC)."},
			{Name: "first_run_id", Type: Varchar, Comment: "Run that first saw the key."},
		},
	}
}

// schemaMigrationsTable is created by load before any migration runs (it
// records them); it is declared here so it is documented like the rest.
func schemaMigrationsTable() Table {
	return Table{
		Name:    SchemaMigrations,
		Comment: "Versioned schema migrations applied to this file.",
		Order:   []string{"version"},
		Columns: []Column{
			{Name: "version", Type: Integer, Key: true, Comment: "Migration version."},
			{Name: "description", Type: Varchar, Comment: "What the migration does."},
			{Name: "applied_at", Type: TimestampTZ, Comment: "When it was applied to this file (UTC)."},
		},
	}
}

func connectionSessionsView() Table {
	return Table{
		Name:    ConnectionSessions,
		Comment: "One row per connection session: a Start paired with its Stop by device and account_session_id. A session without a Stop is open (stopped_at NULL).",
		View: `WITH s AS (
  SELECT device_kind, device_id, account_session_id,
         min(occurred_at) FILTER (WHERE event = 'Start') AS started_at,
         max(occurred_at) FILTER (WHERE event = 'Stop') AS stopped_at,
         max(input_bytes) FILTER (WHERE event = 'Stop') AS input_bytes,
         max(output_bytes) FILTER (WHERE event = 'Stop') AS output_bytes,
         max(bytes_used) FILTER (WHERE event = 'Stop') AS bytes_used,
         max(account_session_time) FILTER (WHERE event = 'Stop') AS session_seconds,
         max(account_terminate_cause) FILTER (WHERE event = 'Stop') AS terminate_cause,
         max(framed_ip_address) AS framed_ip_address
  FROM connection_events
  WHERE account_session_id IS NOT NULL
  GROUP BY device_kind, device_id, account_session_id
)
SELECT device_kind, device_id, account_session_id, started_at, stopped_at,
       stopped_at - started_at AS duration, session_seconds,
       input_bytes, output_bytes, bytes_used, terminate_cause, framed_ip_address,
       stopped_at IS NULL AS is_open
FROM s`,
		Columns: []Column{
			{Name: "device_kind", Type: Varchar, Key: true, Comment: "Kind of the device's identity."},
			{Name: "device_id", Type: Varchar, Key: true, Comment: "Value of the device's identity."},
			{Name: "account_session_id", Type: Varchar, Key: true, Comment: "RADIUS accounting session id shared by the Start and Stop."},
			{Name: "started_at", Type: TimestampTZ, Comment: "When the session started (the Start event; NULL if only the Stop is loaded, e.g. the Start is older than retention)."},
			{Name: "stopped_at", Type: TimestampTZ, Comment: "When the session stopped (the Stop event); NULL while the session is open."},
			{Name: "duration", Type: "INTERVAL", Comment: "stopped_at − started_at; NULL for an open session."},
			{Name: "session_seconds", Type: BigInt, Comment: "Session length in seconds as the network reported it on Stop (AccountSessionTime)."},
			{Name: "input_bytes", Type: BigInt, Comment: "Bytes received from the device, from the Stop."},
			{Name: "output_bytes", Type: BigInt, Comment: "Bytes sent to the device, from the Stop."},
			{Name: "bytes_used", Type: BigInt, Comment: "Bytes used in the session, from the Stop."},
			{Name: "terminate_cause", Type: Varchar, Comment: "Why the session ended, from the Stop."},
			{Name: "framed_ip_address", Type: Varchar, Comment: "IP address assigned for the session."},
			{Name: "is_open", Type: Boolean, Comment: "True while no Stop has been loaded for the session."},
		},
	}
}
