#!/usr/bin/python3
# aiohttp peer for scripts/bench: downloads every "url<TAB>path" line of a list with one
# aiohttp ClientSession (TCPConnector(limit=C), no per-host cap), one task per URL,
# gathered, and writes each body to its path. aiohttp speaks HTTP/1.1 only, so over
# HTTPS it holds up to C TLS connections. Names go through its default resolver
# (getaddrinfo in threads, cached 10 s). Run with Debian's /usr/bin/python3, which has
# python3-aiohttp. Exit 0 when every URL answered 200 and was written, 1 otherwise.
import asyncio
import ssl
import sys

import aiohttp


async def fetch_one(session, url, path):
    try:
        async with session.get(url) as resp:
            body = await resp.read()
            if resp.status != 200:
                return False
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return False
    # A plain blocking write, as most simple asyncio downloaders do: 16 KB lands in the
    # page cache in microseconds, an executor hop would cost more than it saves.
    with open(path, "wb") as f:
        f.write(body)
    return True


async def main(list_path, conc, ca=None):
    with open(list_path) as f:
        pairs = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    # CA: a PEM file of CAs to trust (the bench's test CA), as curl --cacert.
    tls = ssl.create_default_context(cafile=ca) if ca else None
    connector = aiohttp.TCPConnector(limit=conc, ssl=tls)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        oks = await asyncio.gather(*(fetch_one(session, u, p) for u, p in pairs))
    return all(oks)


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: aio_fetch.py LIST CONCURRENCY [CA_FILE]")
    ca = sys.argv[3] if len(sys.argv) == 4 else None
    sys.exit(0 if asyncio.run(main(sys.argv[1], int(sys.argv[2]), ca)) else 1)
