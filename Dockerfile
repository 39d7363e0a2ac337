# fetchpool container images (multi-stage; every stage starts from debian:bookworm-slim).
#   target runtime (default, last stage): fetchpool-master + fetchpool-worker, runtime libs only
#   target client: scripts/submit and scripts/fetchpool with python3 and python3-redis
# The client is its own target so the image that gets scaled out to many workers carries
# no Python (about 45 MB less: 90 MB instead of 135 MB), and the client carries no C libraries.
# Build: docker build -t fetchpool .   docker build --target client -t fetchpool-client .
# The legacy builder (docker-compose v1) runs every stage up to its target in file order,
# so the small client stage comes first and building it never compiles C.

FROM debian:bookworm-slim AS client
# Same first layer as docker/origin.Dockerfile (shared in the build cache).
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 tini \
    && rm -rf /var/lib/apt/lists/*
# submit's Redis client (redis-py), a layer of its own so the one above stays shared.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-redis \
    && rm -rf /var/lib/apt/lists/*
# uid/gid 10001 in both images: a host folder for the images needs chown 10001:10001.
RUN groupadd --system --gid 10001 fetchpool \
    && useradd --system --uid 10001 --gid fetchpool --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin fetchpool \
    && mkdir -p /data/results && chown fetchpool:fetchpool /data/results
COPY scripts/submit scripts/fetchpool /usr/local/bin/
USER fetchpool
WORKDIR /jobs
ENTRYPOINT ["tini", "--"]
CMD ["submit", "--help"]

FROM debian:bookworm-slim AS build
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config \
        libcurl4-openssl-dev libuv1-dev libhiredis-dev libssl-dev libmicrohttpd-dev libpsl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Everything the build needs; .dockerignore keeps out .git, build trees and tests.
COPY . .
# Tests need cmocka and a Redis; they run outside the image (FP_TESTS=OFF here).
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DFP_TESTS=OFF \
    && cmake --build /build -j"$(nproc)" \
    && strip /build/bin/fetchpool-master /build/bin/fetchpool-worker

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libcurl4 libuv1 libhiredis0.14 libssl3 libmicrohttpd12 libpsl5 publicsuffix \
        ca-certificates tini \
    && rm -rf /var/lib/apt/lists/*
# Same user as the client stage. /data/images and /data/results are created here, owned
# by that user, so a fresh named volume mounted there inherits the ownership and the
# worker (images) or the master (results) can write to it.
RUN groupadd --system --gid 10001 fetchpool \
    && useradd --system --uid 10001 --gid fetchpool --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin fetchpool \
    && mkdir -p /data/images /data/results \
    && chown fetchpool:fetchpool /data/images /data/results
COPY --from=build /build/bin/fetchpool-master /build/bin/fetchpool-worker /usr/local/bin/
COPY docker/fp-start /usr/local/bin/fp-start
ENV FETCHPOOL_OUTPUT=/data/images FETCHPOOL_RESULTS_DIR=/data/results
USER fetchpool
WORKDIR /data
# tini as PID 1 forwards docker stop's SIGTERM and reaps; fp-start execs the program.
ENTRYPOINT ["tini", "--"]
CMD ["fp-start", "worker"]
