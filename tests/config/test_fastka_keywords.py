"""fastka's own global_defs keywords reach the daemon's view of the configuration."""

from fastka.child import facts_of
from fastka.config import loads


def test_status_keywords_reach_the_daemon() -> None:
    config, diags = loads(
        "global_defs {\n"
        "  fastka_status_socket /run/fastka/status.sock\n"
        "  fastka_status_http 127.0.0.1:9650\n"
        "  fastka_status_file /run/fastka/status.json\n"
        "}\n"
    )
    assert not [d for d in diags if "Unknown keyword" in d.message], [d.message for d in diags]
    facts = facts_of(config)
    assert facts.status_socket == "/run/fastka/status.sock"
    assert facts.status_http == "127.0.0.1:9650"
    assert facts.status_file == "/run/fastka/status.json"
