"""Reference data from files: the tables shipped in `pipeline/reference/` and the
operator's own (the company directory and customer list named in enrichment.yaml).

Read here, in configuration, and handed to the domain as text: the domain parses
(`ReferenceData.parse`, `PostalTable.parse`, `CustomerList.parse`) and reads no
files, so it stays pure and is tested with any text. An operator's file that
cannot be read stops the start with `ConfigError` naming it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pipeline.domain.capture.plausibility import PostalTable
from pipeline.domain.enrich.enrichment import CustomerList, ReferenceData
from pipeline.errors import ConfigError


def shipped_text(name: str) -> str:
    """A file of `pipeline/reference/`, from the installed package."""
    return resources.files("pipeline").joinpath(f"reference/{name}").read_text(encoding="utf-8")


def read_file(path: Path) -> str:
    """An operator's file, or a `ConfigError` that names it."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file ({exc.strerror}).") from exc


def reference_data(directory: Path | None = None) -> ReferenceData:
    """The shipped tables; the company directory from `directory` when the operator
    names one (`company_directory_file`), else the shipped synthetic one."""
    return ReferenceData.parse(
        free_mail_domains=shipped_text("free_mail_domains.txt"),
        disposable_domains=shipped_text("disposable_domains.txt"),
        directory=read_file(directory) if directory else shipped_text("company_directory.csv"),
        postal_regions=shipped_text("de_postal_regions.csv"),
    )


def postal_table() -> PostalTable:
    """German postal code ranges per city, shipped."""
    return PostalTable.parse(shipped_text("de_postal_codes.csv"))


def customer_list(path: Path) -> CustomerList:
    """The customers of a CRM export (`customers_file`)."""
    return CustomerList.parse(read_file(path))
