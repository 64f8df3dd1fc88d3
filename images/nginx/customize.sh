# Runs inside the rootfs (chroot) after the packages are installed.
# Like the upstream image: no default site, logs to the container's stdout/stderr.
rm -f /etc/nginx/sites-enabled/default /etc/nginx/conf.d/default.conf
mkdir -p /etc/nginx/conf.d /var/log/nginx
ln -sf /dev/stdout /var/log/nginx/access.log
ln -sf /dev/stderr /var/log/nginx/error.log
