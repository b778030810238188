// Package extract talks to ThingSpace: the API client (auth, retries, rate
// limit, paging), the device walker and window planner, the callback
// receiver, and the record types the API sends, decoded tolerantly.
package extract
