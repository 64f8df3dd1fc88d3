# Runs inside the rootfs (chroot) after the packages are installed and rootfs/ is synced.
# Debian's redis-server 7.0 laid out like the official redis:7 image (docker-library/redis, Debian variant).

# The image's user: redis, uid/gid 999, made the way the official Dockerfile's first step makes it. Debian's
# package already made a system user redis (a dynamic id, home /var/lib/redis): it is replaced, and whatever
# the package gave it follows the new ids.
old_uid=$(id -u redis)
old_gid=$(id -g redis)
userdel redis
if getent group redis >/dev/null; then groupdel redis; fi
groupadd -r -g 999 redis
useradd -r -g redis -u 999 redis
find / -xdev -uid "$old_uid" -exec chown -h redis '{}' +
find / -xdev -gid "$old_gid" -exec chgrp -h redis '{}' +

# No packaged configuration or service layout: like upstream, redis-server starts on its compiled defaults
# unless the deployment passes options or mounts a config file of its own.
rm -rf /etc/redis /var/lib/redis /var/log/redis

# The data directory, the image's WORKDIR and VOLUME, owned by redis (upstream: mkdir /data && chown).
mkdir /data
chown redis:redis /data

chmod 755 /usr/local/bin/docker-entrypoint.sh
