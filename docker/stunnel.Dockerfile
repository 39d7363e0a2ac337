# The TLS client sidecar of docker-compose.workers.yml: Debian's stunnel4, so workers
# (hiredis 0.14 speaks no TLS) reach a Redis that is published over TLS only. Build
# context is docker/.
FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends stunnel4 tini \
    && rm -rf /var/lib/apt/lists/*
COPY tunnel-start tunnel-ping /usr/local/bin/
USER nobody
EXPOSE 6379
ENTRYPOINT ["tini", "--"]
CMD ["tunnel-start"]
