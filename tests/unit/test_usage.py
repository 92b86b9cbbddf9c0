from langchain_core.messages import AIMessage

from nodes.usage import RunUsage, TokenUsage, add_usage, call_usage


def usage(i: int, o: int, calls: int = 1) -> TokenUsage:
    return TokenUsage(input_tokens=i, output_tokens=o, total_tokens=i + o, calls=calls)


def test_reducer_adds_per_node_and_recomputes_the_total() -> None:
    left = RunUsage(total=usage(10, 5), nodes={"plan": usage(10, 5)})
    right = RunUsage(total=usage(20, 7), nodes={"analyse": usage(20, 7)})
    merged = add_usage(add_usage(left, right), right)
    assert merged["nodes"]["plan"] == usage(10, 5)
    assert merged["nodes"]["analyse"] == usage(40, 14, calls=2)
    assert merged["total"] == usage(50, 19, calls=3)


def test_reducer_starts_from_nothing() -> None:
    assert add_usage(None, None) == RunUsage(total=usage(0, 0, calls=0), nodes={})


def test_reported_usage_is_preferred_to_estimates() -> None:
    message = AIMessage(
        "hi", usage_metadata={"input_tokens": 12, "output_tokens": 3, "total_tokens": 15}
    )
    assert call_usage("compose", message, estimated_input=99, estimated_output=99)["total"] == (
        usage(12, 3)
    )


def test_estimates_stand_in_when_the_provider_reports_nothing() -> None:
    recorded = call_usage("compose", AIMessage("hi"), estimated_input=40, estimated_output=2)
    assert recorded["nodes"]["compose"] == usage(40, 2)
