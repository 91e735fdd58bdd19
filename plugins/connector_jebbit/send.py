"""``jebbit-send``: sign and post a sample Jebbit experience to a running connector.

    jebbit-send --url http://127.0.0.1:8080/webhooks/jebbit --secret "$JEBBIT_SHARED_SECRET"
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import ssl
import sys
import uuid
from typing import Any

import httpx

from .signature import HEADER, TEST_HEADER, sign


def sample_experience(email: str) -> dict[str, Any]:
    """A completed experience shaped like Jebbit's deliveries."""
    return {
        "data": {
            "email": email,
            "opt_in": "true",
            "outcome": "example_outcome",
            "campaign_id": "n3zrik6g",
            "campaign_name": "New Quiz",
            "session_id": uuid.uuid4().hex[:20],
            "channel": "Owned+Web",
            "experience_date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "favorite_color": "blue",
            "age_group": "25-34",
        },
        "event": {"event_number": 0},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jebbit-send", description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080/webhooks/jebbit")
    parser.add_argument("--secret", default=os.environ.get("JEBBIT_SHARED_SECRET"),
                        help="the shared secret (default: $JEBBIT_SHARED_SECRET)")
    parser.add_argument("--email", default="jane.doe@example.com")
    parser.add_argument("--test", action="store_true", help="send as Jebbit's test delivery")
    parser.add_argument("--cacert", metavar="FILE",
                        help="trust this certificate (PEM) for an https --url, e.g. the daemon's own self-signed one")
    args = parser.parse_args(argv)
    if not args.secret:
        parser.error("give --secret or set JEBBIT_SHARED_SECRET")
    body = json.dumps([sample_experience(args.email)]).encode()
    headers = {"content-type": "application/json", HEADER: sign(args.secret, body)}
    if args.test:
        headers[TEST_HEADER] = "true"
    try:
        verify = ssl.create_default_context(cafile=args.cacert) if args.cacert else True
        response = httpx.post(args.url, content=body, headers=headers, timeout=10, verify=verify)
    except httpx.TransportError as exc:
        print(f"jebbit-send: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 1
    print(f"{response.status_code} {response.text}")
    return 0 if response.is_success else 1


if __name__ == "__main__":
    sys.exit(main())
