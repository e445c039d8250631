"""The OpenAPI says what the routes answer: invalid input is a 400 in the v2 shape, never
FastAPI's 422."""

from __future__ import annotations

from tests.conftest import App


def test_no_route_documents_422_and_invalid_input_is_400(app: App) -> None:
    spec = app.client.get("/openapi.json").json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert "422" not in operation["responses"], (method, path)
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    assert "violations" in spec["components"]["schemas"]["ValidationError"]["properties"]
    assert spec["paths"]["/delta/longpoll"]["get"]["responses"]["400"]
    client = app.new_account().client
    answer = client.get("/delta/longpoll", params={"cursor": "0", "timeout": "x"})
    assert answer.status_code == 400
