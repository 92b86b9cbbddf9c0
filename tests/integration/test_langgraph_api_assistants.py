"""ALMA answers LangGraph's assistant and meta endpoints as `langgraph dev` does, for
`langgraph-sdk` and for LangGraph Studio in a browser (CORS, text/plain JSON bodies)."""

from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from server.guard.auth import new_key
from tests.utils.langgraph_dev import langgraph_dev
from tests.utils.redis_server import RedisServer
from tests.utils.service import Service, alma_service
from tests.utils.shapes import differences

pytestmark = pytest.mark.integration

MANAGER_ID = "2c8f97b7-0383-58c2-81fb-ece90dc70d92"
STUDIO = "https://smith.langchain.com"
KEY, KEY_ENTRY = new_key("studio")


@pytest.fixture(scope="module")
def dev_url(redis: RedisServer) -> Iterator[str]:
    with langgraph_dev(redis.url, prefix="lgapi-assistants-dev") as url:
        yield url


@pytest.fixture(scope="module")
def alma(redis: RedisServer) -> Iterator[Service]:
    env = {"ALMA_API_KEYS": KEY_ENTRY, "ALMA_CORS_ORIGINS": STUDIO,
           "ALMA_CORS_ALLOW_PRIVATE_NETWORK": "true"}  # fmt: skip
    with alma_service(redis.url, prefix="lgapi-assistants-alma", env=env) as service:
        yield service


@dataclass
class Both:
    """The official SDK, pointed at ALMA (with its key) and at `langgraph dev`."""

    ours: LangGraphClient
    theirs: LangGraphClient

    async def assistants(self, method: str, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        """The same `client.assistants` call to both; their answers have the same shape."""
        ours = await getattr(self.ours.assistants, method)(*args, **kwargs)
        theirs = await getattr(self.theirs.assistants, method)(*args, **kwargs)
        assert differences(ours, theirs) == []
        return ours, theirs


@pytest.fixture
async def both(alma: Service, dev_url: str) -> AsyncIterator[Both]:
    clients = Both(get_client(url=alma.url, api_key=KEY), get_client(url=dev_url, api_key=None))
    yield clients
    await clients.ours.aclose()
    await clients.theirs.aclose()


def property_names(schemas: Mapping[str, Any]) -> dict[str, list[str]]:
    return {name: sorted((schema or {}).get("properties", {})) for name, schema in schemas.items()
            if name != "graph_id"}  # fmt: skip


async def test_search_and_count_find_the_manager_as_dev_does(both: Both) -> None:
    filters: list[dict[str, Any]] = [
        {}, {"graph_id": "manager"}, {"metadata": {"created_by": "system"}}, {"name": "MANA"},
    ]  # fmt: skip
    for query in [*filters, {"sort_by": "name", "sort_order": "asc"}]:
        found, expected = await both.assistants("search", **query)
        assert [a["assistant_id"] for a in found] == [a["assistant_id"] for a in expected]
        assert [a["assistant_id"] for a in found] == [MANAGER_ID]
    for query in filters:
        assert await both.assistants("count", **query) == (1, 1)
    [assistant] = await both.ours.assistants.search()
    assert assistant["name"] == assistant["graph_id"] == "manager"
    assert assistant["version"] == 1
    assert assistant["metadata"] == {"created_by": "system"}
    assert assistant["config"] == assistant["context"] == {}

    for query in ({"limit": 1, "offset": 1}, {"metadata": {"created_by": "someone"}},
                  {"name": "nobody"}):  # fmt: skip
        assert await both.assistants("search", **query) == ([], [])
    for client in (both.ours, both.theirs):
        with pytest.raises(httpx.HTTPStatusError) as unknown_graph:
            await client.assistants.count(graph_id="other")
        assert unknown_graph.value.response.status_code == 404
    selected, expected = await both.assistants("search", select=["assistant_id", "name"])
    assert selected == expected == [{"assistant_id": MANAGER_ID, "name": "manager"}]
    paged, _ = await both.assistants("search", response_format="object")
    assert paged["next"] is None


async def test_search_reports_the_total_in_a_header(alma: Service, dev_url: str) -> None:
    async with httpx.AsyncClient(headers={"x-api-key": KEY}) as http:
        ours = await http.post(f"{alma.url}/assistants/search", json={})
        theirs = await http.post(f"{dev_url}/assistants/search", json={})
    assert ours.headers["x-pagination-total"] == theirs.headers["x-pagination-total"] == "1"
    assert "x-pagination-next" not in ours.headers


async def test_an_assistant_is_read_by_id_and_unknown_ones_are_not_found(both: Both) -> None:
    found, _ = await both.assistants("get", MANAGER_ID)
    assert found["assistant_id"] == MANAGER_ID
    assert found["created_at"] == found["updated_at"]
    # The graph name is accepted wherever an id is (`langgraph dev` takes it for runs
    # and the drawing only).
    assert await both.ours.assistants.get("manager") == found

    unknown = "24594b77-61eb-45a2-aebe-9482bcec1fe8"
    for client in (both.ours, both.theirs):
        with pytest.raises(httpx.HTTPStatusError) as missing:
            await client.assistants.get(unknown)
        assert missing.value.response.status_code == 404
        assert isinstance(missing.value.response.json()["detail"], str)
        with pytest.raises(httpx.HTTPStatusError) as malformed:
            await client.assistants.get_schemas("not-a-uuid")
        assert malformed.value.response.status_code == 422


async def test_the_drawing_is_the_one_dev_draws(both: Both) -> None:
    for xray in (False, True, 1):
        drawing, expected = await both.assistants("get_graph", MANAGER_ID, xray=xray)
        assert {n["id"] for n in drawing["nodes"]} == {n["id"] for n in expected["nodes"]}
        assert drawing == expected
    flat = await both.ours.assistants.get_graph("manager")
    assert {"route", "consult_router", "creative", "analytical"} <= {n["id"] for n in flat["nodes"]}
    expanded = await both.ours.assistants.get_graph("manager", xray=True)
    assert {"creative:compose", "analytical:plan", "analytical:synthesise"} <= {
        n["id"] for n in expanded["nodes"]
    }
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await both.ours.assistants.get_graph(MANAGER_ID, xray=0)
    assert refused.value.response.status_code == 422


async def test_the_schemas_describe_the_same_state_input_and_context(both: Both) -> None:
    schemas, expected = await both.assistants("get_schemas", MANAGER_ID)
    assert property_names(schemas) == property_names(expected)
    assert schemas["graph_id"] == "manager"
    assert set(schemas["input_schema"]["properties"]) == {"messages"}
    assert {"router", "route", "refine", "max_plan_steps"} <= set(
        schemas["context_schema"]["properties"]
    )


async def test_subgraphs_are_described_by_namespace(both: Both) -> None:
    queries: list[dict[str, Any]] = [
        {}, {"recurse": True}, {"namespace": "analytical"},
        {"namespace": "creative", "recurse": True}, {"namespace": "nowhere"},
    ]  # fmt: skip
    for query in queries:
        found, expected = await both.assistants("get_subgraphs", MANAGER_ID, **query)
        assert {ns: property_names(s) for ns, s in found.items()} == {
            ns: property_names(s) for ns, s in expected.items()
        }
    assert sorted(await both.ours.assistants.get_subgraphs("manager")) == ["analytical", "creative"]
    assert await both.ours.assistants.get_subgraphs(MANAGER_ID, namespace="nowhere") == {}


async def test_the_assistant_has_one_version(both: Both) -> None:
    versions, _ = await both.assistants("get_versions", MANAGER_ID)
    assert [(v["assistant_id"], v["version"]) for v in versions] == [(MANAGER_ID, 1)]
    assert "updated_at" not in versions[0]
    assert await both.ours.assistants.get_versions(MANAGER_ID, metadata={"created_by": "x"}) == []


async def test_info_and_ok_answer_what_the_sdk_and_the_page_read(
    alma: Service, dev_url: str
) -> None:
    async with httpx.AsyncClient() as http:
        info, dev_info = await http.get(f"{alma.url}/info"), await http.get(f"{dev_url}/info")
        ok, dev_ok = await http.get(f"{alma.url}/ok"), await http.get(f"{dev_url}/ok")
    assert differences(info.json(), dev_info.json()) == []
    assert info.json()["langgraph_py_version"] == dev_info.json()["langgraph_py_version"]
    assert info.json()["flags"]["assistants"] is True
    assert info.json()["flags"]["langsmith"] is False
    assert info.json()["host"]["kind"] == "self-hosted"
    # ALMA's own fields stay, for its web page.
    assert {"auth_required", "simulated_model", "model", "limits", "max_message_chars"} <= set(
        info.json()
    )
    assert info.json()["auth_required"] is True
    assert differences(ok.json(), dev_ok.json()) == []
    assert ok.json() == {"ok": True, "services": {}}


async def test_assistants_need_the_key_when_keys_are_configured(alma: Service) -> None:
    async with httpx.AsyncClient(base_url=alma.url) as http:
        refused = await http.post("/assistants/search", json={})
        graph = await http.get(f"/assistants/{MANAGER_ID}/graph")
    assert refused.status_code == graph.status_code == 401


# -- LangGraph Studio in a browser ------------------------------------------------------

PREFLIGHT = {"Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "content-type,x-api-key,last-event-id",
             "Access-Control-Request-Private-Network": "true"}  # fmt: skip


async def test_studio_preflights_are_allowed_with_private_network_access(alma: Service) -> None:
    async with httpx.AsyncClient(base_url=alma.url) as http:
        for path in ("/assistants/search", f"/threads/{MANAGER_ID}/runs/stream", "/info"):
            answer = await http.options(path, headers={"Origin": STUDIO, **PREFLIGHT})
            assert answer.status_code == 200, answer.text
            assert answer.headers["access-control-allow-origin"] == STUDIO
            assert answer.headers["access-control-allow-private-network"] == "true"
            allowed = answer.headers["access-control-allow-headers"].lower()
            assert {"content-type", "x-api-key", "last-event-id"} <= {
                h.strip() for h in allowed.split(",")
            }
            assert "DELETE" in answer.headers["access-control-allow-methods"]
            assert "PATCH" in answer.headers["access-control-allow-methods"]


async def test_simple_requests_expose_the_headers_studio_reads(alma: Service) -> None:
    async with httpx.AsyncClient(base_url=alma.url, headers={"Origin": STUDIO}) as http:
        answer = await http.get("/info")
    assert answer.headers["access-control-allow-origin"] == STUDIO
    exposed = {h.strip() for h in answer.headers["access-control-expose-headers"].split(",")}
    assert {"content-location", "location", "x-pagination-total", "x-pagination-next"} <= exposed


async def test_a_text_plain_json_body_is_read_as_json(alma: Service, dev_url: str) -> None:
    body = '{"limit":10,"offset":0,"metadata":{"created_by":"system"}}'
    headers = {"Content-Type": "text/plain;charset=UTF-8", "Origin": STUDIO, "x-api-key": KEY}
    async with httpx.AsyncClient(headers=headers) as http:
        ours = await http.post(f"{alma.url}/assistants/search", content=body)
        theirs = await http.post(f"{dev_url}/assistants/search", content=body)
        counted = await http.post(f"{alma.url}/assistants/count", content='{"graph_id":"manager"}')
    assert ours.status_code == theirs.status_code == 200, ours.text
    assert differences(ours.json(), theirs.json()) == []
    assert [a["assistant_id"] for a in ours.json()] == [MANAGER_ID]
    assert ours.headers["x-pagination-total"] == "1"
    assert counted.json() == 1


async def test_an_origin_not_configured_gets_no_cors_headers(alma: Service) -> None:
    stranger = {"Origin": "https://evil.example"}
    async with httpx.AsyncClient(base_url=alma.url) as http:
        preflight = await http.options("/assistants/search", headers={**stranger, **PREFLIGHT})
        simple = await http.get("/info", headers=stranger)
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-origin" not in simple.headers
