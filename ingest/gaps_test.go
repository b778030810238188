package ingest

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/thingsync/thingsync/extract"
	"github.com/thingsync/thingsync/load"
)

func day(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

var (
	devA = extract.DeviceID{Kind: "imei", ID: "2"}
	devB = extract.DeviceID{Kind: "imei", ID: "1"}
	devC = extract.DeviceID{Kind: "iccid", ID: "9"}
	// The ledger lists gaps stream by stream.
	ledger = []load.Gap{
		{Stream: "connections", Device: devA, From: day("2026-03-01"), To: day("2026-03-03")},
		{Stream: "connections", Device: devC, From: day("2026-02-10"), To: day("2026-02-11")},
		{Stream: "usage", Device: devA, From: day("2026-03-05"), To: day("2026-03-06")},
		{Stream: "usage", Device: devA, From: day("2026-03-08"), To: day("2026-03-12")},
		{Stream: "usage", Device: devB, From: day("2026-01-31"), To: day("2026-02-02")},
		{Stream: "rated", Device: devB, From: day("2025-12-01"), To: day("2026-04-01")},
	}
)

func TestPlanGaps(t *testing.T) {
	usage := map[string]bool{"usage": true}
	both := map[string]bool{"usage": true, "connections": true}
	for _, tc := range []struct {
		name    string
		streams map[string]bool
		devices map[extract.DeviceID]bool
		want    GapPlan
	}{
		{name: "usage of every device", streams: usage, want: GapPlan{
			Ranges: map[string]map[extract.DeviceID][]extract.Range{"usage": {
				devA: {{From: day("2026-03-05"), To: day("2026-03-06")}, {From: day("2026-03-08"), To: day("2026-03-12")}},
				devB: {{From: day("2026-01-31"), To: day("2026-02-02")}},
			}},
			Devices:    []extract.DeviceID{devB, devA},
			Span:       extract.Range{From: day("2026-01-31"), To: day("2026-03-12")},
			DeviceDays: 1 + 4 + 2,
		}},
		{name: "both streams of one device", streams: both, devices: map[extract.DeviceID]bool{devA: true}, want: GapPlan{
			Ranges: map[string]map[extract.DeviceID][]extract.Range{
				"connections": {devA: {{From: day("2026-03-01"), To: day("2026-03-03")}}},
				"usage":       {devA: {{From: day("2026-03-05"), To: day("2026-03-06")}, {From: day("2026-03-08"), To: day("2026-03-12")}}},
			},
			Devices:    []extract.DeviceID{devA},
			Span:       extract.Range{From: day("2026-03-01"), To: day("2026-03-12")},
			DeviceDays: 2 + 1 + 4,
		}},
		{name: "a device without gaps in the stream", streams: usage, devices: map[extract.DeviceID]bool{devC: true},
			want: GapPlan{Ranges: map[string]map[extract.DeviceID][]extract.Range{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, PlanGaps(ledger, tc.streams, tc.devices)); diff != "" {
				t.Errorf("PlanGaps mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGapsLeft(t *testing.T) {
	for _, tc := range []struct {
		name    string
		streams map[string]bool
		devices map[extract.DeviceID]bool
		want    string
	}{
		{name: "both streams", streams: map[string]bool{"usage": true, "connections": true},
			want: "connections 3 device-days on 2 devices, usage 7 device-days on 2 devices"},
		{name: "one device", streams: map[string]bool{"usage": true, "connections": true}, devices: map[extract.DeviceID]bool{devB: true},
			want: "usage 2 device-days on 1 devices"},
		{name: "none left", streams: map[string]bool{"connections": true}, devices: map[extract.DeviceID]bool{devB: true}, want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := GapsLeft(ledger, tc.streams, tc.devices); got != tc.want {
				t.Errorf("GapsLeft = %q, want %q", got, tc.want)
			}
		})
	}
}
