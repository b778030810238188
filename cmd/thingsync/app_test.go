package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// run drives the program as main does, with its own environment.
func run(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	a := &App{Stdout: &out, Stderr: &errb, Version: "test",
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	err := a.Run(context.Background(), args)
	code = ExitCode(err, &errb)
	return code, out.String(), errb.String()
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		code     int
		contains []string
	}{
		{"no command", nil, nil, 2, []string{"Commands:", "sync", "backfill", "simulate"}},
		{"help", nil, []string{"help"}, 0, []string{"Commands:"}},
		{"unknown command", nil, []string{"frobnicate"}, 2, []string{`unknown command "frobnicate"`}},
		{"version", nil, []string{"version"}, 0, []string{"thingsync test"}},
		{"sync without configuration names every missing variable", map[string]string{"THINGSYNC_CONCURRENCY": "zero"}, []string{"sync"}, 2,
			[]string{"THINGSPACE_CLIENT_ID", "THINGSPACE_CLIENT_SECRET", "THINGSPACE_USERNAME", "THINGSPACE_PASSWORD", "THINGSPACE_ACCOUNT_NAME", "THINGSYNC_CONCURRENCY"}},
		{"bad flag", nil, []string{"simulate", "--devices", "many"}, 2, []string{"invalid value"}},
		{"command help", nil, []string{"simulate", "-h"}, 0, []string{"Usage: thingsync simulate", "-devices"}},
		{"help for a command", nil, []string{"help", "simulate"}, 0, []string{"-rate-429"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, tt.env, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			for _, s := range tt.contains {
				if !strings.Contains(out+errOut, s) {
					t.Errorf("output lacks %q:\n%s%s", s, out, errOut)
				}
			}
		})
	}
}
