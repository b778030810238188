// Command thingsync keeps a DuckDB warehouse in step with Verizon
// ThingSpace. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/thingsync/thingsync/config"
)

// version is stamped by the Makefile from git describe.
var version = "dev"

func main() {
	config.RuntimeDefaults(os.LookupEnv)
	app := &App{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, LookupEnv: os.LookupEnv, Version: version, Program: os.Args[0]}
	os.Exit(runMain(app, os.Args[1:]))
}

// runMain runs the program as a process: signals, then the exit status.
func runMain(app *App, args []string) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		// First signal: stop taking work, finish the commit in flight.
		cancel()
		<-sigs
		// Second signal: the operator means it.
		fmt.Fprintln(os.Stderr, "thingsync: second signal, exiting now")
		os.Exit(130)
	}()
	err := app.Run(ctx, args)
	signal.Stop(sigs)
	return ExitCode(err, app.Stderr)
}

// ExitCode maps Run's error to its exit status (exitOK…exitCannotRun) and
// prints it.
func ExitCode(err error, stderr interface{ Write([]byte) (int, error) }) int {
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil && !ee.Quiet {
			fmt.Fprintf(stderr, "thingsync: %v\n", ee.Err)
		}
		return ee.Code
	}
	fmt.Fprintf(stderr, "thingsync: %v\n", err)
	return 3
}
