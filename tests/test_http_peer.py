import requests

from tests.peers.http import HttpPeer, Reply


def test_routes_faults_and_records(http_peer: HttpPeer) -> None:
    http_peer.route("GET", "/health", Reply(200, {"ok": True}))
    http_peer.faults.append(Reply(503, "busy"))
    assert requests.get(http_peer.url + "/health", timeout=5).status_code == 503
    assert requests.get(http_peer.url + "/health", timeout=5).json() == {"ok": True}
    assert len(http_peer.requests_to("/health")) == 2
