package logging

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(&buf, "info", "")
	if err != nil {
		t.Fatal(err)
	}
	log.Debug().Msg("hidden")
	log.Info().Str(Device, "iccid:1").Msg("shown")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("not one JSON line (a buffer is not a terminal): %q", buf.String())
	}
	if line["message"] != "shown" || line[Device] != "iccid:1" {
		t.Errorf("line = %v", line)
	}
	if ts, _ := line["time"].(string); !strings.HasSuffix(ts, "Z") {
		t.Errorf("time %q is not UTC", ts)
	}

	buf.Reset()
	log, _ = New(&buf, "debug", "console")
	log.Debug().Msg("console line")
	if !strings.Contains(buf.String(), "console line") || json.Valid(buf.Bytes()) {
		t.Errorf("console output = %q", buf.String())
	}

	for _, c := range []struct{ level, format string }{{"loud", ""}, {"info", "xml"}, {"", "json"}} {
		if _, err := New(&buf, c.level, c.format); err == nil {
			t.Errorf("New(%q, %q) accepted", c.level, c.format)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"https://thingspace.verizon.com", "https://thingspace.verizon.com"},
		{"https://user:hunter2@proxy.example:8443/base", "https://xxxxx@proxy.example:8443/base"},
		{"http://user@host", "http://xxxxx@host"},
		{"http://us er:pa%zz@host", "http://xxxxx@host"},
		{"not a url user:hunter2@host", "xxxxx@host"},
	} {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
