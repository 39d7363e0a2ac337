# shellcheck shell=bash
# scripts/lib/packages.sh - the Debian 12 packages the scripts need, in one place.
#
# Sourced (never run) by scripts/demo, scripts/test, scripts/test-compose and
# scripts/test-fresh. Each asks for the groups it uses:
#
#   fp_packages_install GROUP...
#
# installs the packages of those groups that are not installed yet (apt-get update first,
# and only when something is missing; --no-install-recommends, so every package a script
# uses is named here), as root or through sudo, then stops again the services the install
# started that were not installed before (redis-server, nginx): the scripts start private
# instances on free loopback ports and want no system-wide one. Returns non-zero, having
# said why, if something could not be installed; callers run under `set -e`.
#
# Groups (fp_packages GROUP prints one; later groups include earlier ones where noted):
#   build    compile fetchpool (libmicrohttpd-dev for the master's /metrics; libpsl-dev for
#            its --host-group domain, with publicsuffix, the list's current file; libcmocka-dev
#            too: cmake's configure step looks for it)
#   demo     build + what scripts/demo runs: redis-server, python3 and python3-redis
#            (scripts/submit's Redis client; the test and bench groups include it)
#   test     demo + every test stage of scripts/test: nginx (and the echo module the test
#            world's nginx loads), clang with its libFuzzer and sanitizer runtimes
#            (libclang-rt-14-dev, which `apt-get install clang --no-install-recommends`
#            does not bring), clang-format, and what the integration tests drive: dnsmasq,
#            ip, unshare, openssl, curl and h2; prometheus (scrapes the master's /metrics);
#            stunnel4 (the TLS tunnel to Redis);
#            node and npm for the S3 test's s3rver (an npm package the test installs into a
#            cache folder), boto3 to read objects back
#   bench    demo + scripts/bench: nginx with the echo module, curl, wget2, aiohttp, time,
#            and for its scenarios in tests/world.py: dnsmasq, ip, unshare, openssl, h2
#   docker   a docker daemon and debootstrap (seeds debian:bookworm-slim without a registry)
#   compose  docker + docker-compose, python3 for scripts/test-compose's checks,
#            openssl for its test CA (Redis published over TLS), and for its S3 run
#            node and npm (s3rver, installed on the host and mounted into its container)
#            and boto3 (reads the objects back)
#
# Messages go through the caller's log() if it has one. FP_APT_LOG=FILE sends apt's
# output to FILE instead of stdout.

fp_packages() {
    case "$1" in
    build)
        echo build-essential cmake pkg-config libcurl4-openssl-dev libuv1-dev \
            libhiredis-dev libssl-dev libcmocka-dev libmicrohttpd-dev libpsl-dev publicsuffix
        ;;
    demo)
        fp_packages build
        echo redis-server python3 python3-redis
        ;;
    test)
        fp_packages demo
        echo nginx-light libnginx-mod-http-echo clang libclang-rt-14-dev clang-format \
            dnsmasq-base iproute2 util-linux openssl ca-certificates curl python3-h2 \
            prometheus stunnel4 nodejs npm python3-boto3 strace
        ;;
    bench)
        fp_packages demo
        echo nginx-light libnginx-mod-http-echo curl wget2 python3-aiohttp time \
            dnsmasq-base iproute2 util-linux openssl python3-h2
        ;;
    docker)
        echo docker.io debootstrap debian-archive-keyring
        ;;
    compose)
        fp_packages docker
        echo docker-compose python3 openssl nodejs npm python3-boto3
        ;;
    *)
        echo "packages.sh: no package group '$1'" >&2
        return 1
        ;;
    esac
}

# Services that installing a package of ours starts (Debian's maintainer scripts do).
FP_PACKAGES_SERVICES=(redis-server nginx prometheus)

fp_packages_log() {
    if declare -F log >/dev/null; then
        log "$@"
    else
        printf '==> %s\n' "$*"
    fi
}

# fp_package_present PKG: installed, or (docker, npm) another package provides the command.
fp_package_present() {
    case "$1" in
    # docker-ce or a hand-installed daemon is as good, and would conflict with docker.io.
    docker.io) command -v dockerd >/dev/null && return 0 ;;
    docker-compose)
        { command -v docker-compose || docker compose version; } >/dev/null 2>&1 && return 0
        ;;
    # A Node.js from elsewhere (NodeSource's nodejs bundles npm) conflicts with Debian's npm.
    npm) command -v npm >/dev/null && return 0 ;;
    esac
    dpkg-query -W -f '${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# fp_service_present SVC: an init script or systemd unit for SVC is on the machine.
fp_service_present() {
    [ -e "/etc/init.d/$1" ] || [ -e "/lib/systemd/system/$1.service" ] ||
        [ -e "/etc/systemd/system/$1.service" ]
}

# Stop a service the way this machine runs services (systemd, or sysv scripts in a
# container). Self-contained: it also runs under sudo through `declare -f`.
fp_service_stop() {
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
        systemctl stop "$1" 2>/dev/null || true
    elif [ -x "/etc/init.d/$1" ]; then
        "/etc/init.d/$1" stop >/dev/null 2>&1 || true
    fi
}

# fp_apt CMD...: run CMD with its output in $FP_APT_LOG if set (appended), else as is.
fp_apt() {
    if [ -n "${FP_APT_LOG:-}" ]; then
        "$@" >>"$FP_APT_LOG" 2>&1
    else
        "$@"
    fi
}

fp_packages_install() {
    local group words p missing=() had=() sudo=() svc
    local -A seen=()
    for group in "$@"; do
        words=$(fp_packages "$group") || return 1
        for p in $words; do
            [ -z "${seen[$p]:-}" ] || continue
            seen[$p]=1
            fp_package_present "$p" || missing+=("$p")
        done
    done
    [ ${#missing[@]} -gt 0 ] || return 0

    fp_packages_log "installing (for $*): ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo >/dev/null; then
            echo "packages.sh: need root (or sudo) to install: ${missing[*]}" >&2
            return 1
        fi
        sudo=(sudo)
    fi
    for svc in "${FP_PACKAGES_SERVICES[@]}"; do
        fp_service_present "$svc" && had+=("$svc")
    done
    # Calls in a `||` list run without set -e, so every step is checked by hand.
    if ! { fp_apt "${sudo[@]}" apt-get update -q &&
        fp_apt "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends "${missing[@]}"; }; then
        echo "packages.sh: apt-get failed installing: ${missing[*]}" \
            "${FP_APT_LOG:+(log: $FP_APT_LOG)}" >&2
        return 1
    fi
    for svc in "${FP_PACKAGES_SERVICES[@]}"; do
        [[ " ${had[*]} " == *" $svc "* ]] && continue
        fp_service_present "$svc" || continue
        "${sudo[@]}" bash -c "$(declare -f fp_service_stop); fp_service_stop $svc"
    done
}
