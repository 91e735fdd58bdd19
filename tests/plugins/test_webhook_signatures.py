"""The generic webhook source's signatures, against the shapes vendors document: GitHub's and
Typeform's HMAC headers, other algorithms and prefixes, and the Standard Webhooks spec's example."""

from __future__ import annotations

import hashlib
import hmac

NEW, OLD = "the-new-shared-secret-0123456789", "the-old-shared-secret-9876543210"


def _standard_webhooks_headers(secret: str, body: bytes, message_id: str, timestamp: int, extra: str = "") -> dict:
    import base64

    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = base64.b64encode(hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest())
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": (extra + " " if extra else "") + "v1," + mac.decode()}


def test_the_generic_source_checks_the_signatures_vendors_document():
    import base64
    import time as clock

    from connector.testing import WebhookHarness
    from connector_webhook.source import WebhookSourceConfig

    body = b'{"event": "form_response"}'
    github = "sha256=" + hmac.new(NEW.encode(), body, hashlib.sha256).hexdigest()  # X-Hub-Signature-256
    typeform = "sha256=" + base64.b64encode(hmac.new(OLD.encode(), body, hashlib.sha256).digest()).decode()
    cases = [
        (WebhookSourceConfig(path="/in", hmac_secret=[NEW, OLD], hmac_header="X-Hub-Signature-256",
                             hmac_encoding="hex", hmac_prefix="sha256="),
         {"x-hub-signature-256": github}, {"x-hub-signature-256": "sha256=" + "0" * 64}),
        (WebhookSourceConfig(path="/in", hmac_secret=[NEW, OLD], hmac_header="Typeform-Signature",
                             hmac_encoding="base64"),
         {"typeform-signature": typeform}, {"typeform-signature": github}),  # hex where base64 is asked: refused
        (WebhookSourceConfig(path="/in", hmac_secret=NEW, hmac_algorithm="sha1"),
         {"x-signature": hmac.new(NEW.encode(), body, hashlib.sha1).hexdigest()}, {"x-signature": github[7:]}),
        (WebhookSourceConfig(path="/in", hmac_secret=NEW, hmac_algorithm="sha512", hmac_prefix="v0="),
         {"x-signature": "v0=" + hmac.new(NEW.encode(), body, hashlib.sha512).hexdigest()}, {}),
    ]
    for config, good, bad in cases:
        with WebhookHarness(config) as harness:
            assert harness.post(body, good).status_code == 200, good
            refused = harness.post(body, bad)
            assert refused.status_code == 401 and refused.json()["error"] == "unauthorized", bad

    # Standard Webhooks: the spec's own example, then rotation, a second signature, an old timestamp
    spec_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    spec = WebhookSourceConfig(path="/in", scheme="standard-webhooks", hmac_secret=spec_secret,
                               tolerance_seconds=10 ** 10)
    with WebhookHarness(spec) as harness:
        headers = {"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp": "1614265330",
                   "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}
        assert harness.post(b'{"test": 2432232314}', headers).status_code == 200
    rotated = "whsec_" + base64.b64encode(b"a-new-key-for-the-rotation-test!").decode()
    config = WebhookSourceConfig(path="/in", scheme="standard-webhooks", hmac_secret=[rotated, spec_secret])
    now = int(clock.time())
    with WebhookHarness(config) as harness:
        assert harness.post(body, _standard_webhooks_headers(spec_secret, body, "msg_1", now)).status_code == 200
        two = _standard_webhooks_headers(rotated, body, "msg_2", now, extra="v1,bm90LXRoaXMtb25l")
        assert harness.post(body, two).status_code == 200  # the second of two signatures matches
        old = harness.post(body, _standard_webhooks_headers(rotated, body, "msg_3", now - 600))
        assert old.status_code == 401 and "webhook-timestamp" in old.json()["detail"]
        other = "whsec_" + base64.b64encode(b"somebody-else-entirely-0123456789").decode()
        assert harness.post(body, _standard_webhooks_headers(other, body, "msg_4", now)).status_code == 401
        assert harness.post(body, {}).status_code == 401
