// Package simulator is a faithful stand-in for the ThingSpace M2M API: an
// http.Handler that serves a deterministic account generated from a seed,
// behaves as the vendor's documentation describes (docs/design.md gathers
// what the client relies on beyond the data pages), injects on demand
// each fault a client must survive, and tells the ground truth a complete
// warehouse must hold. Tests mount it in httptest.NewServer; `thingsync
// simulate` serves it (flags: Options.RegisterFlags).
//
// # Endpoints
//
//	POST   /api/ts/v1/oauth2/token                          Basic auth, grant_type=client_credentials
//	POST   /api/m2m/v1/session/login                        {"username","password"} → {"sessionToken"}
//	POST   /api/m2m/v1/session/logout
//	POST   /api/m2m/v1/devices/actions/list                 accountName, largestDeviceIdSeen, maxNumberOfDevices
//	POST   /api/m2m/v1/devices/usage/actions/list           deviceId{kind,id}, earliest, latest
//	POST   /api/m2m/v1/devices/connections/actions/listHistory
//	POST   /api/m2m/v1/devices/usage/actions/ratedusage     deviceId (an MDN device)
//	POST   /api/m2m/v1/devices/usage/actions/promoaggregateusage  → {"requestId"}, then two callbacks
//	POST   /api/m2m/v1/callbacks/{account}                  {"name","url","username","password"}
//	GET    /api/m2m/v1/callbacks/{account}
//	DELETE /api/m2m/v1/callbacks/{account}/name/{service}
//
// Every m2m call needs a bearer token (else HTTP 401 with the gateway's
// {"fault":{"code":900902|900901,...}}) and, login excepted, a VZ-M2M-Token
// session (else HTTP 400 INPUT_INVALID.SessionToken.Invalid or
// REQUEST_FAILED.SessionToken.Expired). Errors use the vendor's body
// {"errorCode":"UnifiedWebService.<CLASS>.<Code>","errorMessage"}.
//
// # The account
//
// Devices carry one to four identifiers (iccid 20 digits, imei 15, mdn 10,
// msisdn 11, eid 32, meid 14 hex, esn 11) with kinds spelled in mixed case
// ("ICCID", "iccId", "Imei", …); about 5% are "deactive" (quiet from a day
// some weeks back), a few "suspend", about 6% silent (no usage, no
// sessions). With Options.Fleet (a FleetMix) the devices instead get
// activity classes in its proportions (Class: daily, intermittent,
// dormant, suspended, deactivated). Every device is a hash of (seed,
// device) and every device-day of (seed, device, day): nothing is stored
// (a request generates the devices it names, an identifier is undone into
// its device's number), the same seed and clock give the same bytes on
// every machine, and a million devices cost no more memory than ten.
// The device list's connected and lastConnectionDate agree with the
// connection history served at the clock's time: connected while a
// session is open, lastConnectionDate the start of the latest session
// (within retention; "" when none), sent in the device's offset.
// Usage: one record a day (some idle; in a fleet, only days with a
// session or, dormant, SMS), bytesUsed and smsUsed as JSON
// numbers, MoSms/MtSms/domesticUsage/internationalUsage as string
// attributes, source "Raw Usage", timestamps YYYY-MM-DDT00:00:00Z.
// Connections: up to three non-overlapping sessions a day, Start and Stop
// events with the connection page's full attribute set (values strings,
// AccountSessionId 8 hex digits unique per device, BytesUsed =
// InputBytes + OutputBytes on Stop), occurredAt in the device's offset
// ("-05:00", "Z", "+02:00"); a day's last session may run past midnight and
// one still running at the clock's time is served as a Start alone.
//
// # Behaviour
//
// History pages hold at most 500 records (Options.HistoryPageSize), oldest
// first, with 202 and hasMoreData while more remain; earliest and latest
// are both inclusive, so the documented next request (earliest = the last
// record's time) gets the boundary record again. Only the last 12 months
// (by the clock) are served. The three most recent days are provisional:
// SMS counts, and a little of the bytes, grow until a day is three days
// old. Sessions expire after 20 idle minutes and bearer tokens after an
// hour, by the injected Clock; five consecutive failed logins lock the
// account for good. Faults (Options.Faults, SetFaults) and data quirks
// (Options.Quirks) are described on their fields.
//
// # Choices where the vendor's pages are silent
//
//   - Usage and connection history echo the device's warehouse identity
//     (the first of iccid, imei, meid, esn, mdn, msisdn, eid it has) as
//     deviceId, whatever identifier the request used.
//   - Rated usage covers the billing cycle containing today, up to two days
//     ago (usage is "two days in arrears"); a device without an MDN answers
//     REQUEST_FAILED.DeviceNotFound.
//   - Promo aggregate results go to the listener registered as
//     "DeviceUsage" (the likely service; the vendor does not name it);
//     without one the request fails with
//     REQUEST_FAILED.CallbackNotRegistered. The completion
//     callback is delivered (with its re-sends) before the data callback.
//     The request accepts "deviceIds" (the example) and "deviceId" (the
//     table). Period at most one month, start at most six months before
//     today, 1–200 ICCIDs, each a distinct INPUT_INVALID error.
//   - A lock-out answers REQUEST_FAILED.UserLocked; a malformed login body
//     answers INPUT_INVALID.RequestUndefined and does not count towards it.
//   - A failing device (Faults.FailDevices), and a device-list request past
//     Faults.FailDeviceListAfter devices, answer HTTP 500
//     REQUEST_FAILED.InternalError; injected 5xx are 500
//     REQUEST_FAILED.UnexpectedError, 502 with an HTML body (a gateway), and
//     503 REQUEST_FAILED.ServiceUnavailable; throttling answers 429
//     REQUEST_FAILED.TooManyRequests.
//   - A history request spanning more than Faults.MaxRange (latest −
//     earliest) is refused with HTTP 400 INPUT_INVALID.DateRange, an
//     errorMessage naming the limit, before any other check of the range
//     (counted in Stats.RangesRefused). The vendor publishes neither such
//     a limit nor its error: the code is the one the aggregate endpoint
//     uses for its period. A range that is merely slow
//     (Faults.SlowRange) fails as the vendor documents a timeout:
//     REQUEST_FAILED.UnexpectedError.
//   - Rates (RateCeiling, Stats.PeakRPS) and the 60 s of CacheRepeats are
//     measured on the wall clock; expiries, retention and revisions follow
//     the injected Clock.
package simulator
