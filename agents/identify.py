"""Identify: inquiries and activities are resolved to the person's lead.

Every table here is keyed by an identity key and owned by that key's
partition (`leads.identify`, `leads.identity-claims` and
`leads.activity-identify` are all keyed by it and co-partitioned), and
durable through its changelog, so it is right with many workers. Leads then
go on keyed by `lead_id`. An operator's correction (`leads.identity-corrections`)
changes no table here directly: it becomes claims, applied at each key's partition.
"""

from __future__ import annotations

from pipeline.domain.identify.identity import IdentityBook, correct_identity, route_activity
from pipeline.worker.services import Services
from pipeline.worker.stage import Emitted, Received, Stage
from schemas.envelope import utcnow
from schemas.inputs import Activity
from schemas.lead import ActivityUnattached, CorrectIdentity, IdentityClaimed

CHANGELOG_RESERVE = 4096
"""Room in a changelog message for its key and record overhead."""


def register(stage: Stage, _services: Services) -> None:
    """Identity resolution of inquiries and activities, claims and operator corrections."""
    partitions = stage.topics.identify.partitions
    book = IdentityBook(
        leads=stage.faust_table("identity-lead", partitions, "json"),
        waiting=stage.faust_table("identity-waiting-activities", partitions, "json"),
        name_match=stage.settings.identity_name_match,
        waiting_max_bytes=stage.settings.max_message_bytes - CHANGELOG_RESERVE,
    )
    region = stage.settings.default_region

    def claim(claimed: IdentityClaimed) -> Emitted:
        return book.record(claimed, utcnow())

    def correct(command: CorrectIdentity) -> Emitted:
        return correct_identity(command, utcnow())

    def identify_activity(unattached: ActivityUnattached, received: Received) -> Emitted:
        return book.identify_activity(unattached, received.at, utcnow())

    def attach_activity(activity: Activity, received: Received) -> Emitted:
        return route_activity(activity, received.raw or b"", received.at, region, utcnow())

    stage.agent(stage.topics.identify, "identify", book.identify)
    stage.agent(stage.topics.identity_claims, "identity-claims", claim)
    stage.agent(stage.topics.identity_corrections, "correct-identity", correct)
    stage.agent(
        stage.topics.activity_identify, "identify-activity", identify_activity, message=True
    )
    stage.agent(stage.topics.activity, "attach-activity", attach_activity, message=True)
