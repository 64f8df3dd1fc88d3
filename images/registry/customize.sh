# Runs inside the rootfs (chroot) after the packages are installed.
ln -sf /usr/bin/docker-registry /bin/registry
mkdir -p /var/lib/registry
