"""Distribute: routed leads go to exactly one rep of their queue; closed leads free
the rep's capacity.

`route` (in `agents.sla`, lead-keyed) picks the queue and re-keys the lead by
it; `distribute` consumes that queue-keyed topic, so one partition owns each
queue's state (fairness credit, load, daily counts: a table, durable through
its changelog). The decision per lead and queue is kept too, so a redelivered
hand-off re-emits the same decision instead of assigning a second owner. Pull
queues park their leads until a rep claims one (`POST /v1/queues/{queue}/claim`
→ leads.claims → `claim`): a queue's line is a pair of counters and one entry
per waiting lead, so parking or claiming writes one lead's entry, however long
the line (the one list per queue of older releases is claimed from first);
`release` (leads.releases, keyed by queue) frees the owner's load in the
queue's own partition. A lead is assigned by its rules: the directory's
routing.yaml, or its variant's while an experiment on routing runs (a variant
has the same queues, so the queue's state is one for both); every assignment
records which.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

import structlog
from faust.web import Request, Response, View
from pydantic import Field, SecretStr

from pipeline.config.settings import Settings
from pipeline.domain.distribute.routing import (
    PullLine,
    QueueState,
    claim_lead,
    decision_scope,
    distribute_lead,
    queue_report,
    repeat_decision,
)
from pipeline.worker.http import caller
from pipeline.worker.services import Services
from pipeline.worker.stage import Stage
from pipeline.worker.tables import TypedTable, json_text, json_texts
from schemas.envelope import derive_id, utcnow
from schemas.lead import ClaimRequested, LeadAssigned, LeadReleased, LeadRouted

log = structlog.get_logger("leadflow.agent")
Decision = Annotated[LeadAssigned | LeadRouted, Field(discriminator="event_type")]
Kept = json_text(Decision, empty=True)
"""A kept decision; None (stored "") for a claim that found no lead."""


def claim_keys(settings: Settings) -> dict[str, SecretStr]:
    return settings.claim_keys


def register(stage: Stage, _services: Services) -> None:
    """`distribute`, `claim`, `release`, `GET /v1/queues` and the claim endpoint."""
    rules = stage.rules.routing
    minute = timedelta(seconds=stage.settings.sla_minute_seconds)
    partitions = stage.topics.routing.partitions
    queues: TypedTable[QueueState] = stage.table("routing-queue-state", QueueState, partitions)
    decided: TypedTable[LeadAssigned | LeadRouted | None] = stage.table(
        "routing-decision", Kept, partitions
    )
    legacy: TypedTable[list[LeadRouted]] = stage.table(  # older releases: queue → leads
        "routing-waiting", json_texts(LeadRouted), partitions
    )
    lines: TypedTable[PullLine] = stage.table("routing-pull-line", PullLine, partitions)
    parked: TypedTable[str] = stage.table(  # `queue|position` → the lead's scope key
        "routing-pull-parked", str, partitions
    )

    def queue_state(name: str) -> QueueState:
        return queues.get(name) or QueueState()

    def assign(routed: LeadRouted) -> LeadAssigned | LeadRouted | None:
        scope = decision_scope(routed)
        key = f"{scope}:{routed.payload.reassignment}"
        earlier = decided.get(key)
        if earlier:
            owner = decided.get(f"{scope}:owner")
            latest = owner if isinstance(owner, LeadAssigned) else None
            repeated = repeat_decision(earlier, routed, latest)
            if repeated is earlier:  # a redelivery: the very same event
                return earlier
            return stage.rules.for_lead(routed.lead_id, utcnow()).stamp("routing", repeated)
        name, now = routed.payload.queue, utcnow()
        chosen = stage.rules.for_lead(routed.lead_id, now)  # its variant's, if any
        if chosen.routing.queues[name].mode == "pull" and routed.payload.reassign_from is None:
            park(name, routed)
            log.info("routing.waiting", queue=name)
            return None  # until a rep claims it
        result, after = distribute_lead(routed, chosen.routing, queue_state(name), now, minute)
        queues[name] = after
        result = chosen.stamp("routing", result)
        keep(key, result)
        return result

    def park(name: str, routed: LeadRouted) -> None:
        """At the end of the queue's line, once (a redelivery finds it parked)."""
        waits = f"waiting:{name}:{routed.lead_id}"
        if waits in decided or any(w.lead_id == routed.lead_id for w in legacy.get(name) or []):
            return
        line = lines.get(name) or PullLine()
        decided[waits] = routed
        parked[f"{name}|{line.tail}"] = waits
        lines[name] = line.model_copy(update={"tail": line.tail + 1})

    def oldest(name: str) -> tuple[LeadRouted | None, PullLine]:
        """The line's first lead still waiting (an erased one leaves a gap), and the
        line with the gaps before it skipped."""
        line = lines.get(name) or PullLine()
        while line.head < line.tail:
            waits = parked.get(f"{name}|{line.head}")
            routed = decided.get(waits) if waits else None
            if isinstance(routed, LeadRouted):
                return routed, line
            if waits is not None:
                del parked[f"{name}|{line.head}"]
            line = line.model_copy(update={"head": line.head + 1})
        return None, line

    def take(name: str, line: PullLine, routed: LeadRouted) -> None:
        del parked[f"{name}|{line.head}"]
        del decided[f"waiting:{name}:{routed.lead_id}"]
        lines[name] = line.model_copy(update={"head": line.head + 1})

    def keep(key: str, decision: LeadAssigned | LeadRouted) -> None:
        """The decision, and (for an owner) the lead's current owner in this queue."""
        decided[key] = decision
        if isinstance(decision, LeadAssigned):
            decided[f"{decision_scope(decision)}:owner"] = decision

    def claim(request: ClaimRequested) -> LeadAssigned | None:
        """The oldest lead waiting in a pull queue goes to the rep who claims it."""
        done = f"claim:{request.event_id}"
        if done in decided:  # a redelivered claim: the same answer
            answer = decided.get(done)
            return answer if isinstance(answer, LeadAssigned) else None
        name = request.queue
        older = legacy.get(name) or []
        first, line = (older[0], None) if older else oldest(name)
        now = utcnow()
        chosen = stage.rules.for_lead(first.lead_id, now) if first else stage.rules.base
        result, _, after = claim_lead(
            request, [first] if first else [], chosen.routing, queue_state(name), now, minute
        )
        if isinstance(result, str):
            log.info("routing.claim_unfilled", queue=name, rep_id=request.rep_id, why=result)
            decided[done] = None
            return None
        assert first is not None  # a lead was assigned
        if line is None:
            legacy[name] = older[1:]
        else:
            take(name, line, first)
        queues[name] = after
        result = chosen.stamp("routing", result)
        decided[done] = result
        keep(f"{decision_scope(result)}:0", result)
        return result

    def release(released: LeadReleased) -> None:
        name = released.payload.queue
        queues[name] = queue_state(name).release(released.payload.owner.rep_id)

    stage.agent(stage.topics.routing, "distribute", assign)
    stage.agent(stage.topics.claims, "claim", claim)
    stage.agent(stage.topics.releases, "release", release)

    @stage.page("/v1/queues", needs_tables=True)
    class Queues(View):
        """Load, caps and availability per rep (the queues this worker owns)."""

        async def get(self, request: Request) -> Response:
            return self.json(queue_report(rules, dict(queues.items()), utcnow()))

    claims = stage.channel(stage.topics.claims)

    @stage.page("/v1/queues/{queue}/claim", keys=claim_keys)
    class Claim(View):
        """Pull: a rep (identified by their X-Api-Key) claims the oldest waiting lead.

        202 once the claim is in Kafka; the lead arrives on leads.sales-ready
        with `assigned_by: claimed` (nothing, if no lead waits).
        """

        async def post(self, request: Request, queue: str) -> Response:
            rep_id = caller(request)
            if queue not in rules.queues:
                return self.json({"error": f"no queue {queue!r}"}, status=404)
            if rules.queues[queue].mode != "pull":
                return self.json({"error": f"queue {queue!r} assigns by push"}, status=409)
            if rep_id not in {r.id for r in rules.queues[queue].reps}:
                return self.json({"error": f"{rep_id} is no rep of {queue!r}"}, status=403)
            now = utcnow()
            key = request.headers.get("Idempotency-Key")
            claim_id = derive_id("claim", queue, rep_id, key) if key else uuid.uuid4()
            event = ClaimRequested(
                event_id=claim_id, occurred_at=now, emitted_at=now, queue=queue, rep_id=rep_id
            )
            await (await claims.send(key=event.key(), value=event.model_dump_json().encode()))
            return self.json({"claim_id": str(claim_id), "queue": queue}, status=202)
