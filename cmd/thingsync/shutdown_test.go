package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/thingsync/thingsync/extract/simulator"
	"github.com/thingsync/thingsync/load"
)

// SIGTERM while an analyst's read-only session holds the warehouse, a
// callback waits for the file and a scheduled run waits too: every wait
// gives up at the signal, the callback is answered 503 (ThingSpace sends it
// again) and the daemon exits 0 within 5 s.
func TestRunSIGTERMWhileTheFileIsHeld(t *testing.T) {
	w := newWorld(t, simulator.Options{Devices: 4})
	if code, out := w.run("sync"); code != 0 {
		t.Fatalf("first sync: exit %d\n%s", code, out)
	}
	// The analyst: a read-only session in this process, open until the end.
	reader, err := load.OpenReadOnly(context.Background(), w.db)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()

	d := startDaemon(t, w, map[string]string{
		"THINGSYNC_SCHEDULE":          "@every 1s",
		"THINGSYNC_RUN_BUDGET":        "0",
		"THINGSYNC_CALLBACK_URL":      "http://127.0.0.1:1/cb",
		"THINGSYNC_CALLBACK_USERNAME": "cb-user",
		"THINGSYNC_CALLBACK_PASSWORD": "cb-secret",
	})
	body, _ := json.Marshal(map[string]any{"username": "cb-user", "password": "cb-secret", "requestId": "r-1", "callbackCount": 1})
	answered := make(chan int, 1)
	go func() {
		resp, err := http.Post(d.base+"/cb", "application/json", bytes.NewReader(body))
		if err != nil {
			answered <- -1
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	waitFor(t, 30*time.Second, "the callback to wait for the file", func() bool {
		return strings.Contains(d.log(), "the warehouse file is held by another process")
	})
	waitFor(t, 30*time.Second, "a scheduled run to be due", func() bool {
		return strings.Contains(d.log(), `"trigger":"schedule"`)
	})

	start := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("the daemon did not exit within 15 s of SIGTERM while the file was held")
	}
	took := time.Since(start)
	code := 0
	if d.waitErr != nil {
		code = d.cmd.ProcessState.ExitCode()
	}
	t.Logf("exit %d %v after SIGTERM", code, took)
	if code != 0 || took > 5*time.Second {
		t.Errorf("SIGTERM with the file held: exit %d after %v, want 0 within 5 s", code, took)
	}
	select {
	case status := <-answered:
		if status != http.StatusServiceUnavailable {
			t.Errorf("the waiting callback was answered %d, want 503 (ThingSpace re-sends)", status)
		}
	case <-time.After(5 * time.Second):
		t.Error("the waiting callback got no answer")
	}
}
