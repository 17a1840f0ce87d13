# The stack's front door: Debian bookworm's HAProxy with the fleet's configuration baked in.
# Build context: deploy/swarm/ (docker-compose.yml sets it, under the `stack` profile, so that
# scripts/build-images builds it with the other images; compose never runs it). BASE_IMAGE is the
# other images' base (scripts/docker-provision builds a local one where no registry is reachable);
# the package comes from Debian's mirror, as redis-server and prometheus do.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends haproxy \
 && rm -rf /var/lib/apt/lists/*
COPY haproxy.cfg /etc/haproxy/haproxy.cfg
# Checked at build time, with each way of spreading requests: a configuration HAProxy would refuse
# fails the build, not the deploy.
RUN haproxy -c -f /etc/haproxy/haproxy.cfg \
 && CHRONOTICK_FRONTDOOR_BALANCE=roundrobin haproxy -c -f /etc/haproxy/haproxy.cfg
USER haproxy
EXPOSE 8000 8404
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8404/ready', timeout=2)"]
# -W: master-worker, so SIGUSR2 reloads and SIGTERM drains; -db: stay in the foreground, log to stderr.
CMD ["haproxy", "-W", "-db", "-f", "/etc/haproxy/haproxy.cfg"]
