"""`gc`: garbage collection and tag retention, run by the maintenance container on a schedule or on demand."""

from __future__ import annotations

import re

from croniter import CroniterError, croniter
from pydantic import Field, StrictBool, StrictInt, field_validator

from components.config.base import ConfigModel, check_printable

# Sunday 03:30 in the Docker host's time: a quiet hour, once a week.
DEFAULT_GC_SCHEDULE = "30 3 * * 0"
SCHEDULE_OFF = "none"
CRON_FIELDS = ("minute", "hour", "day of month", "month", "day of week")

# Repository and tag globs: the characters of repository names and tags, plus the wildcards `*`, `?` and
# bracket sets. No spaces, commas or quotes: the maintenance script matches them with the shell's `case`.
_REPOSITORY_GLOB = re.compile(r"^[a-z0-9._/*?\[\]!-]{1,255}$")
_TAG_GLOB = re.compile(r"^[A-Za-z0-9._*?\[\]!-]{1,128}$")
# The largest keepLast: far more tags than a repository holds, and a number busybox's `[ -le ]` compares (it fails
# from 2^63 up). config_templates/maintenance.sh has the same bound (KEEP_LAST_MAX).
KEEP_LAST_MAX = 1_000_000


def cron_fields(schedule: str) -> tuple[str, ...]:
    """A five-field cron expression (or @hourly/@daily/@weekly/@monthly/@yearly) as five plain fields: `*` or a
    comma list of numbers, names and ranges expanded, days of the week 0-6 from Sunday.

    The maintenance container matches the current time against these with a few lines of shell, so nothing
    but numbers reaches it. Raises ValueError for anything cron would not run the same way everywhere.
    """
    text = " ".join(schedule.split())
    if not text.startswith("@") and len(text.split(" ")) != 5:
        raise ValueError(
            "must be a cron expression of five fields (minute hour day-of-month month day-of-week), e.g. "
            f"'{DEFAULT_GC_SCHEDULE}' for Sundays at 03:30, or '@weekly', or '{SCHEDULE_OFF}'"
        )
    if not text.startswith("@"):
        _refuse_croniter_only_syntax(text)
    try:
        expanded, _ = croniter.expand(text)
    except (CroniterError, ValueError, KeyError, IndexError) as error:
        raise ValueError(f"is not a valid cron expression ({error})") from None
    fields = []
    for name, values in zip(CRON_FIELDS, expanded, strict=True):
        if values == ["*"]:
            fields.append("*")
        elif all(isinstance(value, int) for value in values):
            fields.append(",".join(str(value) for value in sorted(set(values))))
        else:
            raise ValueError(f"uses an extension cron does not have in its {name} field ('L', 'W', '#', '?' or 'H')")
    return tuple(fields)


def _refuse_croniter_only_syntax(text: str) -> None:
    """What croniter reads differently from cron, or reads but leaves out of the fields it expands: `#` (nth
    weekday), `W` (nearest weekday), `?` (read as `*`, though it does not start with one), and a range with equal
    ends (`5-5`, `sun-sun`), which croniter takes for the whole field and cron for that one value."""
    for name, field in zip(CRON_FIELDS, text.lower().split(" "), strict=True):
        if "#" in field or "?" in field or (name == "day of month" and "w" in field):
            raise ValueError(f"uses an extension cron does not have in its {name} field ('L', 'W', '#', '?' or 'H')")
        for element in field.split(","):
            bounds = element.split("/")[0].split("-")
            if len(bounds) == 2 and _cron_number(bounds[0]) == _cron_number(bounds[1]):
                raise ValueError(
                    f"has the range {element!r} in its {name} field: croniter reads a range with equal ends as the "
                    "whole field, cron as that one value; write the value alone"
                )


def _cron_number(text: str) -> int | str:
    """A field's number or name as a number (`jan` 1, `sun` 0), or the text itself when it is neither."""
    if text.isdigit():
        return int(text)
    for names in (_MONTH_NAMES, _DAY_NAMES):
        if text in names:
            return names.index(text)
    return text


_MONTH_NAMES = ("", "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


class RetentionRule(ConfigModel):
    """Which tags of the matching repositories stay; every other tag there is deleted."""

    repositories: tuple[str, ...] = Field(min_length=1)
    """Repository globs (`*` also matches `/`), e.g. `team/*`; a repository takes the first rule it matches."""
    keep_last: StrictInt | None = Field(default=None, ge=0, le=KEEP_LAST_MAX)
    """Keep this many most recently pushed tags (at most KEEP_LAST_MAX: the maintenance script compares with the
    shell's numbers, and refuses a larger one itself too)."""
    keep_tags: tuple[str, ...] = ()
    """Keep tags matching any of these globs, e.g. `v*`, `latest`, whatever their age."""

    @field_validator("repositories")
    @classmethod
    def _repository_globs(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            if not _REPOSITORY_GLOB.fullmatch(value):
                raise ValueError(
                    f"{value!r} is not a repository glob: lowercase letters, digits, '.', '_', '-', '/' and the "
                    "wildcards '*', '?', '[...]'"
                )
        return values

    @field_validator("keep_tags")
    @classmethod
    def _tag_globs(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            if value == "-":
                raise ValueError(
                    "'-' alone is not a tag glob: the retention rules file reads it as 'no globs', so the rule would "
                    "keep no tag by name"
                )
            if not _TAG_GLOB.fullmatch(value):
                raise ValueError(
                    f"{value!r} is not a tag glob: letters, digits, '.', '_', '-' and the wildcards '*', '?', '[...]'"
                )
        return values


class RetentionSettings(ConfigModel):
    dry_run: StrictBool = True
    """Only log which tags the rules would delete (the default, until the rules are reviewed)."""
    rules: tuple[RetentionRule, ...] = ()
    """Retention rules; repositories no rule matches keep every tag."""

    @field_validator("rules")
    @classmethod
    def _rules_keep_something(cls, rules: tuple[RetentionRule, ...]) -> tuple[RetentionRule, ...]:
        for index, rule in enumerate(rules):
            if rule.keep_last is None and not rule.keep_tags:
                raise ValueError(
                    f"rule {index} keeps nothing: give keepLast, keepTags or both (a rule without them would "
                    "delete every tag of its repositories)"
                )
        return rules


class GcSettings(ConfigModel):
    schedule: str = DEFAULT_GC_SCHEDULE
    """When retention and garbage collection run, as cron in the Docker host's time; 'none': only on demand."""
    delete_untagged: StrictBool = False
    """Also delete manifests no tag points to (`--delete-untagged`); refused with registry 2.x."""
    dry_run: StrictBool = False
    """Garbage collection only reports the blobs it would delete."""
    write_pause_seconds: StrictInt = Field(default=10, ge=1, le=600)
    """After writes are paused and before collection starts, how long requests already under way get to end."""
    retention: RetentionSettings = RetentionSettings()
    """Tag retention rules, applied before each collection."""

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        check_printable(value)
        if value.strip() == SCHEDULE_OFF:
            return SCHEDULE_OFF
        cron_fields(value)
        return " ".join(value.split())

    @property
    def scheduled(self) -> bool:
        return self.schedule != SCHEDULE_OFF
