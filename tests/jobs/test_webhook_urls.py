"""The SSRF rules of webhook URLs (service/jobs/webhook_urls.py), on literal addresses and names
that resolve without a network (localhost, and `.invalid`, which never resolves)."""

import asyncio

import pytest

from service.jobs.webhook_urls import Target, WebhookURLError, check_webhook_url
from service.settings import Settings

DEFAULTS = Settings()


def check(url: str, settings: Settings = DEFAULTS) -> Target:
    return asyncio.run(check_webhook_url(url, settings))


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",  # loopback
        "https://localhost/hook",  # a name for loopback
        "https://10.0.0.7/hook",  # private
        "https://172.16.3.4/hook",
        "https://192.168.1.1/hook",
        "https://100.64.0.1/hook",  # shared address space (carrier-grade NAT)
        "https://169.254.169.254/latest/meta-data",  # link-local: the cloud metadata endpoint
        "https://224.0.0.1/hook",  # multicast
        "https://0.0.0.0/hook",  # unspecified
        "https://240.0.0.1/hook",  # reserved
        "https://[::1]/hook",
        "https://[fe80::1]/hook",
        "https://[fc00::1]/hook",  # unique local
        "https://[::ffff:127.0.0.1]/hook",  # IPv4-mapped loopback
        "https://[ff0e::1]/hook",  # a global multicast group
    ],
)
def test_a_host_that_is_not_public_is_refused(url: str) -> None:
    with pytest.raises(WebhookURLError, match="non-public address"):
        check(url)


def test_a_public_address_is_allowed_and_pinned() -> None:
    target = check("https://93.184.215.14:8443/hook?x=1")
    assert (target.ip, target.port, target.path) == ("93.184.215.14", 8443, "/hook?x=1")
    assert target.pinned_url == "https://93.184.215.14:8443/hook?x=1"
    assert target.host_header == "93.184.215.14:8443"
    assert check("https://[2606:4700::1]/").pinned_url == "https://[2606:4700::1]:443/"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://93.184.215.14/hook", "must be https"),
        ("ftp://93.184.215.14/hook", "must be an https URL"),
        ("https://user:pw@93.184.215.14/hook", "credentials"),
        ("https:///hook", "has no host"),
        ("https://93.184.215.14:99999/hook", "not a valid URL"),
        ("https://no-such-host.invalid/hook", "does not resolve"),
    ],
)
def test_malformed_or_forbidden_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(WebhookURLError, match=message):
        check(url)


def test_the_settings_relax_and_narrow_the_rules() -> None:
    local = Settings(webhook_allow_http=True, webhook_allow_private=True)
    assert check("http://127.0.0.1:9/hook", local).ip == "127.0.0.1"
    listed = Settings(webhook_allowed_hosts="93.184.215.14, hooks.example.com")
    assert check("https://93.184.215.14/hook", listed).host == "93.184.215.14"
    with pytest.raises(WebhookURLError, match="WEBHOOK_ALLOWED_HOSTS"):
        check("https://93.184.215.15/hook", listed)
    # The allow-list does not let a private address through.
    private_listed = Settings(webhook_allowed_hosts="localhost")
    with pytest.raises(WebhookURLError, match="non-public address"):
        check("https://localhost/hook", private_listed)
