//go:build tools

// Package tools only records the CLI's main package as a dependency, so that
// `go mod tidy` keeps every module it needs.
package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
