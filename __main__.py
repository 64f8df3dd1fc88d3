"""private-registry: a company's own Docker registry behind nginx TLS, declared with Pulumi.

Thin on purpose: read and validate the stack config, build the top component, export its outputs.
"""

import pulumi

from components.config import NAMESPACE, ConfigError, load_settings
from components.docker_common import StackScope
from components.docker_host import docker_provider
from components.private_registry import PrivateRegistry, PrivateRegistryArgs
from components.pulumi_config import read_raw_config, stack_secrets, warn_about
from components.swarm_service import check_swarm_names

scope = StackScope(project=pulumi.get_project(), stack=pulumi.get_stack())
try:
    settings = load_settings(read_raw_config(NAMESPACE))
    if settings.is_swarm:
        check_swarm_names(scope)
except ConfigError as error:
    # RunError: Pulumi prints the message alone, without a Python traceback.
    raise pulumi.RunError(str(error)) from None
warn_about(settings)

# Another engine or Swarm manager than the local one: every Docker resource goes through this provider.
opts = (
    pulumi.ResourceOptions(providers={"docker": docker_provider("docker-host", settings.docker_host)})
    if settings.docker_host is not None
    else None
)
registry = PrivateRegistry(
    "registry",
    PrivateRegistryArgs(
        settings=settings,
        secrets=stack_secrets(settings),
        scope=scope,
    ),
    opts=opts,
)

pulumi.export("registryEndpoint", registry.registry_endpoint)
pulumi.export("registryUrl", registry.registry_url)
pulumi.export("uiUrl", registry.ui_url)
pulumi.export("caCertPem", registry.ca_cert_pem)
pulumi.export("caCertNotAfter", registry.ca_cert_not_after)
pulumi.export("serverCertNotAfter", registry.server_cert_not_after)
pulumi.export("networkName", registry.network_name)
pulumi.export("dockerCertsDir", registry.docker_certs_dir)
pulumi.export("maintenanceContainer", registry.maintenance_container)
pulumi.export("gcRunCommand", registry.gc_run_command)
pulumi.export("metricsEndpoints", registry.metrics_endpoints)
pulumi.export("prometheusScrapeConfig", registry.prometheus_scrape_config)
pulumi.export("mirrors", registry.mirrors)
pulumi.export("dockerDaemonJson", registry.docker_daemon_json)
pulumi.export("containerdHostsToml", registry.containerd_hosts_toml)
