"""`ChatTransport` bounds a whole call by putting `_DeadlineBackend` under httpx's connection pools, through
private attributes (`Client._transport`, `Client._mounts`, `HTTPTransport._pool`,
`ConnectionPool._network_backend`): httpx has no public hook for a network backend. A custom transport over
`httpcore.ConnectionPool(network_backend=...)` would be public, but httpx then ignores the proxy variables
(`trust_env` proxies are only read when no transport is given) and the request and error mapping would be
copied from httpx's own. Where an httpx release moves these attributes, `_bound_by_deadline` does nothing
and a dripped status line holds a call open again; this says so by name, before the slower timing test of
test_hostile_endpoints.py fails."""

from __future__ import annotations

import httpx
import pytest

from refinelab.tools.transport import ChatTransport, _DeadlineBackend

MOVED = ("httpx no longer keeps {what}: ChatTransport's whole-call deadline is not installed "
         "(refinelab/tools/transport.py `_bound_by_deadline`); installed httpx {version}")


def _pools(client: httpx.Client) -> list[object]:
    """Every connection pool of `client`, its own and each proxy's, failing by name where one moved."""
    transports = [getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()]
    assert transports[0] is not None, MOVED.format(what="Client._transport", version=httpx.__version__)
    pools = []
    for transport in transports:
        if transport is None:  # a mount that sends a pattern to no proxy
            continue
        assert isinstance(transport, httpx.HTTPTransport), f"{type(transport)}: not httpx's own transport"
        pool = getattr(transport, "_pool", None)
        assert pool is not None, MOVED.format(what="HTTPTransport._pool", version=httpx.__version__)
        assert hasattr(pool, "_network_backend"), MOVED.format(what="ConnectionPool._network_backend",
                                                               version=httpx.__version__)
        pools.append(pool)
    return pools


@pytest.mark.parametrize("proxy", [None, "http://127.0.0.1:9"])  # socks needs socksio, not installed
def test_every_pool_of_a_chat_transport_is_bounded_by_the_call_deadline(proxy: str | None,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The client's own pool, and each pool the proxy variables add, connects through `_DeadlineBackend`."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
                 "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    if proxy is not None:
        monkeypatch.setenv("ALL_PROXY", proxy)
    chat = ChatTransport("http://127.0.0.1:1/v1", "sk-test", "m", timeout_s=1.0, connections=2)
    try:
        pools = _pools(chat._http)
        assert len(pools) == (1 if proxy is None else 2)
        for pool in pools:
            assert isinstance(pool._network_backend, _DeadlineBackend), (  # type: ignore[attr-defined]
                f"{type(pool).__name__} connects through {type(pool._network_backend).__name__}, not "  # type: ignore[attr-defined]
                "_DeadlineBackend: ChatTransport's whole-call deadline is not installed (_bound_by_deadline)")
    finally:
        chat.close()
