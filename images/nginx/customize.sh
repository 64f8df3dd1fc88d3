# Runs inside the rootfs (chroot) after the packages are installed and rootfs/ is synced.
# Debian's nginx 1.22 laid out like the official nginx image (nginxinc/docker-nginx, Debian variant).

# The image's worker user: nginx, uid/gid 101, no home, no shell (the official Dockerfile's first step).
groupadd --system --gid 101 nginx
useradd --system --gid nginx --no-create-home --home /nonexistent --comment "nginx user" \
  --shell /bin/false --uid 101 nginx

# No Debian site layout: only conf.d/*.conf is included (see nginx.conf), default.conf is the packaged site.
rm -rf /etc/nginx/sites-available /etc/nginx/sites-enabled /etc/nginx/modules-enabled /etc/nginx/snippets \
  /var/www

# The nginx.org package's temp directories (compiled in there, set in nginx.conf here): the cache
# directory is root's, the master process creates the *_temp directories at start for the worker user.
mkdir -p /var/cache/nginx
chown root:root /var/cache/nginx
chmod 755 /var/cache/nginx

# Logs go to the container's stdout/stderr.
mkdir -p /var/log/nginx
ln -sf /dev/stdout /var/log/nginx/access.log
ln -sf /dev/stderr /var/log/nginx/error.log

chmod 755 /docker-entrypoint.sh /docker-entrypoint.d/*.sh /docker-entrypoint.d/*.envsh

# The checksum of default.conf as packaged, for 10-listen-on-ipv6-by-default.sh (upstream reads it from
# the package manager's records of the nginx.org package).
md5sum /etc/nginx/conf.d/default.conf >/usr/share/nginx/default.conf.md5
