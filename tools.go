//go:build tools

// Package billing pins the tools the Makefile and the tests run, so that
// their versions live in go.mod.
package billing

import (
	_ "github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen"
	_ "github.com/stripe/stripe-mock"
	_ "gotest.tools/gotestsum"
)
