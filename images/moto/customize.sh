# Runs inside the rootfs (chroot) after the packages are installed and rootfs/ is synced. This layer has the
# `network` marker: pip reaches the index with the host's CA bundle and index settings (see build.sh).
# moto's server laid out like the image motoserver/moto (getmoto/moto's Dockerfile: python:3.11-slim,
# pip install ".[server]", curl, ENTRYPOINT moto_server -H 0.0.0.0, port 5000).

# moto and its pinned dependencies in a venv of Debian's python3 (3.11, as upstream's base image).
python3 -m venv /opt/moto
/opt/moto/bin/pip install --no-cache-dir --no-input --quiet -r /opt/moto/requirements.txt
/opt/moto/bin/moto_server --help >/dev/null

# Upstream's ENTRYPOINT names /usr/local/bin/moto_server; its WORKDIR /moto/ holds moto's source there (empty
# here: nothing runs from it).
ln -s /opt/moto/bin/moto_server /usr/local/bin/moto_server
mkdir -p /moto
