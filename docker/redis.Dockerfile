# Redis for the fetchpool compose stack: Debian's redis-server, AOF on, runs as user redis.
# Built from Debian's package (not the Docker Hub image) so it needs only debian:bookworm-slim.
FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data && chown redis:redis /data
COPY redis.conf /etc/redis/fetchpool.conf
COPY redis-start redis-ping /usr/local/bin/
USER redis
WORKDIR /data
VOLUME /data
EXPOSE 6379
CMD ["redis-start"]
