package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	billing "github.com/stackfordevs/billing"
)

// A command is one entry of the command table: its words, its usage and the
// function that runs it. The function declares its flags on inv.flags and
// calls inv.parse before doing anything else, so that --help shows every
// flag it has without a second list to keep in step.
type command struct {
	// name is the words after "billing", such as "project create".
	name string
	// synopsis is the flags in short, such as "--tenant ID --name N [--json]".
	synopsis string
	// summary is one line for the list of commands.
	summary string
	// about, when set, is printed under the usage line of --help.
	about string
	// env names the environment variables the command reads; each one is
	// described in envDocs.
	env []string
	run func(ctx context.Context, inv *invocation) error
}

// invocation is one run of a command.
type invocation struct {
	cmd    *command
	args   []string
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
	flags  *flag.FlagSet
	// listening, when set, is called in a goroutine of its own with the
	// service's URL once `serve` listens; `demo` sets up a project on the
	// running service with it.
	listening func(url string)
}

// errHelp is returned by parse when --help was asked for and the usage has
// been printed; run turns it into success.
var errHelp = errors.New("help requested")

// parse parses the flags declared on inv.flags. On -h or --help it prints
// the command's usage to stdout and returns errHelp. Arguments that are not
// flags are refused, so that a misplaced word is not silently ignored.
func (inv *invocation) parse() error {
	err := inv.flags.Parse(inv.args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		printCommandUsage(inv.stdout, inv.cmd, inv.flags)
		return errHelp
	case err != nil:
		return usageError{fmt.Errorf("%s (see billing %s --help)", flagMessage(err), inv.cmd.name)}
	case inv.flags.NArg() > 0:
		return usageError{fmt.Errorf("unexpected argument %q (see billing %s --help)", inv.flags.Arg(0), inv.cmd.name)}
	}
	return nil
}

// flagMessage rewords the flag package's errors with flags spelled as
// --help shows them.
func flagMessage(err error) string {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return "unknown flag --" + name
	}
	return singleDashFlag.ReplaceAllString(msg, "$1--$2")
}

// singleDashFlag matches a flag name as the flag package writes it, "-name".
var singleDashFlag = regexp.MustCompile(`(^|\s)-([a-z][a-z-]*)`)

// require returns an error naming the first flag in name, value pairs whose
// value is empty.
func require(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if strings.TrimSpace(pairs[i+1]) == "" {
			return usageError{fmt.Errorf("--%s is required", pairs[i])}
		}
	}
	return nil
}

// usageError is a mistake in how a command was called; the process exits
// with status 2 for it, as the flag package does, and 1 for other errors.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// commandError is the error of a named command, printed as one line:
// "billing NAME: MESSAGE".
type commandError struct {
	name string
	err  error
}

func (e *commandError) Error() string { return "billing " + e.name + ": " + plainMessage(e.err) }
func (e *commandError) Unwrap() error { return e.err }

// plainMessage is err as one sentence for a person: a billing error shows
// its caller-safe message in place of its codes, with any context around it.
func plainMessage(err error) string {
	var be *billing.Error
	if errors.As(err, &be) {
		return strings.Replace(err.Error(), be.Error(), be.Message, 1)
	}
	return err.Error()
}

// dispatch finds the command named by the leading words of args and runs it.
func dispatch(ctx context.Context, table []command, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		printCommandList(stderr, "", table)
		return usageError{errors.New("billing: no command given (see billing --help)")}
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 && args[0] == "help" {
			return dispatch(ctx, table, append(args[1:], "--help"), getenv, stdout, stderr)
		}
		printCommandList(stdout, "", table)
		return nil
	case "-version", "--version":
		args = append([]string{"version"}, args[1:]...)
	}
	cmd, rest := lookup(table, args)
	if cmd == nil {
		if group := groupOf(table, args[0]); len(group) > 0 && (len(args) == 1 || isHelp(args[1])) {
			if len(args) == 1 {
				printCommandList(stderr, args[0]+" ", group)
				return usageError{fmt.Errorf("billing %s: needs a command (see billing %s --help)", args[0], args[0])}
			}
			printCommandList(stdout, args[0]+" ", group)
			return nil
		} else if len(group) > 0 {
			return usageError{fmt.Errorf("billing %s: unknown command %q (see billing %s --help)", args[0], args[1], args[0])}
		}
		return usageError{fmt.Errorf("billing: unknown command %q (see billing --help)", args[0])}
	}
	inv := &invocation{cmd: cmd, args: rest, getenv: getenv, stdout: stdout, stderr: stderr,
		flags: flag.NewFlagSet("billing "+cmd.name, flag.ContinueOnError)}
	inv.flags.SetOutput(io.Discard)
	inv.flags.Usage = func() {}
	return runInvocation(ctx, inv)
}

// runInvocation runs one command and names it in its error.
func runInvocation(ctx context.Context, inv *invocation) error {
	err := inv.cmd.run(ctx, inv)
	if errors.Is(err, errHelp) {
		return nil
	}
	if err != nil {
		return &commandError{name: inv.cmd.name, err: err}
	}
	return nil
}

// lookup returns the command whose name is the longest run of leading words
// of args, and the arguments after it.
func lookup(table []command, args []string) (*command, []string) {
	var best *command
	for i := range table {
		words := strings.Fields(table[i].name)
		if len(words) <= len(args) && slices.Equal(words, args[:len(words)]) &&
			(best == nil || len(words) > len(strings.Fields(best.name))) {
			best = &table[i]
		}
	}
	if best == nil {
		return nil, nil
	}
	return best, args[len(strings.Fields(best.name)):]
}

// groupOf returns the commands whose first word is word, such as the
// "tenant" commands.
func groupOf(table []command, word string) []command {
	var group []command
	for _, c := range table {
		if strings.HasPrefix(c.name, word+" ") {
			group = append(group, c)
		}
	}
	return group
}

func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help"
}

// printCommandList prints the usage of the whole program, or of the group
// of commands whose names start with prefix.
func printCommandList(w io.Writer, prefix string, table []command) {
	fmt.Fprintf(w, "usage: billing %s<command> [flags]\n\ncommands:\n", prefix)
	for _, c := range table {
		line := c.name
		if c.synopsis != "" {
			line += " " + c.synopsis
		}
		if len(line) > 34 {
			fmt.Fprintf(w, "  %s\n  %-34s %s\n", line, "", c.summary)
		} else {
			fmt.Fprintf(w, "  %-34s %s\n", line, c.summary)
		}
	}
	fmt.Fprint(w, "\n`billing <command> --help` shows a command's flags and the environment variables it reads.\n")
}

// printCommandUsage prints one command's usage: its synopsis, summary,
// flags and environment variables.
func printCommandUsage(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: billing %s", c.name)
	if c.synopsis != "" {
		fmt.Fprintf(w, " %s", c.synopsis)
	}
	fmt.Fprintf(w, "\n\n%s\n", upperFirst(c.summary)+".")
	if c.about != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.about))
	}
	var flags strings.Builder
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		head := "--" + f.Name
		if name != "" {
			head += " " + name
		}
		def := ""
		if f.DefValue != "" && f.DefValue != "false" {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(&flags, "  %-24s %s%s\n", head, usage, def)
	})
	fmt.Fprintf(&flags, "  %-24s %s\n", "-h, --help", "show this help")
	fmt.Fprintf(w, "\nflags:\n%s", flags.String())
	if len(c.env) > 0 {
		fmt.Fprint(w, "\nenvironment:\n")
		for _, name := range c.env {
			fmt.Fprintf(w, "  %-36s %s\n", name, envDocs[name])
		}
	}
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
