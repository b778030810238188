// Package aggregate decides and carries out the promo aggregate usage
// requests: which devices and months are asked for in which batches (at
// most 200 devices, at most a calendar month, at most six months back),
// when a request whose callback has not come is asked again or closed,
// and how a callback delivery is accepted and committed. ThingSpace
// answers such a request with a requestId and delivers the data later to
// a registered listener, so a run's aggregate step only asks (and, run
// once from the command line, waits a bounded time); what arrives later
// is stored by whichever listener is up.
//
// Plan is pure: the devices with their checkpoints and the requests still
// waiting in, the requests to send out. Step runs it against the
// warehouse and the API; Handler is the listener.
package aggregate
