"""STAND-IN provider plugins for the real Pulumi CLI: `pulumi-resource-docker`, `-tls` and `-random`.

The real plugins (pulumi-docker 5.2.0, pulumi-tls 5.6.2, pulumi-random 4.21.4) cannot be built here: the Go
module proxy this project reaches refuses their `provider/` modules. These executables (`bin/`) take their
place on the engine's PATH and implement the ResourceProvider gRPC service (`server.py`) with the realizer's
provider functions (`harness/docker_provider.py`, `swarm_provider.py`, `tls_provider.py`,
`random_provider.py`) and the replacement rules the realizer encodes from the providers' sources. With them,
planning, diffs, aliases, replacement order, secrets, outputs, `--diff`, `--expect-no-changes`, StackReference
and `--policy-pack` are the real engine's; what the providers do on Docker (and the TLS and random material)
is ours. Where the stand-ins follow the real provider rather than the realizer (in-place updates the realizer
does as replacements, delete-before-replace for named objects), the module that does it says so.
"""
