//go:build tools

// Package tools only records the language host's main package as a dependency, so that
// `go mod tidy` here keeps sdk/v3 v3.79.0 (the source of the host, see go.mod).
package tools

import _ "github.com/pulumi/pulumi/sdk/v3/python/cmd/pulumi-language-python"
