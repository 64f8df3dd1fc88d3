"""What the tests and the benchmark share: the program run under Pulumi's mocks (`program`), the realizer that
turns its registrations into real TLS material and Docker objects (`realizer` and its providers), and the
clients that talk to a running stack (`clients`, `registry_api`).

`python -m harness up|down --config <stack file>` brings a stack up or down on the local Docker engine.
"""
