"""`stackd login [REGISTRY]`: check credentials against a registry and save them.

They go to stackd's docker-style config.json (`$STACKD_CONFIG`, else
~/.config/stackd/config.json, mode 0600); `--logout` removes them again.
"""

from __future__ import annotations

import argparse
import sys

HELP = "Log in to a registry (saves credentials for pull/push)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("registry", nargs="?", default="docker.io",
                        help="registry host[:port] (default docker.io)")
    parser.add_argument("-u", "--username")
    parser.add_argument("-p", "--password", help="prefer --password-stdin")
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the password from standard input")
    parser.add_argument("--logout", action="store_true", help="forget saved credentials")


def run(args: argparse.Namespace) -> int:
    import getpass

    import trio

    from stackd.errors import UsageError
    from stackd.images.reference import parse
    from stackd.images.registry import credentials
    from stackd.images.registry.client import RegistryClient

    domain = parse(f"{args.registry}/x").domain if "/" not in args.registry else args.registry
    if args.logout:
        found = credentials.remove(domain)
        print(f"Removed login credentials for {domain}" if found else f"Not logged in to {domain}")
        return 0
    try:
        username = args.username or input("Username: ")
        if args.password_stdin:
            password = sys.stdin.read().rstrip("\n")
        else:
            password = args.password or getpass.getpass("Password: ")
    except EOFError:  # no terminal to ask on, and nothing more on stdin
        raise UsageError(f"login {args.registry}: no username and password given, and none "
                         "to be read", hint="pass -u USER and --password-stdin") from None
    if not username or not password:
        raise UsageError("login needs a username and a password",
                         hint="pass -u USER and --password-stdin")
    cred = credentials.Credential(username, password)

    async def check() -> None:
        # Verify before saving: a token fetch (or Basic /v2/) with exactly these credentials.
        ref = parse(f"{domain}/library/x" if domain == "docker.io" else f"{domain}/x")
        async with RegistryClient(credentials_override=cred) as client:
            await client.ping(ref)

    trio.run(check)
    path = credentials.save(domain, cred)
    print(f"Login Succeeded (saved in {path})")
    return 0
