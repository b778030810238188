package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/thingsync/thingsync/extract/simulator"
)

// million measures a fleet of n devices of the default mix at the scale
// the nightly must fit (1,000,000 in the issue): a first sync of the last
// two days (the cheapest state a nightly can start from: 2.7 requests a
// device), the plan of the next run (sync --plan: the device list, every
// checkpoint, the idle rule, no history request), and that run itself,
// each as its own process of bin, on the simulator's real clock. It takes
// about 25 minutes at 1,000,000 devices on 2 cores, so make bench leaves
// it out unless -million is set.
func million(bin, dir string, n int, now time.Time) []result {
	s := serve(simulator.Options{Seed: 3, Devices: n, Fleet: simulator.DefaultFleetMix()})
	defer s.close()
	db := filepath.Join(dir, "million.duckdb")
	env := map[string]string{"THINGSYNC_STREAMS": "usage,connections,rated", "THINGSYNC_CONCURRENCY": "32",
		"THINGSYNC_START": now.AddDate(0, 0, -2).Format(time.DateOnly)}
	firstWall, firstRSS := sync(bin, s, db, env)

	// The plan's own cost: CPU seconds of its process per device.
	id, secret, user, pass := s.sim.Credentials()
	cmd := exec.Command(bin, "sync", "--plan")
	cmd.Env = append(os.Environ(), "THINGSPACE_BASE_URL="+s.url, "THINGSPACE_CLIENT_ID="+id, "THINGSPACE_CLIENT_SECRET="+secret,
		"THINGSPACE_USERNAME="+user, "THINGSPACE_PASSWORD="+pass, "THINGSPACE_ACCOUNT_NAME="+s.sim.AccountName(),
		"THINGSYNC_DB="+db, "THINGSYNC_RATE_LIMIT=50", "THINGSYNC_STREAMS="+env["THINGSYNC_STREAMS"], "THINGSYNC_LOG_LEVEL=warn")
	out, err := cmd.Output()
	if err != nil {
		check(fmt.Errorf("sync --plan: %w\n%s", err, out))
	}
	fmt.Fprintf(os.Stderr, "%s", out)
	planCPU := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()

	s.sim.ResetStats()
	nightWall, nightRSS := sync(bin, s, db, env)
	requests := 0
	for _, ep := range []string{"usage", "connections", "rated"} {
		requests += s.sim.Stats().Requests[ep]
	}
	name := fmt.Sprintf("fleet of %d devices (default mix)", n)
	return []result{
		{name, "first sync (2 days): wall, peak RSS", fmt.Sprintf("%s %dMB", firstWall.Round(time.Second), firstRSS>>20), ""},
		{"", "next run: history requests, wall", fmt.Sprintf("%d, %s", requests, nightWall.Round(time.Second)), fmt.Sprintf("%.1f h at 50 req/s", float64(requests)/50/3600)},
		{"", "next run: peak RSS", fmt.Sprintf("%d MB", nightRSS>>20), "≤ 600 MB"},
		{"", "plan (sync --plan): CPU per device", fmt.Sprintf("%.0f µs", float64(planCPU.Microseconds())/float64(n)), "device list and checkpoints included"},
	}
}
