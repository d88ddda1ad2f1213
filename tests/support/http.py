"""Requests the tests send: the seed's body, the async header, API keys, and raw bytes on a
socket for what an HTTP client library would normalise."""

import select
import socket

from fastapi.testclient import TestClient

from service.server.process import ServerProcess

BODY = {"input": "some_input_data"}
ASYNC = {"async_mode": "true"}
KEY_A = "key-a-0123456789abcdef"
KEY_B = "key-b-0123456789abcdef"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def submit(client: TestClient, body: object = BODY, **headers: str) -> str:
    """An async submit that must be accepted: its prediction_id."""
    response = client.post("/predict", json=body, headers={**ASYNC, **headers})
    assert response.status_code == 202, response.text
    prediction_id: str = response.json()["prediction_id"]
    return prediction_id


def raw_request(served: ServerProcess, *pieces: bytes) -> tuple[int, dict[str, str], bytes]:
    """Bytes on a socket, so header names reach the server exactly as written here.

    The pieces are sent one by one until the server answers, as a client that watches for an
    early response does; a server that answers before the body is read is not sent the rest.
    """
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        for piece in pieces:
            if select.select([sock], [], [], 0.02)[0]:
                break
            sock.sendall(piece)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body
