package main

import (
	"context"
	"fmt"
	"runtime/debug"
)

// version is the release, set when building:
// go build -ldflags "-X main.version=v1.2.3" ./cmd/billing (the Makefile does).
var version string

// versionString returns version, or else what the build recorded: the
// module's version when installed with `go install ...@v1.2.3`, or the VCS
// revision of a build from a checkout.
func versionString() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, modified := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if modified {
		rev += "-dirty"
	}
	return "devel-" + rev
}

func runVersion(ctx context.Context, inv *invocation) error {
	if err := inv.parse(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(inv.stdout, "billing %s\n", versionString())
	return err
}
