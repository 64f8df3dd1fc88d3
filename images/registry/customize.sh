# Runs inside the rootfs (chroot) after the packages are installed.
ln -sf /usr/bin/docker-registry /bin/registry
mkdir -p /var/lib/registry
# The upstream image is Alpine: its shell and every tool (sh, wget, find, du, stat, date, ...) are busybox.
# Here too: busybox's applets come first in PATH and /bin/sh is busybox's ash, so scripts that run in the
# registry's image (the healthcheck, the maintenance script) meet busybox, not GNU tools.
mkdir -p /usr/local/bin
/bin/busybox --install -s /usr/local/bin
ln -sf /bin/busybox /bin/sh
