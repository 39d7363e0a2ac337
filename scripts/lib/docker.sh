# shellcheck shell=bash
# scripts/lib/docker.sh - a docker daemon and the debian:bookworm-slim base image, for the
# test scripts that run containers (scripts/test-compose, scripts/test-fresh).
#
# Sourced, after scripts/lib/packages.sh. Messages go through the caller's log(); every
# function returns non-zero after saying why, so callers write `fp_docker_start || fail`.
#
#   fp_docker_start LOGDIR   start dockerd (in its own session, log in LOGDIR/dockerd.log)
#                            unless a daemon already answers; sets FP_DOCKERD_PID if it did
#   fp_docker_stop           stop the dockerd fp_docker_start started, if any
#   fp_docker_seed_base DIR  build debian:bookworm-slim with debootstrap in DIR (removed
#                            after) when the image is missing: no registry is reachable here
# Installing docker itself is the packages' `docker` group (fp_packages_install docker).

FP_DOCKERD_PID=""

fp_docker_start() {
    local logdir=$1 i
    if docker info >/dev/null 2>&1; then
        return 0
    fi
    log "starting dockerd"
    # Its own session, so the caller's exit traps and signals do not reach it by accident;
    # fds 3 and 4 (where callers keep their real stdout/stderr) are not handed down.
    setsid dockerd >"$logdir/dockerd.log" 2>&1 3>&- 4>&- &
    FP_DOCKERD_PID=$!
    for i in $(seq 120); do
        if [[ -S /var/run/docker.sock ]] && docker info >/dev/null 2>&1; then
            return 0
        fi
        kill -0 "$FP_DOCKERD_PID" 2>/dev/null || break
        sleep 0.5
    done
    tail -20 "$logdir/dockerd.log" >&2 || true
    log "dockerd did not come up (after $((i / 2)) s)"
    return 1
}

fp_docker_stop() {
    local i
    [[ -n "$FP_DOCKERD_PID" ]] || return 0
    log "stopping the dockerd this script started (pid $FP_DOCKERD_PID)"
    kill "$FP_DOCKERD_PID" 2>/dev/null || true
    for i in $(seq 60); do
        if ! kill -0 "$FP_DOCKERD_PID" 2>/dev/null; then
            FP_DOCKERD_PID=""
            return 0
        fi
        sleep 0.5
    done
    log "dockerd still running after 30 s"
}

# No registry is reachable here: build debian:bookworm-slim from Debian packages, slimmed
# the way the official image is (no docs, man pages, translations or apt caches).
fp_docker_seed_base() {
    local work=$1 root
    if docker image inspect debian:bookworm-slim >/dev/null 2>&1; then
        return 0
    fi
    log "seeding debian:bookworm-slim with debootstrap (a few minutes)"
    root="$work/rootfs"
    if ! debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian \
        >"$work/debootstrap.log" 2>&1; then
        tail -20 "$work/debootstrap.log" >&2
        log "debootstrap failed (log: $work/debootstrap.log)"
        return 1
    fi
    cat >"$root/etc/apt/sources.list" <<'EOF'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
    cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
# Leave out what a container never reads (as debian:*-slim does).
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
    cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
// No package caches in image layers (as the official Debian images do).
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
EOF
    # Apply the same exclusions to what debootstrap already installed.
    find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias \
        -exec rm -rf {} +
    rm -rf "$root"/usr/share/{man,groff,info,lintian,linda}/* \
        "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
    if ! tar -C "$root" -c . | docker import --change 'CMD ["bash"]' - debian:bookworm-slim \
        >/dev/null; then
        rm -rf "$root"
        log "docker import of the debootstrap tree failed"
        return 1
    fi
    rm -rf "$root"
    log "seeded debian:bookworm-slim"
}
