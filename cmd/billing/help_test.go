package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// recordingEnv is a getenv that remembers the names asked for.
type recordingEnv struct {
	mu    sync.Mutex
	vars  map[string]string
	asked []string
}

func (r *recordingEnv) get(k string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked = append(r.asked, k)
	return r.vars[k]
}

func TestHelp(t *testing.T) {
	flagInSynopsis := regexp.MustCompile(`--[a-z][a-z-]*`)
	for _, cmd := range commands() {
		for _, h := range []string{"-h", "--help"} {
			t.Run(strings.ReplaceAll(cmd.name, " ", "_")+h, func(t *testing.T) {
				env := &recordingEnv{}
				var out, errOut bytes.Buffer
				args := append(strings.Fields(cmd.name), h)
				if err := run(context.Background(), args, env.get, &out, &errOut); err != nil {
					t.Fatalf("got %v, want success", err)
				}
				usage := out.String()
				if !strings.HasPrefix(usage, "usage: billing "+cmd.name) || errOut.Len() != 0 {
					t.Fatalf("got stdout %q and stderr %q, want the command's usage on stdout only", usage, errOut.String())
				}
				if len(env.asked) > 0 {
					t.Errorf("help read %v; want nothing read, nothing done", env.asked)
				}
				for _, name := range cmd.env {
					if !strings.Contains(usage, name+" ") || !strings.Contains(usage, envDocs[name]) {
						t.Errorf("got usage without %s and its description:\n%s", name, usage)
					}
				}
				flags := usage[strings.Index(usage, "\nflags:\n"):]
				for _, f := range flagInSynopsis.FindAllString(cmd.synopsis, -1) {
					if !strings.Contains(flags, "  "+f+" ") {
						t.Errorf("the synopsis names %s, which the flags do not list:\n%s", f, usage)
					}
				}
			})
		}
	}
}

func TestEveryVariableIsDescribed(t *testing.T) {
	used := map[string]bool{}
	for _, cmd := range commands() {
		for _, name := range cmd.env {
			used[name] = true
			if envDocs[name] == "" {
				t.Errorf("billing %s reads %s, which envDocs does not describe", cmd.name, name)
			}
		}
	}
	for name := range envDocs {
		if !used[name] {
			t.Errorf("envDocs describes %s, which no command lists", name)
		}
	}
	// Every variable the configuration reads is one serve lists.
	env := &recordingEnv{}
	if _, err := loadConfig(env.get); err != nil {
		t.Fatal(err)
	}
	serve, _ := lookup(commands(), []string{"serve"})
	for _, name := range env.asked {
		if !slices.Contains(serve.env, name) {
			t.Errorf("the configuration reads %s, which `billing serve --help` does not list", name)
		}
	}
}

func TestCommandErrors(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "cli.db")
	key := newMasterKey(t)
	for _, tc := range []struct {
		name    string
		args    []string
		vars    map[string]string
		want    string // the whole error, or its start when it ends with "..."
		wantOut string // on stderr
		usage   bool   // a mistake in how the command was called
	}{
		{name: "NoCommand", usage: true, args: nil, want: "billing: no command given (see billing --help)", wantOut: "usage: billing <command>"},
		{name: "UnknownCommand", usage: true, args: []string{"frobnicate"}, want: `billing: unknown command "frobnicate" (see billing --help)`},
		{name: "GroupAlone", usage: true, args: []string{"tenant"}, want: "billing tenant: needs a command (see billing tenant --help)",
			wantOut: "tenant create --name N"},
		{name: "UnknownInGroup", usage: true, args: []string{"project", "frob"}, want: `billing project: unknown command "frob" (see billing project --help)`},
		{name: "UnknownFlag", usage: true, args: []string{"serve", "--nope"}, want: "billing serve: unknown flag --nope (see billing serve --help)"},
		{name: "FlagValue", usage: true, args: []string{"token", "--ttl", "soon"}, want: `billing token: invalid value "soon" for flag --ttl: parse error (see billing token --help)`},
		{name: "StrayArgument", usage: true, args: []string{"migrate", "now"}, want: `billing migrate: unexpected argument "now" (see billing migrate --help)`},
		{name: "MissingFlag", usage: true, args: []string{"project", "create", "--name", "App"}, want: "billing project create: --tenant is required"},
		{name: "BadEnvironment", usage: true, args: []string{"sync", "--project", "prj_1", "--environment", "prod"},
			want: `billing sync: --environment must be test or live, not "prod"`},
		{name: "NoMasterKey", args: []string{"tenant", "create", "--name", "Acme"}, vars: map[string]string{"BILLING_DATABASE_URL": db},
			want: "billing tenant create: BILLING_MASTER_KEY is not set..."},
		{name: "BadMasterKey", args: []string{"tenant", "create", "--name", "Acme"},
			vars: map[string]string{"BILLING_DATABASE_URL": db, "BILLING_MASTER_KEY": "not base64!"},
			want: "billing tenant create: BILLING_MASTER_KEY: Current master key is not valid base64."},
		{name: "BadVariable", args: []string{"migrate"}, vars: map[string]string{"BILLING_USAGE_FLUSH_INTERVAL": "often"},
			want: `billing migrate: BILLING_USAGE_FLUSH_INTERVAL: must be a positive duration such as 5s, got "often"`},
		{name: "BadDatabaseURL", args: []string{"migrate"}, vars: map[string]string{"BILLING_DATABASE_URL": "mysql://db", "BILLING_MASTER_KEY": key},
			want: "billing migrate: BILLING_DATABASE_URL: the database cannot be opened: Unsupported database URL: use sqlite:PATH or postgres://..."},
		{name: "UnknownProject", usage: true, args: []string{"token", "--project", "prj_nope", "--sub", "u"},
			vars: map[string]string{"BILLING_DATABASE_URL": db, "BILLING_MASTER_KEY": key},
			want: "billing token: --project: there is no project prj_nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tc.args, envFor(tc.vars), &out, &errOut)
			if err == nil {
				t.Fatal("got nil, want an error")
			}
			got := err.Error()
			if prefix, ok := strings.CutSuffix(tc.want, "..."); ok && !strings.HasPrefix(got, prefix) || !ok && got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if strings.Contains(got, "code=") || strings.Count(got, "\n") > 0 {
				t.Errorf("got %q, want one plain line", got)
			}
			var usage usageError
			if isUsage := errors.As(err, &usage); isUsage != tc.usage {
				t.Errorf("got a usage error: %t, want %t (exit status 2 for usage, 1 otherwise)", isUsage, tc.usage)
			}
			if !strings.Contains(errOut.String(), tc.wantOut) {
				t.Errorf("got stderr %q, want it to contain %q", errOut.String(), tc.wantOut)
			}
		})
	}
}

func TestGroupHelp(t *testing.T) {
	for _, args := range [][]string{{"project", "--help"}, {"help", "project"}} {
		var out bytes.Buffer
		if err := run(context.Background(), args, envFor(nil), &out, &out); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if !strings.Contains(out.String(), "project create --tenant ID") || !strings.Contains(out.String(), "project rotate-secret") ||
			strings.Contains(out.String(), "tenant create") {
			t.Errorf("%v: got %q, want the project commands only", args, out.String())
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"help", "serve"}, envFor(nil), &out, &out); err != nil || !strings.HasPrefix(out.String(), "usage: billing serve") {
		t.Errorf("help serve: got %v %q", err, out.String())
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var out bytes.Buffer
		if err := run(context.Background(), args, envFor(nil), &out, &out); err != nil || out.String() != "billing "+versionString()+"\n" {
			t.Errorf("%v: got %v %q", args, err, out.String())
		}
	}
	if got := versionString(); got == "" {
		t.Error("got an empty version")
	}
}

func TestGenMasterKeyHelpPrintsNoKey(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"gen-master-key", "--help"}, envFor(nil), &out, &out); err != nil {
		t.Fatal(err)
	}
	if regexp.MustCompile(`(?m)^[A-Za-z0-9+/]{43}=$`).MatchString(out.String()) {
		t.Errorf("got %q, want usage and no key", out.String())
	}
}
