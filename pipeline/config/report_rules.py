"""What the reports compare against, kept by marketing and management in YAML:
campaign costs (`costs.yaml`) and targets (`targets.yaml`) in the rules directory."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field

from pipeline.config.yaml_model import load_yaml_model
from pipeline.domain.rules import RULE


def _month(value: str) -> str:
    try:
        date.fromisoformat(f"{value}-01")
    except ValueError:
        raise ValueError(f"a month is written YYYY-MM, e.g. 2026-11; got {value!r}") from None
    return value


Month = Annotated[str, AfterValidator(_month)]


def month_start(month: str) -> date:
    return date.fromisoformat(f"{month}-01")


class CampaignCost(BaseModel):
    """What one campaign of one channel cost in one month (media, fair stand, agency)."""

    model_config = RULE

    channel: str = Field(min_length=1)
    campaign: str = Field(min_length=1)
    month: Month
    amount_eur: float = Field(ge=0)


class CampaignCosts(BaseModel):
    model_config = RULE

    costs: list[CampaignCost] = Field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        """Rows of `campaign_costs`."""
        return [
            {
                "channel": c.channel,
                "campaign": c.campaign,
                "month": month_start(c.month).isoformat(),
                "amount_eur": c.amount_eur,
            }
            for c in self.costs
        ]


class Target(BaseModel):
    """Goals for one month, for all channels (`channel` left out) or one channel."""

    model_config = RULE

    month: Month
    channel: str | None = None
    leads: int | None = Field(default=None, ge=0)
    mql: int | None = Field(default=None, ge=0)
    sql: int | None = Field(default=None, ge=0)
    won: int | None = Field(default=None, ge=0)
    revenue_eur: float | None = Field(default=None, ge=0)


TARGET_METRICS = ("leads", "mql", "sql", "won", "revenue_eur")


class Targets(BaseModel):
    model_config = RULE

    targets: list[Target] = Field(default_factory=list)


def load_targets(rules_dir: Path) -> Targets:
    """targets.yaml is optional: without it the target report is empty."""
    path = rules_dir / "targets.yaml"
    return load_yaml_model(path, Targets) if path.exists() else Targets()
