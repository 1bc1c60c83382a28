"""`stackd ui [--listen 127.0.0.1:8470]`: serve the web console (docs/ui.md).

Prints the address to open, with a fresh random token in it (as Jupyter does), or
takes named tokens from --token-file. Runs until interrupted.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Serve the web console (stacks, containers, events; live) on 127.0.0.1:8470"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--listen", default="127.0.0.1:8470", metavar="HOST:PORT",
                   help="address to serve on (default 127.0.0.1:8470); any address but "
                        "loopback needs --tls-cert and --tls-key")
    p.add_argument("--token-file", type=Path, default=None, metavar="FILE",
                   help="named tokens, one `NAME TOKEN` a line (mode 600), instead of a "
                        "random one; events name what each token's holder did")
    p.add_argument("--tls-cert", type=Path, default=None, metavar="FILE")
    p.add_argument("--tls-key", type=Path, default=None, metavar="FILE")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="another host name the browser may use for this console (a "
                        "proxy's); repeatable")


def run(args: argparse.Namespace) -> int:
    import signal

    import trio

    from stackd.cli.client import Client
    from stackd.ui import auth
    from stackd.ui.serve import check_tls, parse_listen, say, serve, url

    listen = parse_listen(args.listen)
    secure = check_tls(listen, args.tls_cert, args.tls_key)
    if args.token_file is not None:
        tokens, token = auth.Tokens.from_file(args.token_file), None
    else:
        tokens, token = auth.Tokens.generate()
    with Client() as client:
        client.ensure()  # start the daemon now, as any verb would
        roots = client.roots

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: serve(
                roots, listen, tokens, cert=args.tls_cert, key=args.tls_key,
                allow_hosts=tuple(args.allow_host), task_status=task_status))
            say(f"stackd console: {url(listen, token, secure=secure)}")
            if token is None:
                say(f"  sign in with ?token=<your token from {args.token_file}>")
            # Ctrl-C or a service manager's SIGTERM: stop serving, quietly.
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break

    trio.run(main)
    return 0
