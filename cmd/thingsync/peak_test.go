package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// A child's ru_maxrss starts at its parent's resident size: Linux keeps
// the high-water mark of the memory a process had before exec, and Go
// starts children with vfork, sharing the test binary's memory until the
// exec. The test binary grows to hundreds of MB running the in-process
// tests, so a child measured directly reads as large as the test binary.
// A relay process (the test binary again, just started and small) starts
// the measured command and reports the command's own peak to a file.
const relayEnv = "THINGSYNC_TEST_RELAY"

// relayMain runs in the relay: the measured command is this binary with
// the same arguments and environment. It exits as the command did.
func relayMain(report string) int {
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	cmd.Env = withoutEnv(os.Environ(), relayEnv)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// The relay killed (a test's time limit) takes the command with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		fmt.Fprintln(os.Stderr, "relay:", err)
		return 125
	}
	peak := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10 // KiB on Linux
	if werr := os.WriteFile(report, []byte(strconv.FormatInt(peak, 10)), 0o600); werr != nil {
		fmt.Fprintln(os.Stderr, "relay:", werr)
		return 125
	}
	if status, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && status.Signaled() {
		return 128 + int(status.Signal())
	}
	return cmd.ProcessState.ExitCode()
}

func withoutEnv(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// measured makes cmd (this test binary as thingsync) run through a relay;
// peak, after cmd has exited, is the command's own peak RSS in bytes.
func measured(t *testing.T, cmd *exec.Cmd) (peak func() int64) {
	t.Helper()
	report := filepath.Join(t.TempDir(), "peak")
	cmd.Env = append(cmd.Env, relayEnv+"="+report)
	return func() int64 {
		t.Helper()
		b, err := os.ReadFile(report)
		if err != nil {
			t.Fatalf("the relay reported no peak RSS: %v", err)
		}
		n, err := strconv.ParseInt(string(b), 10, 64)
		if err != nil {
			t.Fatalf("the relay's peak RSS %q: %v", b, err)
		}
		return n
	}
}

// The relay reports the command's peak, not the test binary's: a child
// that holds little reads as little however large this process is.
func TestMeasuredPeakIsTheChilds(t *testing.T) {
	ballast := make([]byte, 300<<20)
	for i := range ballast {
		ballast[i] = 1 // resident, not just reserved
	}
	cmd := exec.Command(os.Args[0], "version")
	cmd.Env = append(os.Environ(), "THINGSYNC_TEST_MAIN=1")
	peak := measured(t, cmd)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("version: %v\n%s", err, out)
	}
	direct := exec.Command(os.Args[0], "version")
	direct.Env = cmd.Env[:len(cmd.Env)-1]
	if out, err := direct.CombinedOutput(); err != nil {
		t.Fatalf("version: %v\n%s", err, out)
	}
	got, naive := peak(), direct.ProcessState.SysUsage().(*syscall.Rusage).Maxrss<<10
	t.Logf("peak RSS of `thingsync version`: %d MB through the relay, %d MB read directly with %d MB held here", got>>20, naive>>20, len(ballast)>>20)
	if got > 100<<20 {
		t.Errorf("peak RSS through the relay %d MB: it counts this process's %d MB", got>>20, len(ballast)>>20)
	}
	if ballast[len(ballast)-1] != 1 {
		t.Fatal("ballast lost")
	}
}
