package main

import (
	"strings"
	"testing"

	"github.com/thingsync/thingsync/extract/simulator"
)

// check against the simulator: everything good; then a wrong password:
// exactly one login attempt and a message that says what is wrong.
func TestCheck(t *testing.T) {
	w, url := aggregateWorld(t, simulator.Options{Devices: 5})
	code, out := w.run("check")
	if code != 3 || !strings.Contains(out, "FAIL callbacks") || !strings.Contains(out, "ok   login") || !strings.Contains(out, "first page: 5 devices") {
		t.Errorf("check before registration: exit %d, want 3 and the callback named:\n%s", code, out)
	}
	// A sync registers the listener; then every check passes.
	if code, out := w.run("sync"); code != 0 {
		t.Fatalf("sync: exit %d\n%s", code, out)
	}
	code, out = w.run("check")
	if code != 0 || !strings.Contains(out, "all checks passed") || !strings.Contains(out, url) || !strings.Contains(out, "is writable") {
		t.Errorf("check: exit %d, want 0:\n%s", code, out)
	}

	before := w.sim.Stats().Logins
	w.env["THINGSPACE_PASSWORD"] = "wrong-password"
	code, out = w.run("check")
	if code != 3 || !strings.Contains(out, "rejected the username or password") {
		t.Errorf("check with a wrong password: exit %d, want 3 and a plain message:\n%s", code, out)
	}
	if strings.Contains(out, "wrong-password") {
		t.Errorf("the password reached the output:\n%s", out)
	}
	if n := w.sim.Stats().Logins - before; n != 1 {
		t.Errorf("%d login attempts, want exactly 1", n)
	}
}
