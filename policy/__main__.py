"""The private-registry policy pack. `pulumi preview --policy-pack policy` runs this file (docs/policy.md).

The Pulumi CLI starts it as `python -u -m pulumi.policy <engine address> <this directory>`, with this directory
first on sys.path: constructing the PolicyPack serves the Analyzer gRPC service and prints its port.
"""

from pulumi_policy import EnforcementLevel, PolicyPack
from registry_policies import PACK_NAME, POLICIES

PolicyPack(
    name=PACK_NAME,
    policies=POLICIES,
    # Each policy states its own level; this is only the default for a policy that would not.
    enforcement_level=EnforcementLevel.MANDATORY,
)
