"""`leadflow experiments …`: the A/B experiments of experiments.yaml and how their
variants compare (asks the running worker, else reads the warehouse itself)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from pipeline.entrypoints.cli.common import cli_settings, console, friendly, print_rows, topics_of
from pipeline.entrypoints.cli.report import FORMAT_OPTION, Format

app = typer.Typer(
    help="A/B experiments on the rules (experiments.yaml in LEADFLOW_RULES_DIR).",
    no_args_is_help=True,
)


@app.command("list")
@friendly
def experiments_list(
    format_: Format = FORMAT_OPTION,
) -> None:
    """Every experiment with its window, variants, shares and status (from the rules)."""
    from pipeline.config.rules import load_rules
    from pipeline.reporting.experiments import experiment_list
    from schemas.envelope import utcnow

    rules_dir = cli_settings().rules_dir
    rows = experiment_list(load_rules(rules_dir).experiments.definitions, utcnow())
    if not rows and format_ == "table":
        console.print(f"no experiments in {rules_dir / 'experiments.yaml'}")
        return
    print_rows(rows, format_, "experiments")


@app.command("report")
@friendly
def experiments_report(
    name: Annotated[str, typer.Argument(help="The experiment's name (leadflow experiments list).")],
    format_: Format = FORMAT_OPTION,
) -> None:
    """Each variant against the control, with 95 % intervals and a plain verdict.

    Measures: answered in target, MQL → SQL → opportunity → won, minutes to first contact,
    revenue per lead; not significant yet: about how many more leads it needs."""
    import json

    from pipeline.adapters.worker_api import ask_worker
    from pipeline.config.rules import load_rules
    from pipeline.reporting.client import through_worker_or_direct
    from pipeline.reporting.experiments import experiment_report, find

    settings = cli_settings()
    experiment = find(load_rules(settings.rules_dir).experiments.definitions, name)
    rows = through_worker_or_direct(
        settings,
        topics_of(settings),
        lambda: ask_worker(settings, f"/v1/experiments/{name}"),
        lambda w, inputs: experiment_report(w, experiment, inputs.answer_target_s),
        lambda answer: json.loads(answer)["rows"],
    )
    title = f"experiment {name} ({experiment.start:%Y-%m-%d} to {experiment.end:%Y-%m-%d})"
    if format_ != "table":
        print_rows(rows, format_, title)
        return
    print_rows([_brief(r) for r in rows], format_, title)
    console.print(f"control: {experiment.control.name}; intervals at 95 %")


def _brief(row: dict[str, Any]) -> dict[str, Any]:
    """The columns a terminal has room for: value and difference with their intervals."""
    rate = row["measure"] not in {"minutes_to_contact", "revenue_per_lead"}

    def shown(x: float | None) -> str:
        if x is None:
            return "–"
        return f"{x * 100:.1f} %" if rate else f"{x:,.1f}"

    value = shown(row["value"])
    if row["ci_low"] is not None:
        value += f" [{shown(row['ci_low'])}, {shown(row['ci_high'])}]"
    return {
        "measure": row["label"],
        "variant": row["variant"],
        "n": row["n"],
        "value [95 % CI]": value,
        "vs control": row["statement"],
    }
