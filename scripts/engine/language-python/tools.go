//go:build tools

// Package tools only records the language host's main package as a dependency,
// so that `go mod tidy` keeps every module it needs.
package tools

import _ "github.com/pulumi/pulumi/sdk/v3/python/cmd/pulumi-language-python"
