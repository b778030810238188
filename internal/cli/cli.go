// Package cli holds the conventions every thingsync command follows on the
// command line: what its help shows (synopsis, description, every flag as
// --flag with its default, the variables it reads), how a bad flag is
// reported, and which command a mistyped name most likely meant.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/thingsync/thingsync/config"
)

// FlagSet builds a command's flag set. usage is the command's synopsis
// lines (without the program's name), then after a blank line what it
// does; env are the variables the command reads. -h prints the help to
// out; a bad flag is an error (see Parse), without the listing.
func FlagSet(name, usage string, out io.Writer, env []config.Variable) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() { Help(out, fs, usage, env) }
	return fs
}

// Help writes a command's help.
func Help(w io.Writer, fs *flag.FlagSet, usage string, env []config.Variable) {
	synopsis, desc, _ := strings.Cut(usage, "\n\n")
	for i, line := range strings.Split(synopsis, "\n") {
		lead := "Usage: "
		if i > 0 {
			lead = "       "
		}
		fmt.Fprintf(w, "%sthingsync %s\n", lead, strings.TrimSpace(line))
	}
	if desc = strings.TrimSpace(desc); desc != "" {
		fmt.Fprintf(w, "\n%s\n", desc)
	}
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		if n == 0 {
			fmt.Fprintln(w, "\nFlags:")
		}
		n++
		kind, text := flag.UnquoteUsage(f)
		head := "  --" + f.Name
		if _, isBool := f.Value.(interface{ IsBoolFlag() bool }); !isBool && kind != "" {
			head += " " + kind
		}
		low := strings.ToLower(text)
		if !strings.Contains(low, "default") && !strings.Contains(low, "required") {
			def := f.DefValue
			if def == "" {
				def = "none"
			}
			text += " (default: " + def + ")"
		}
		fmt.Fprintf(w, "%s\n      %s\n", head, text)
	})
	if n == 0 {
		fmt.Fprintln(w, "\nFlags: none")
	}
	if len(env) == 0 {
		fmt.Fprintln(w, "\nEnvironment: none read")
		return
	}
	fmt.Fprintln(w, "\nEnvironment:")
	for _, v := range env {
		text := v.Meaning
		if v.Default != "" {
			text += " (default: " + v.Default + ")"
		}
		fmt.Fprintf(w, "  %-31s %s\n", v.Name, text)
	}
}

// Variables are the variables of config.Variables named in names, in
// that order.
func Variables(names []string) []config.Variable {
	known := map[string]config.Variable{}
	for _, v := range config.Variables() {
		known[v.Name] = v
	}
	out := make([]config.Variable, 0, len(names))
	for _, name := range names {
		v, ok := known[name]
		if !ok {
			v = config.Variable{Name: name}
		}
		out = append(out, v)
	}
	return out
}

// Parse parses flags. -h prints the help and reports it (help true, no
// error); a bad flag is an error naming the flag as --flag, as the help
// does, and the way to the listing.
func Parse(fs *flag.FlagSet, args []string) (help bool, err error) {
	// The flag package prints the usage on every error; only -h wants it.
	usage := fs.Usage
	fs.Usage = func() {}
	err = fs.Parse(args)
	fs.Usage = usage
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage()
			return true, nil
		}
		// A flag as the flag package names it in its errors: -name.
		flagStyle := regexp.MustCompile(`(^|[ :])-([A-Za-z][\w-]*)`)
		msg := flagStyle.ReplaceAllString(err.Error(), "$1--$2")
		return false, fmt.Errorf("%s: %s (thingsync %s -h lists the flags)", fs.Name(), msg, fs.Name())
	}
	return false, nil
}

// AsksHelp tells whether the flags ask for help: then the command prints
// it without reading the environment, which may not be set up yet.
func AsksHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// Nearest is the name in names a mistyped name most likely meant, if one
// is near enough to suggest (ok false: none).
func Nearest(name string, names []string) (string, bool) {
	best, bestDist := "", 3
	for _, n := range names {
		if d := editDistance(strings.ToLower(name), n); d < bestDist {
			best, bestDist = n, d
		}
	}
	return best, best != "" && bestDist < len(best)
}

// editDistance counts the insertions, deletions, substitutions and swaps
// of adjacent letters that turn a into b (snyc -> sync is one).
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range rb {
		d[0][j+1] = j + 1
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
