# Runs inside the rootfs (chroot) after images/nginx (the official image's layout) and this rootfs/.
# Joxit's Dockerfile (2.5.7): FROM nginx:alpine, its default.conf, 90-docker-registry-ui.sh, the app in
# /usr/share/nginx/html, then `chown -R nginx:nginx` of these three trees.

# nginx:alpine as of Joxit 2.5.7 (nginx 1.25) wrote its pid to /var/run/nginx.pid: Joxit's non-root
# branch rewrites exactly that path (nginx 1.27.5+ moved it to /run/nginx.pid).
sed -i 's,^pid        /run/nginx.pid;,pid        /var/run/nginx.pid;,' /etc/nginx/nginx.conf
grep -q '^pid        /var/run/nginx.pid;' /etc/nginx/nginx.conf

chmod 755 /docker-entrypoint.d/90-docker-registry-ui.sh
chmod 644 /usr/share/nginx/html/index.html /usr/share/nginx/html/registry-ui.js
chown -R nginx:nginx /etc/nginx/ /usr/share/nginx/html/ /var/cache/nginx
