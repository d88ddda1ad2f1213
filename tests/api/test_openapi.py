from fastapi.testclient import TestClient


def test_every_endpoint_and_response_is_documented(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert set(paths) >= {
        "/predict",
        "/predict/{prediction_id}",
        "/predict/{prediction_id}/cancel",
        "/predict/batch",
        "/healthz",
        "/readyz",
    }
    post = paths["/predict"]["post"]
    assert set(post["responses"]) >= {"200", "202", "413", "422", "429", "503"}
    assert {p["name"] for p in post["parameters"] if p["in"] == "header"} == {
        "async_mode",
        "Async-Mode",
        "Idempotency-Key",
        "Prefer",
    }
    assert "location" in {h.lower() for h in post["responses"]["202"]["headers"]}
    assert post["requestBody"]["content"]["application/json"]["schema"]["required"] == ["input"]
    get = paths["/predict/{prediction_id}"]["get"]
    assert set(get["responses"]) >= {"200", "202", "404", "422", "503"}
    assert "Retry-After" in get["responses"]["202"]["headers"]
    params = {p["name"]: p for p in get["parameters"]}
    assert params["prediction_id"]["schema"]["format"] == "uuid"
    assert params["wait"]["in"] == "query"
    assert set(paths["/readyz"]["get"]["responses"]) >= {"200", "503"}
    cancel = paths["/predict/{prediction_id}/cancel"]["post"]
    assert set(cancel["responses"]) >= {"200", "404", "409", "422", "503"}
    batch = paths["/predict/batch"]["post"]
    assert set(batch["responses"]) >= {"200", "202", "413", "422", "429", "503"}
    inputs = batch["requestBody"]["content"]["application/json"]["schema"]["properties"]["inputs"]
    assert (inputs["minItems"], inputs["maxItems"]) == (1, 1000)
    fields = post["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert {"webhook", "webhook_events_filter"} <= set(fields)


def test_documented_messages_are_the_seed_messages(client: TestClient) -> None:
    components = client.get("/openapi.json").json()["components"]["schemas"]
    assert components["StillProcessing"]["properties"]["error"]["const"] == (
        "Prediction is still being processed."
    )
    assert components["NotFound"]["properties"]["error"]["const"] == "Prediction ID not found."


def test_docs_page_is_served(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert "swagger-ui" in response.text
