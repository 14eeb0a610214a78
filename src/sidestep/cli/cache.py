"""`sidestep cache purge [--tenant T] [--route R] [--older-than AGE] [--all]`: drop a running gateway's cached
answers.

It asks the gateway (`--url`; `POST /sidestep/cache/purge`), not the store, so one command purges the memory
backend of the process that answers and the Redis every replica shares. The admin key (`cache.admin_key`) goes
in `--admin-key` or `SIDESTEP_CACHE_ADMIN_KEY`; with governance on, a virtual key too (`--key` or
`SIDESTEP_KEY`). What is given is checked here first (a clear message, exit 2), and again by the gateway.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import urllib.error
import urllib.request
from typing import Any

__all__ = ["add_parser", "parse_age"]

_AGE = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("cache", help="purge a running gateway's cache")
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the gateway (default: %(default)s)")
    parser.add_argument("--key", default=None, help="a virtual key, with governance on (default: $SIDESTEP_KEY)")
    parser.add_argument("--admin-key", default=None, help="cache.admin_key (default: $SIDESTEP_CACHE_ADMIN_KEY)")
    actions = parser.add_subparsers(dest="action", required=True)
    purge = actions.add_parser("purge", help="drop cached answers (every filter given must hold)")
    purge.add_argument("--tenant", help="key:<name>, team:<name>, customer:<name>, or * (shared entries)")
    purge.add_argument("--route", help="the route or model name requests used")
    purge.add_argument("--older-than", help="stored longer ago than this: seconds, or 30m, 12h, 7d")
    purge.add_argument("--all", action="store_true", help="everything (needed when no filter is given)")
    purge.set_defaults(func=_purge)


def parse_age(text: str) -> float | None:
    """Seconds in `text` (`90`, `30m`, `12h`, `7d`), or None when it is not an age."""
    found = _AGE.fullmatch(text.strip())
    return float(found[1]) * _UNITS[found[2]] if found else None


def _purge(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {}
    if args.tenant is not None:
        body["tenant"] = args.tenant
    if args.route is not None:
        body["route"] = args.route
    if args.older_than is not None:
        age = parse_age(args.older_than)
        if age is None:
            print(
                f"sidestep cache purge: --older-than {args.older_than!r} is not an age (90, 30m, 12h, 7d)",
                file=sys.stderr,
            )
            return 2
        body["older_than"] = age
    if args.all:
        body["all"] = True
    if not body:
        print("sidestep cache purge: say what to purge (--tenant, --route, --older-than), or --all", file=sys.stderr)
        return 2
    admin = args.admin_key or os.environ.get("SIDESTEP_CACHE_ADMIN_KEY")
    if not admin:
        print(
            "sidestep cache purge: the admin key is needed (--admin-key or $SIDESTEP_CACHE_ADMIN_KEY)", file=sys.stderr
        )
        return 2
    answer = _ask(args, admin, body)
    if answer is None:
        return 1
    print(f"purged {answer.get('purged', 0)} entries")
    return 0


def _ask(args: argparse.Namespace, admin: str, body: dict[str, Any]) -> Any:
    """The gateway's JSON answer, or None after saying on stderr why there is none."""
    headers = {"content-type": "application/json", "x-sidestep-admin-key": admin}
    key = args.key or os.environ.get("SIDESTEP_KEY")
    if key:
        headers["authorization"] = f"Bearer {key}"
    url = args.url.rstrip("/") + "/sidestep/cache/purge"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = exc.reason
        print(f"sidestep cache purge: {exc.code} {message}", file=sys.stderr)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"sidestep cache purge: cannot reach the gateway at {args.url}: {exc}", file=sys.stderr)
    return None
