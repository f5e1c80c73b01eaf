"""Every agent runs the worker's one loop with its one failure policy, in-process:
the real app as `pipeline.bootstrap` builds it (memory tables, no broker), each
agent's Faust function fed messages directly and its sends recorded.

- an exception in a step is a rejection on `leads.rejected`, exactly once, naming
  the agent and the error, and the agent goes on with the next message;
- a failed send stops the worker (before Faust could commit past the message);
- bytes no step can read are rejected once per topic: by the topic's main agent,
  not again by the other agents that read the same topic.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from pipeline.bootstrap import build
from pipeline.config.rules import load_rules
from pipeline.config.settings import load_settings
from pipeline.config.topics import load_topics
from pipeline.worker.stage import EXIT_EMIT_FAILED, Outgoing, Received, Stage
from schemas.rejected import MessageRejected
from tests.support.loop import LAST_LOGS, run_agent, source_of

UNREADABLE = b"\x00 not an event {"
"""Bytes no agent can decode, on any topic."""


class Stopped(Exception):
    """What `Stage.stop` raises here instead of ending the test process."""


@pytest.fixture
def stage(tmp_path: Path) -> Iterator[Stage]:
    structlog.reset_defaults()  # the stage's logger must not be cached on a closed stream
    settings = load_settings(
        state_dir=tmp_path, table_store="memory://", topic_prefix="loop.", app_id="loop-test"
    )
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    yield build(settings, topics, load_rules(settings.rules_dir))


def run(
    stage: Stage, name: str, values: list[bytes], fail: Exception | None = None
) -> list[Outgoing]:
    """`values` through agent `name`, a failed send raising `Stopped`; what it sent."""

    def stop(code: int) -> None:
        raise Stopped(code)

    stage.stop = stop
    return run_agent(stage, name, values, fail)[0]


def rejections(stage: Stage, sent: list[Outgoing]) -> list[MessageRejected]:
    rejected = [m for m in sent if m.spec == stage.topics.rejected]
    return [MessageRejected.model_validate_json(m.value) for m in rejected]


def test_every_agent_of_the_app_runs_the_one_loop(stage: Stage) -> None:
    assert len(stage.app.agents) == 27  # README, "Architecture": the agents by stage
    assert set(stage.app.agents) == set(stage.steps)
    for name, agent in stage.app.agents.items():
        assert agent.fun.__qualname__ == "Stage._register.<locals>.run", name


def test_an_exception_in_any_agent_is_one_rejection_and_the_agent_goes_on(
    stage: Stage,
) -> None:
    for name in stage.app.agents:
        calls: list[Received] = []

        def boom(received: Received, calls: list[Received] = calls) -> None:
            calls.append(received)
            if received.at.offset == 0:
                raise KeyError("a bug")

        stage.steps[name] = boom
        sent = run(stage, name, [b'{"first": 1}', b'{"second": 2}'])
        assert [c.at.offset for c in calls] == [0, 1], name  # the agent went on
        (rejection,) = rejections(stage, sent)
        assert len(sent) == 1, name
        assert rejection.payload.stage == name
        assert [r.code for r in rejection.payload.reasons] == ["stage_error"]
        assert "KeyError" in rejection.payload.reasons[0].message
        assert rejection.payload.offset == 0
        assert rejection.payload.topic == source_of(stage, name)
        errors = [e for e in LAST_LOGS if e["event"] == "stage.error"]
        assert [(e["stage"], e["at"]) for e in errors] == [(name, f"{rejection.payload.topic}/0/0")]


def test_a_failed_send_in_any_agent_stops_the_worker_before_the_next_message(
    stage: Stage,
) -> None:
    for name in stage.app.agents:
        calls: list[int] = []

        def boom(received: Received, calls: list[int] = calls) -> None:
            calls.append(received.at.offset)
            raise ValueError("a bug")  # its rejection is the send that fails

        stage.steps[name] = boom
        with pytest.raises(Stopped) as stopped:
            run(stage, name, [b"{}", b"{}"], fail=ConnectionError("broker down"))
        assert stopped.value.args == (EXIT_EMIT_FAILED,), name
        assert calls == [0], name  # nothing after the message whose send failed
        assert [e["event"] for e in LAST_LOGS if e["log_level"] == "critical"] == [
            "stage.emit_failed"
        ]


def test_unreadable_bytes_are_rejected_once_per_topic_by_the_real_steps(stage: Stage) -> None:
    by_topic: Counter[str] = Counter()
    for name in stage.app.agents:
        found = rejections(stage, run(stage, name, [UNREADABLE]))
        assert all(r.payload.stage == name for r in found), name
        by_topic[source_of(stage, name)] += len(found)
    read = {source_of(stage, name) for name in stage.app.agents}
    assert by_topic == Counter(dict.fromkeys(read, 1))
