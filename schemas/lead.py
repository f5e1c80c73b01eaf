"""Events about one lead, in lifecycle order: captured → … → assigned."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import BaseModel, Field, model_validator

from schemas.envelope import FROZEN, AwareDatetime, EventBase, LeadEvent, ShortText, derive_id
from schemas.inputs import Activity, CrmOutcome
from schemas.inquiry import Answers, Consent, Contact, LongText
from schemas.rejected import Reason

Score = Annotated[float, Field(ge=0, le=100)]
"""A 0-100 similarity, as rapidfuzz gives it."""


class Company(BaseModel):
    """What enrichment knows about the lead's company."""

    model_config = FROZEN

    domain: str | None = None
    name: str | None = None
    free_mail: bool = Field(default=False, description="Address at a free-mail provider (B2C).")
    segment: Literal["b2b", "b2c", "unknown"] = "unknown"
    disposable: bool = Field(default=False, description="Throw-away address: no way to follow up.")
    industry: str | None = None
    size_band: str | None = Field(default=None, description="Employees band, e.g. 50-249.")
    employees: int | None = None
    country: str | None = None
    postal_code: str | None = None
    earlier_inquiries: int = Field(default=0, description="Earlier leads of the same company.")
    customer: bool = Field(default=False, description="Already a customer (internal history).")


class Territory(BaseModel):
    """Where the lead sits for sales: federal state, region and sales territory."""

    model_config = FROZEN

    state: str | None = None
    region: str | None = None
    territory: str | None = None


class Enrichment(BaseModel):
    """One fact an enrichment provider added, and how sure it is of it."""

    model_config = FROZEN

    provider: str
    field: str = Field(description="Dotted path in the profile, e.g. company.industry.")
    value: str | bool | int | float
    confidence: float = Field(ge=0, le=1)


class ProfileGaps(BaseModel):
    """Fields of the lead definition (must / should / can) still unknown: what to ask next."""

    model_config = FROZEN

    must: list[str] = Field(default_factory=list)
    should: list[str] = Field(default_factory=list)
    can: list[str] = Field(default_factory=list)


class LeadProfile(BaseModel):
    """The lead as the pipeline knows it; each stage may add to it."""

    model_config = FROZEN

    inquiry_id: str
    received_at: AwareDatetime
    contact: Contact
    message: LongText | None = None
    product_interest: list[str] = Field(default_factory=list)
    answers: Answers
    consent: Consent
    company: Company | None = None
    territory: Territory | None = None
    enrichments: list[Enrichment] = Field(default_factory=list)
    missing: ProfileGaps | None = None
    findings: list[Reason] = Field(
        default_factory=list,
        description="Plausibility problems that do not stop the lead (since 1.1), "
        "e.g. phone_invalid, postal_code_city_mismatch.",
    )


class InquiryAccepted(LeadEvent):
    """A plausible inquiry on its way to identity resolution, keyed by the person.

    `lead_id` is the lead this inquiry would start; identity resolution keeps it
    or attaches the inquiry to the person's existing lead.
    """

    event_type: Literal["InquiryAccepted"] = "InquiryAccepted"
    schema_version: str = "1.2"  # 1.1: pending / visited (the walk); 1.2: activities_at
    identity: str = Field(
        description="The identity key consulted at this step: email:…, phone:+49… or "
        "company:<name> (where the person's name is matched fuzzily)."
    )
    pending: list[str] = Field(
        default_factory=list, description="Keys still to consult after this one (since 1.1)."
    )
    visited: list[str] = Field(
        default_factory=list,
        description="Keys consulted before, claimed for this inquiry's own lead (since 1.1).",
    )
    activities_at: list[str] | None = Field(
        default=None,
        description="The visited keys where activities of an unknown person waited: only "
        "these are confirmed when the walk ends with the inquiry's own lead (since 1.2; "
        "None: an older step, every visited key is confirmed).",
    )
    payload: LeadProfile

    def key(self) -> bytes | None:
        return self.identity.encode()

    def all_keys(self) -> list[str]:
        return [*self.visited, self.identity, *self.pending]


class IdentityClaimed(EventBase):
    """An identity key belongs to a lead from now on; keyed by the identity key."""

    event_type: Literal["IdentityClaimed"] = "IdentityClaimed"
    schema_version: str = "1.1"  # 1.1: keys, moved_from
    identity: str
    lead_id: uuid.UUID
    name: str | None = Field(default=None, description="Folded person name, for company keys.")
    person: str | None = Field(
        default=None,
        description="For company keys: the person's e-mail or phone key, kept beside the "
        "name so that erasing the person finds the entry.",
    )
    replaces: uuid.UUID | None = Field(
        default=None,
        description="The lead this key was claimed for while the inquiry's walk went on; "
        "the walk found the person's earlier lead after all.",
    )
    moved_from: uuid.UUID | None = Field(
        default=None,
        description="An operator's correction (`leadflow lead split` / `merge`): the key, or "
        "at a company the person's keys, move from this lead to `lead_id` (since 1.1).",
    )
    keys: list[str] = Field(
        default_factory=list,
        description="For company keys: the person's e-mail and phone keys "
        "(since 1.1), which tell a namesake with another address or phone apart.",
    )

    def key(self) -> bytes | None:
        return self.identity.encode()


class ActivityUnattached(EventBase):
    """An activity without a lead id on its way to the partition of its identity key;
    kept there until a lead claims the key (an anonymous visitor fills a form later)."""

    event_type: Literal["ActivityUnattached"] = "ActivityUnattached"
    identity: str
    payload: Activity

    def key(self) -> bytes | None:
        return self.identity.encode()


class LeadCaptured(LeadEvent):
    event_type: Literal["LeadCaptured"] = "LeadCaptured"
    schema_version: str = "1.3"  # 1.1: merged; 1.2: matched_on; 1.3: match_score
    payload: LeadProfile
    merged: bool = Field(
        default=False,
        description="The inquiry came from a person already known and was attached to "
        "their existing lead (since 1.1).",
    )
    matched_on: Literal["email", "phone", "company"] | None = Field(
        default=None,
        description="The identity key that found the existing lead; company means the same "
        "name within the company, with no conflicting e-mail or phone (since 1.2).",
    )
    match_score: Score | None = Field(
        default=None,
        description="For matched_on = company: how alike the last names are (0-100; first "
        "names are always the same), see LEADFLOW_IDENTITY_NAME_MATCH (since 1.3).",
    )


class CorrectIdentity(EventBase):
    """Command: an operator corrects who is who (`leadflow lead split` / `lead merge`).

    split: the inquiry of `captures[0]`, merged into `lead`, is another person: it
    becomes a lead of its own (its id follows from the inquiry's trace and `lead`),
    captured again so it is enriched and qualified afresh, and its e-mail, phone
    and company keys find that lead from now on. merge: `other_lead` is the person
    of `lead`: the identity keys of its inquiries (`captures`) find `lead` from now
    on. `captures` are the `LeadCaptured` events the CLI read from the warehouse;
    they name the person, like every inquiry on a topic. Keyed by `lead`.
    """

    event_type: Literal["CorrectIdentity"] = "CorrectIdentity"
    action: Literal["split", "merge"]
    lead: uuid.UUID = Field(description="split: the lead the inquiry leaves; merge: the one kept.")
    other_lead: uuid.UUID | None = Field(
        default=None, description="merge: the lead merged into `lead`."
    )
    captures: list[LeadCaptured] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> CorrectIdentity:
        if self.action == "split":
            if self.other_lead is not None or len(self.captures) != 1:
                raise ValueError("a split names one inquiry (one capture) and no other lead")
            if self.captures[0].lead_id != self.lead or not self.captures[0].merged:
                raise ValueError("a split takes off an inquiry that was merged into `lead`")
        elif self.other_lead is None or self.other_lead == self.lead:
            raise ValueError("a merge names another lead (`other_lead`)")
        elif any(c.lead_id != self.other_lead for c in self.captures):
            raise ValueError("a merge carries the captures of `other_lead`")
        return self

    def key(self) -> bytes | None:
        return str(self.lead).encode()


class Correction(BaseModel):
    """What an operator's correction did to one lead."""

    model_config = FROZEN

    action: Literal["split_off", "split_from", "merged_in", "merged_into"] = Field(
        description="split_off: an inquiry left this lead for `other_lead`; split_from: this "
        "lead was split off `other_lead`; merged_in: `other_lead` was merged into this lead; "
        "merged_into: this lead was merged into `other_lead`."
    )
    other_lead: uuid.UUID
    inquiry_id: str | None = Field(default=None, description="split: the inquiry that moved.")
    keys: int = Field(ge=0, description="Identity keys that find another lead from now on.")


class IdentityCorrected(EventBase):
    """An operator's correction, one event per lead it concerns; keyed by `lead_id`."""

    event_type: Literal["IdentityCorrected"] = "IdentityCorrected"
    lead_id: uuid.UUID
    command_id: uuid.UUID = Field(description="The CorrectIdentity command's event_id.")
    payload: Correction


class LeadEnriched(LeadEvent):
    event_type: Literal["LeadEnriched"] = "LeadEnriched"
    schema_version: str = "1.1"  # company details, territory, enrichments, missing
    payload: LeadProfile


LeadClass = Literal["hot", "warm", "cold"]
LifecycleStatus = Literal["lead", "mql", "sql", "disqualified", "retired"]
Decision = Literal["sales", "nurture", "retire"]


class CriterionScore(BaseModel):
    """One line of the explainable score: rating × weight (seed 002 §6.4.1)."""

    model_config = FROZEN

    criterion: str
    value: str | None = Field(description="The lead's value, or null when unknown.")
    rating: int = Field(ge=0, le=4, description="1–4, or 0 when the value is unknown.")
    weight: int = Field(ge=1, le=4)
    points: int


class ActivityPoints(BaseModel):
    """Behaviour score of one activity type: points after time decay (explainable)."""

    model_config = FROZEN

    activity: str
    count: int
    points: float


class LeadHistory(BaseModel):
    """The lead's timeline in brief, for the rep who calls (since 1.1)."""

    model_config = FROZEN

    first_inquiry_at: AwareDatetime | None = None
    inquiries: int = Field(default=0, description="Inquiries attached to this lead.")
    channels: list[str] = Field(default_factory=list, description="Channels it came through.")
    activities: dict[str, int] = Field(
        default_factory=dict, description="Tracked activities by type, e.g. page_view: 4."
    )
    last_activity_at: AwareDatetime | None = None


class Qualification(BaseModel):
    model_config = FROZEN

    profile: LeadProfile
    score: int
    breakdown: list[CriterionScore]
    lead_class: LeadClass
    status: LifecycleStatus
    decision: Decision
    iteration: int = Field(ge=1, description="How often this lead went through qualification.")
    fit_score: int = Field(default=0, description="Σ rating × weight of the criteria.")
    behaviour_score: int = Field(default=0, description="Activity points after time decay.")
    behaviour: list[ActivityPoints] = Field(default_factory=list)
    grade: str | None = Field(default=None, description="Timeframe digit + volume letter, e.g. 1A.")
    fast_lane: str | None = Field(
        default=None, description="The purchase-intent signal that sent the lead to sales at once."
    )
    reason: str | None = Field(default=None, description="Why disqualified or retired.")
    trigger: str = Field(default="inquiry", description="What caused this qualification.")
    history: LeadHistory = Field(default_factory=LeadHistory)
    win_probability: float | None = Field(
        default=None, ge=0, le=1, description="Learned from won/lost outcomes; null until enough."
    )
    cycle: int = Field(
        default=1,
        ge=1,
        description="The lead's sales cycle: 1, and one more for every inquiry after a won or "
        "lost outcome (since 1.3).",
    )
    prior_outcome: Literal["won", "lost"] | None = Field(
        default=None, description="How the previous cycle ended; null in the first (since 1.2)."
    )


class RuleVersion(BaseModel):
    """Which rules made a decision: a name RevOps gave them and a content hash, so
    reports can group decisions by the rules that made them."""

    model_config = FROZEN

    name: str = Field(
        description="The rule file's `version:` if it has one, else its file name; a "
        "variant's rules add `experiment/variant`, e.g. scoring.yaml (mql-bar/low)."
    )
    hash: str = Field(
        description="The first 12 hex digits of the SHA-256 of the rules as validated: the "
        "same rules give the same hash, whatever the comments or layout of the file."
    )


class VariantAssigned(BaseModel):
    """The variant of a running experiment a lead is in (chosen from its lead id)."""

    model_config = FROZEN

    experiment: str
    variant: str


class Decided(BaseModel):
    """What every qualification, nurture and routing decision records about its rules.

    Both fields are new in the version each event class names; older events have
    neither (None / empty), so readers treat them as made by unrecorded rules."""

    model_config = FROZEN

    rules: RuleVersion | None = Field(
        default=None, description="The rule set that made this decision (null: older events)."
    )
    experiments: list[VariantAssigned] = Field(
        default_factory=list,
        description="The lead's variant in each experiment running when the decision was made.",
    )


class LeadQualified(Decided, LeadEvent):
    event_type: Literal["LeadQualified"] = "LeadQualified"
    schema_version: str = "1.3"  # 1.1: fit/behaviour, grade, …; 1.2: cycle, …; 1.3: rules
    payload: Qualification


class ContactPermissions(BaseModel):
    """May the lead be contacted on each channel (since 1.2)?

    Consent comes with the inquiry (`consent.marketing_email` for e-mail,
    `consent.phone_contact` for calls and SMS); an `unsubscribed` activity
    withdraws a channel, `do_not_contact` all of them, for good.
    """

    model_config = FROZEN

    email: bool = False
    call: bool = False
    sms: bool = False
    do_not_contact: bool = Field(default=False, description="The person asked for no contact.")


class Touch(BaseModel):
    """An instruction for the e-mail / marketing-automation sender.

    The sender reports what happened on `leads.activity` (`email_sent`,
    `email_opened`, `email_clicked`, `replied`, `sms_reply`, `email_bounced`,
    `unsubscribed`) with the lead's `lead_id` and `details.touch_id` = this
    event's `event_id`; those results feed re-qualification and the program's
    exit conditions.
    """

    model_config = FROZEN

    channel: Literal["email", "call_task", "sms"]
    content_id: ShortText
    reason: ShortText
    due_at: AwareDatetime
    recipient: str | None = Field(description="Address or number to use; null if none known.")
    purpose: Literal["fulfillment", "nurture"] = Field(
        default="nurture",
        description="fulfillment: the answer every inquiry gets, one per inquiry (its "
        "trace_id); nurture: a step that keeps a not-yet-ready lead warm (since 1.1).",
    )
    program: str | None = Field(default=None, description="Nurture program of the step (1.2).")
    step: int | None = Field(default=None, ge=1, description="Step number in it, from 1 (1.2).")
    response_seconds: float | None = Field(
        default=None,
        ge=0,
        description="fulfillment: seconds from the inquiry's arrival (received_at) to this "
        "answer; compare with the target send_within_minutes (since 1.2).",
    )


class TouchScheduled(Decided, LeadEvent):
    event_type: Literal["TouchScheduled"] = "TouchScheduled"
    schema_version: str = "1.3"  # purpose; program, step, response_seconds; 1.3: rules
    payload: Touch


class Nurturing(BaseModel):
    """Where a lead stands in nurture after a change: its segments and programs."""

    model_config = FROZEN

    reason: ShortText = Field(description="What changed it, e.g. qualified: cold lead, replied.")
    lead_class: LeadClass | None = None
    segments: list[str] = Field(default_factory=list)
    programs: list[str] = Field(default_factory=list, description="Programs it is in now.")
    entered: list[str] = Field(default_factory=list)
    left: list[str] = Field(default_factory=list)
    next_step_at: AwareDatetime | None = None
    contact_permissions: ContactPermissions = Field(default_factory=ContactPermissions)


class LeadNurtured(Decided, LeadEvent):
    """The nurture gate kept a lead (not ready for sales), or its programs changed."""

    event_type: Literal["LeadNurtured"] = "LeadNurtured"
    schema_version: str = "1.1"  # rules, experiments
    payload: Nurturing


class NurtureStepDue(EventBase):
    """A durable nurture timer fired: a program step of the lead is due."""

    event_type: Literal["NurtureStepDue"] = "NurtureStepDue"
    lead_id: uuid.UUID
    due_at: AwareDatetime
    step: str = Field(description="program:run:step of the enrollment that is due.")


Deal = Literal["new_business", "upsell"]


class Handoff(BaseModel):
    model_config = FROZEN

    qualification: Qualification
    reason: ShortText
    contact_permissions: ContactPermissions | None = Field(
        default=None, description="What the lead allows, per channel (since 1.2)."
    )
    deal: Deal = Field(
        default="new_business",
        description="upsell: a customer (won before) asked again, for upsell or cross-sell by "
        "its account owner (since 1.3).",
    )


class LeadHandedOff(Decided, LeadEvent):
    event_type: Literal["LeadHandedOff"] = "LeadHandedOff"
    schema_version: str = "1.4"  # deal, qualification.cycle; 1.4: rules, experiments
    payload: Handoff


class Owner(BaseModel):
    model_config = FROZEN

    rep_id: str
    name: str
    email: str


class Assignment(BaseModel):
    """Everything a rep and a CRM need to act on a sales-ready lead."""

    model_config = FROZEN

    qualification: Qualification
    owner: Owner
    queue: str
    rule: str = Field(description="The routing rule that chose the queue.")
    assigned_by: str = Field(
        default="round_robin",
        description="How the owner was chosen: the queue's strategy, account_owner, "
        "manager, nobody_available or reassigned (since 1.1).",
    )
    sla_due_at: AwareDatetime
    reassignment: int = Field(
        default=0, ge=0, description="0 for the first owner; n after n SLA reassignments (1.1)."
    )
    contact_permissions: ContactPermissions | None = Field(
        default=None,
        description="May the rep e-mail, call or text the lead: consent from the inquiry, "
        "unsubscribes and do-not-contact since (1.2).",
    )
    deal: Deal = Field(
        default="new_business",
        description="upsell: a customer (won before) asked again; the hand-off's marker (1.3).",
    )


class LeadAssigned(Decided, LeadEvent):
    event_type: Literal["LeadAssigned"] = "LeadAssigned"
    schema_version: str = "1.4"  # 1.2: contact_permissions; 1.3: deal, …; 1.4: rules
    payload: Assignment


class SlaBreach(BaseModel):
    model_config = FROZEN

    owner: Owner
    queue: str
    sla_due_at: AwareDatetime
    escalate_to: str
    breach: int = Field(
        default=1,
        ge=1,
        description="1: escalated to the manager; 2: the lead is reassigned (since 1.1).",
    )


class SlaBreached(LeadEvent):
    event_type: Literal["SlaBreached"] = "SlaBreached"
    schema_version: str = "1.1"  # breach
    payload: SlaBreach


class SlaReminder(BaseModel):
    model_config = FROZEN

    owner: Owner
    queue: str
    sla_due_at: AwareDatetime


class SlaReminderDue(LeadEvent):
    """The owner has not reported contact and the SLA deadline is near."""

    event_type: Literal["SlaReminderDue"] = "SlaReminderDue"
    payload: SlaReminder


class Routed(BaseModel):
    model_config = FROZEN

    handoff: Handoff
    queue: str
    rule: str
    tried: list[str] = Field(
        default_factory=list, description="Queues that had nobody available (since 1.1)."
    )
    reassign_from: Owner | None = Field(
        default=None, description="The owner who breached the SLA twice (since 1.1)."
    )
    reassignment: int = Field(default=0, ge=0, description="Which reassignment (since 1.1).")
    account_owner: str | None = Field(
        default=None,
        description="Rep id who owns the account: for an upsell the rep who won the customer, "
        "else the company's account owner from routing.yaml (since 1.3).",
    )


class LeadRouted(Decided, LeadEvent):
    """A hand-off re-keyed by its routing queue, so one partition owns the queue."""

    event_type: Literal["LeadRouted"] = "LeadRouted"
    schema_version: str = "1.2"  # the profile / qualification gained fields; 1.2: rules
    payload: Routed

    def key(self) -> bytes | None:
        return self.payload.queue.encode()


class ActivityRecorded(EventBase):
    """A tracked activity attached to its lead, keyed by `lead_id` for qualification."""

    event_type: Literal["ActivityRecorded"] = "ActivityRecorded"
    lead_id: uuid.UUID
    payload: Activity


class LeadDue(EventBase):
    """A durable timer of one lead fired (`pipeline.worker.timers`): what falls due at `due_at`."""

    lead_id: uuid.UUID
    due_at: AwareDatetime

    @classmethod
    def fired(cls, lead_id: uuid.UUID, due_at: datetime | None, now: datetime) -> Self | None:
        """The event once `due_at` has come (the same id every time the timer fires)."""
        if due_at is None or due_at > now:
            return None
        name = cls.model_fields["event_type"].default
        return cls(
            event_id=derive_id(name, lead_id, due_at.isoformat()),
            event_type=name,
            lead_id=lead_id,
            occurred_at=due_at,
            emitted_at=now,
            due_at=due_at,
        )


class RequalificationDue(LeadDue):
    """A durable timer fired: the lead is qualified again (behaviour fades, counts grow)."""

    event_type: Literal["RequalificationDue"] = "RequalificationDue"


class Release(BaseModel):
    """A CRM closed the lead (won, lost, returned): its owner has room again."""

    model_config = FROZEN

    owner: Owner
    queue: str
    outcome: str
    outcome_id: str = Field(description="The CRM update that closed it.")


class LeadReleased(LeadEvent):
    """Keyed by routing queue, so the partition owning the queue's load frees it."""

    event_type: Literal["LeadReleased"] = "LeadReleased"
    payload: Release

    def key(self) -> bytes | None:
        return self.payload.queue.encode()


class RecordedOutcome(BaseModel):
    """A CRM outcome the pipeline applied to its lead, and the assignment it belongs to."""

    model_config = FROZEN

    outcome: CrmOutcome
    owner: Owner | None = Field(
        default=None, description="The lead's owner then; null for a lead never assigned."
    )
    queue: str | None = None
    cycle: int = Field(default=1, ge=1, description="The sales cycle the outcome belongs to.")


class OutcomeRecorded(EventBase):
    """A CRM outcome that found its lead (keyed by the body's lead id, whatever the CRM's
    key): qualification, nurture and the warehouse read outcomes from here."""

    event_type: Literal["OutcomeRecorded"] = "OutcomeRecorded"
    lead_id: uuid.UUID
    payload: RecordedOutcome


class OutcomeWaitExpired(LeadDue):
    """CRM outcomes held for a lead with no owner yet waited too long (a timer fired)."""

    event_type: Literal["OutcomeWaitExpired"] = "OutcomeWaitExpired"


class ClaimRequested(EventBase):
    """A rep asks for the next lead waiting in a pull queue (`POST /v1/queues/{queue}/claim`).

    Keyed by routing queue, so the partition that owns the queue's waiting
    leads decides; `event_id` is the claim id.
    """

    event_type: Literal["ClaimRequested"] = "ClaimRequested"
    queue: str
    rep_id: str

    def key(self) -> bytes | None:
        return self.queue.encode()
