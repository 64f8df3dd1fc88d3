# Runs inside the rootfs (chroot) after the packages are installed.
chmod 755 /usr/local/bin/ui-standin
mkdir -p /conf
