"""The maintenance container without Docker: config_templates/maintenance.sh's schedule matcher against croniter,
the `gc` config block, the files rendered for the maintenance container and nginx, and the script's tag retention
on a fake storage tree.

The script runs under busybox sh with nothing but busybox applets on PATH, as in the registry's Alpine image
(where /bin/sh is busybox ash and find, sort, stat, date... are busybox applets too). The test does not run the
script as it is: it loads the script's variables and functions with `script_program`, which puts the rendered
settings where the script sources /etc/registry-maintenance/settings.env and cuts the dispatcher at its end.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from croniter import CroniterBadDateError, croniter
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from components.config import ConfigError, GcSettings, cron_fields, load_settings
from components.rendering import (
    TEMPLATES_DIR,
    MaintenanceConfig,
    ProxyConfig,
    RegistryConfig,
    RetentionRuleLine,
    render_cache_env,
    render_maintenance_settings,
    render_nginx_conf,
    render_registry_config,
    render_retention_rules,
)

pytestmark = pytest.mark.unit

SCRIPT = TEMPLATES_DIR / "maintenance.sh"
SETTINGS_SOURCE_LINE = ". /etc/registry-maintenance/settings.env\n"
DISPATCHER = '\ncase "${1:-}" in\n'
CACHE_CHECK_LINE = "if [ -f /etc/registry-maintenance/cache.env ]; then"
CACHE_SOURCE_LINE = "    . /etc/registry-maintenance/cache.env\n"
BUSYBOX = shutil.which("busybox") or "/bin/busybox"


# ---- running the script's functions under busybox


@pytest.fixture(scope="module")
def busybox_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PATH of busybox applets alone, so that no GNU tool stands in for what Alpine's busybox lacks."""
    assert Path(BUSYBOX).is_file(), "busybox is needed to run maintenance.sh as Alpine would: apt-get install busybox"
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    directory = tmp_path_factory.mktemp("busybox-bin")
    for applet in applets:
        (directory / applet).symlink_to(BUSYBOX)
    return str(directory)


def script_program(settings_env: str, body: str) -> str:
    """maintenance.sh with `settings_env` in place of sourcing settings.env and `body` in place of its dispatcher:
    its `set -eu`, variables and functions, then whatever `body` reassigns and calls."""
    text = SCRIPT.read_text()
    # Both pieces must be there exactly once, or this would quietly test another script.
    assert text.count(SETTINGS_SOURCE_LINE) == 1
    assert text.count(DISPATCHER) == 1
    text = text.replace(SETTINGS_SOURCE_LINE, settings_env)
    return text[: text.index(DISPATCHER) + 1] + body


def run_busybox(
    program: str, busybox_path: str, *, stdin: str = "", cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BUSYBOX, "sh", "-c", program, "maintenance.sh"],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PATH": busybox_path, "TZ": "UTC"},
        timeout=60,
        check=False,
    )


def maintenance_settings(
    schedule: str = "30 3 * * 0", *, retention_dry_run: bool = False, gc_dry_run: bool = False
) -> MaintenanceConfig:
    """The settings as components/maintenance.py derives them from the `gc` block."""
    gc = GcSettings.model_validate({"schedule": schedule})
    return MaintenanceConfig(
        schedule_fields=cron_fields(gc.schedule) if gc.scheduled else None,
        schedule_text=gc.schedule,
        registry_config_path="/etc/docker/registry/config.yml",
        gc_dry_run=gc_dry_run,
        gc_delete_untagged=False,
        retention_dry_run=retention_dry_run,
        write_pause_seconds=10,
    )


# ---- 1. the schedule matcher against croniter


def script_schedule_matches(schedule: str, moments: list[datetime], busybox_path: str) -> list[bool]:
    """The script's `schedule_matches` at each moment, all in one busybox run. The arguments are what the
    `schedule` loop passes: minute hour day month weekday, numbers without leading zeros, Sunday 0."""
    settings_env = render_maintenance_settings(maintenance_settings(schedule))
    body = (
        "while read -r minute hour day month weekday; do\n"
        '    if schedule_matches "$minute" "$hour" "$day" "$month" "$weekday"; then echo y; else echo n; fi\n'
        "done\n"
    )
    stdin = "".join(f"{t.minute} {t.hour} {t.day} {t.month} {t.isoweekday() % 7}\n" for t in moments)
    result = run_busybox(script_program(settings_env, body), busybox_path, stdin=stdin)
    assert result.returncode == 0, result.stderr
    answers = result.stdout.split()
    assert len(answers) == len(moments), result.stdout
    return [answer == "y" for answer in answers]


def day_rules_part(expression: str) -> bool:
    """Whether croniter combines the two day fields otherwise than cron (see `cron_runs`)."""
    if expression.startswith("@"):  # the shorthands restrict at most one day field
        return False
    _, _, day, _, weekday = expression.split()
    expanded = croniter.expand(expression)[0]
    croniter_either = expanded[2] != ["*"] and expanded[4] != ["*"]
    cron_either = not day.startswith("*") and not weekday.startswith("*")
    return croniter_either != cron_either


def cron_runs(expression: str, moment: datetime) -> bool:
    """Whether cron runs `expression` at `moment`: croniter.match, except where croniter and cron part on the two
    day fields.

    Vixie cron (and cronie, man 5 crontab): when both day-of-month and day-of-week are restricted, a day matching
    either runs the job; a field is unrestricted when its text *starts with* `*`. croniter ORs them when neither
    *expands* to `*`. So they part on `*/2` (cron: starts with `*`, both fields must match; croniter: not every
    day, either one is enough), and would on a full range (`0-6`) if croniter ever expanded one to `*` beside a
    restricted field (7.0 does not). The script follows cron, and so does this: there it asks croniter about
    each day field alone and combines the answers as cron does.
    """
    if not day_rules_part(expression):
        return bool(croniter.match(expression, moment))
    minute, hour, day, month, weekday = expression.split()
    cron_either = not day.startswith("*") and not weekday.startswith("*")
    by_day = bool(croniter.match(f"{minute} {hour} {day} {month} *", moment))
    by_weekday = bool(croniter.match(f"{minute} {hour} * {month} {weekday}", moment))
    return (by_day or by_weekday) if cron_either else (by_day and by_weekday)


MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


@st.composite
def cron_value(draw: st.DrawFn, value: int, names: dict[int, str]) -> str:
    """A number, or its name in any case where the field has names."""
    if value in names and draw(st.booleans()):
        name = names[value]
        return draw(st.sampled_from([name, name.upper(), name.capitalize()]))
    return str(value)


@st.composite
def cron_element(draw: st.DrawFn, low: int, high: int, names: dict[int, str]) -> str:
    """A number, a range or a stepped range. Ranges run upwards with distinct ends, as cron requires (cron_fields
    refuses equal ends, and croniter's wrapping ranges like `fri-mon` are not cron)."""
    kind = draw(st.sampled_from(["number", "range", "step"]))
    if kind == "number":
        return draw(cron_value(draw(st.integers(low, high)), names))
    start = draw(st.integers(low, high - 1))
    end = draw(st.integers(start + 1, high))
    text = f"{draw(cron_value(start, names))}-{draw(cron_value(end, names))}"
    if kind == "step":
        text += f"/{draw(st.integers(1, high - low))}"
    return text


@st.composite
def cron_field(draw: st.DrawFn, low: int, high: int, names: dict[int, str] | None = None) -> str:
    kind = draw(st.sampled_from(["star", "step", "list", "list"]))
    if kind == "star":
        return "*"
    if kind == "step":
        return f"*/{draw(st.integers(1, high - low))}"
    return ",".join(draw(st.lists(cron_element(low, high, names or {}), min_size=1, max_size=3)))


SHORTHANDS = ("@hourly", "@daily", "@weekly", "@monthly", "@yearly")
# Day of week 0-7, both 0 and 7 Sunday; names only for 0-6.
cron_expressions = st.one_of(
    st.sampled_from(SHORTHANDS),
    st.tuples(
        cron_field(0, 59),
        cron_field(0, 23),
        cron_field(1, 31),
        cron_field(1, 12, dict(enumerate(MONTH_NAMES, start=1))),
        cron_field(0, 7, dict(enumerate(DAY_NAMES))),
    ).map(" ".join),
)
# Two years from a leap year's start, so 29 February, month ends and every weekday come up.
START = datetime(2024, 1, 1)
MINUTES = 2 * 365 * 24 * 60


def candidate_moments(expression: str, minutes: list[int], starts: list[int]) -> list[datetime]:
    """Random minutes, and the runs croniter finds after a few random starts with their neighbours: random minutes
    alone rarely meet a schedule that runs once a week. For five fields, also the runs of each day field alone,
    where cron's and croniter's day rules part."""
    moments = [START + timedelta(minutes=minute) for minute in minutes]
    variants = [expression]
    if not expression.startswith("@"):
        minute, hour, day, month, weekday = expression.split()
        variants += [f"{minute} {hour} {day} {month} *", f"{minute} {hour} * {month} {weekday}"]
    for variant in variants:
        for start in starts:
            try:
                run = croniter(variant, START + timedelta(minutes=start)).get_next(datetime)
            except CroniterBadDateError:  # no run for years (the 31st of a 30-day month): croniter gives up
                continue
            moments += [run, run - timedelta(minutes=1), run + timedelta(days=1), run - timedelta(days=1)]
    return moments


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    expression=cron_expressions,
    minutes=st.lists(st.integers(0, MINUTES - 1), min_size=10, max_size=10),
    starts=st.lists(st.integers(0, MINUTES - 1), min_size=2, max_size=2),
)
def test_the_script_runs_when_cron_would(
    busybox_path: str, expression: str, minutes: list[int], starts: list[int]
) -> None:
    moments = candidate_moments(expression, minutes, starts)
    expected = [cron_runs(expression, moment) for moment in moments]
    if day_rules_part(expression):
        event("croniter and cron part on the day fields")
    event("some moments match" if any(expected) else "no moment matches")
    actual = script_schedule_matches(expression, moments, busybox_path)
    disagreements = [(m.isoformat(), e) for m, e, a in zip(moments, expected, actual, strict=True) if e != a]
    assert not disagreements, f"{expression!r}: the script disagrees with cron at {disagreements[:5]}"


# Fixed points of the day rule: 13 September 2024 is a Friday, 14 September a Saturday, 12 October a Saturday.
@pytest.mark.parametrize(
    ("expression", "moment", "runs", "croniter_says"),
    [
        # Both day fields restricted: either one (cron and croniter agree).
        ("0 0 13 * 5", datetime(2024, 9, 13), True, True),
        ("0 0 13 * 5", datetime(2024, 9, 6), True, True),  # a Friday, not the 13th
        ("0 0 13 * 5", datetime(2024, 10, 13), True, True),  # the 13th, a Sunday
        ("0 0 13 * 5", datetime(2024, 9, 14), False, False),
        # One starts with `*`: both must match (cron and croniter agree).
        ("0 0 * * 5", datetime(2024, 9, 14), False, False),
        ("0 0 13 * *", datetime(2024, 9, 13), True, True),
        # `*/2` starts with `*`: cron ANDs, croniter ORs. The script follows cron.
        ("0 0 */2 * 6", datetime(2024, 9, 14), False, True),  # a Saturday, but the 14th is even
        ("0 0 */2 * 6", datetime(2024, 9, 13), False, True),  # the 13th, but a Friday
        ("0 0 */2 * 6", datetime(2024, 10, 5), True, True),  # the 5th, a Saturday
        # `0-6` and `1-31` do not start with `*`: restricted, so either is enough, i.e. every day.
        ("0 0 13 * 0-6", datetime(2024, 9, 14), True, True),
        ("0 0 1-31 * sun", datetime(2024, 9, 14), True, True),
        ("@weekly", datetime(2024, 9, 15), True, True),  # a Sunday
        ("@weekly", datetime(2024, 9, 14), False, False),
        ("@monthly", datetime(2024, 9, 1), True, True),
    ],
)
def test_the_day_rule_is_crons(
    busybox_path: str, expression: str, moment: datetime, runs: bool, croniter_says: bool
) -> None:
    assert croniter.match(expression, moment) is croniter_says
    assert cron_runs(expression, moment) is runs
    assert script_schedule_matches(expression, [moment, moment + timedelta(minutes=1)], busybox_path) == [
        runs,
        False,
    ]


# ---- 2. cron_fields and the gc block


@pytest.mark.parametrize(
    ("schedule", "fields"),
    [
        ("30 3 * * 0", ("30", "3", "*", "*", "0")),
        ("30 3 * * 7", ("30", "3", "*", "*", "0")),  # 7 is Sunday too
        ("30 3 * * SUN", ("30", "3", "*", "*", "0")),
        ("0 4 * * 5-7", ("0", "4", "*", "*", "0,5,6")),
        ("0 4 * * 0,7", ("0", "4", "*", "*", "0")),
        ("*/15 9-17/4 * jan-mar mon-fri", ("0,15,30,45", "9,13,17", "*", "1,2,3", "1,2,3,4,5")),
        ("0 0 1,15 Dec *", ("0", "0", "1,15", "12", "*")),
        ("0 0-23 * 1-12 0-6", ("0", "*", "*", "*", "*")),
        ("@hourly", ("0", "*", "*", "*", "*")),
        ("@daily", ("0", "0", "*", "*", "*")),
        ("@weekly", ("0", "0", "*", "*", "0")),
        ("@monthly", ("0", "0", "1", "*", "*")),
        ("@yearly", ("0", "0", "1", "1", "*")),
    ],
)
def test_cron_fields_are_plain_numbers(schedule: str, fields: tuple[str, ...]) -> None:
    assert cron_fields(schedule) == fields


def load_gc(gc: object, **others: object) -> GcSettings:
    raw = {key: json.dumps(value) for key, value in others.items()}
    return load_settings({"hostname": "registry.example.com", "gc": json.dumps(gc), **raw}).gc


def gc_error(gc: object, **others: object) -> str:
    with pytest.raises(ConfigError) as caught:
        load_gc(gc, **others)
    return str(caught.value)


def test_the_schedule_is_normalised_and_none_turns_it_off() -> None:
    assert load_gc({"schedule": "  0  4 * *   mon "}).schedule == "0 4 * * mon"
    assert load_gc({}).schedule == "30 3 * * 0"
    off = load_gc({"schedule": "none"})
    assert (off.schedule, off.scheduled) == ("none", False)


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("0 0 * * * *", "must be a cron expression of five fields"),
        ("0 0 * *", "must be a cron expression of five fields"),
        ("", "must be a cron expression of five fields"),
        ("61 * * * *", "is not a valid cron expression"),
        ("* 24 * * *", "is not a valid cron expression"),
        ("0 0 * * 8", "is not a valid cron expression"),
        ("0 0 L * *", "uses an extension cron does not have in its day of month field"),
        ("0 0 * * 5#3", "uses an extension cron does not have in its day of week field"),
        ("0 0 ? * 1", "uses an extension cron does not have in its day of month field"),
        ("0 0 15W * *", "uses an extension cron does not have in its day of month field"),
        ("H * * * *", "is not a valid cron expression"),
        ("@reboot", "is not a valid cron expression"),
        # croniter reads equal ends as the whole field: this would run every day instead of on Sundays.
        ("0 0 * * 7-7", "has the range '7-7' in its day of week field"),
        ("0 0 * * sun-sun", "has the range 'sun-sun' in its day of week field"),
        ("5-5/2 * * * *", "has the range '5-5/2' in its minute field"),
    ],
)
def test_bad_schedules_are_refused_naming_the_key(schedule: str, message: str) -> None:
    error = gc_error({"schedule": schedule})
    assert f"private-registry:gc.schedule: {message}" in error
    assert f"(got {schedule!r})" in error


def rule(**fields: object) -> dict[str, object]:
    return {"retention": {"rules": [{"repositories": ["team/*"], **fields}]}}


@pytest.mark.parametrize(
    ("gc", "expected"),
    [
        (
            rule(keepLast=-1),
            "private-registry:gc.retention.rules.0.keepLast: Input should be greater than or equal to 0 (got -1)",
        ),
        (rule(), "private-registry:gc.retention.rules: rule 0 keeps nothing: give keepLast, keepTags or both"),
        (rule(keepTags=[]), "private-registry:gc.retention.rules: rule 0 keeps nothing"),
        (
            {"retention": {"rules": [{"repositories": ["team app"], "keepLast": 1}]}},
            "private-registry:gc.retention.rules.0.repositories: 'team app' is not a repository glob",
        ),
        (
            {"retention": {"rules": [{"repositories": ["a,b"], "keepLast": 1}]}},
            "private-registry:gc.retention.rules.0.repositories: 'a,b' is not a repository glob",
        ),
        (
            {"retention": {"rules": [{"repositories": ["Team/*"], "keepLast": 1}]}},
            "private-registry:gc.retention.rules.0.repositories: 'Team/*' is not a repository glob",
        ),
        (
            {"retention": {"rules": [{"repositories": [], "keepLast": 1}]}},
            "private-registry:gc.retention.rules.0.repositories:",
        ),
        (rule(keepTags=["v 1"]), "private-registry:gc.retention.rules.0.keepTags: 'v 1' is not a tag glob"),
        (rule(keepTags=["v1,v2"]), "private-registry:gc.retention.rules.0.keepTags: 'v1,v2' is not a tag glob"),
        (rule(keepLast=1, keep=3), "private-registry:gc.retention.rules.0.keep: unknown setting"),
        ({"schedul": "@daily"}, "private-registry:gc.schedul: unknown setting"),
        (
            {"writePauseSeconds": 0},
            "private-registry:gc.writePauseSeconds: Input should be greater than or equal to 1 (got 0)",
        ),
        (
            {"writePauseSeconds": 601},
            "private-registry:gc.writePauseSeconds: Input should be less than or equal to 600",
        ),
        ({"dryRun": "yes"}, "private-registry:gc.dryRun: Input should be a valid boolean"),
    ],
)
def test_bad_gc_values_are_named(gc: object, expected: str) -> None:
    assert expected in gc_error(gc)


def test_delete_untagged_needs_registry_3() -> None:
    error = gc_error({"deleteUntagged": True}, registry={"image": "registry:2.8.3"})
    assert "gc.deleteUntagged is refused with registry:2.8.3" in error
    assert load_gc({"deleteUntagged": True}, registry={"image": "registry:3.0.0"}).delete_untagged is True


# ---- 3. rendering


def test_settings_env_is_shell_that_gives_back_the_values(busybox_path: str, tmp_path: Path) -> None:
    config = MaintenanceConfig(
        schedule_fields=("*/5", "3", "*", "*", "0"),  # not what cron_fields makes; shows `*` stays as it is
        schedule_text="*/5 3 * * sun # it's $HOME `date`",
        registry_config_path="/etc/docker/registry/config.yml",
        gc_dry_run=True,
        gc_delete_untagged=False,
        retention_dry_run=True,
        write_pause_seconds=45,
    )
    settings_env = render_maintenance_settings(config)
    assert settings_env == render_maintenance_settings(config)
    (tmp_path / "settings.env").write_text(settings_env)
    (tmp_path / "a-file-a-glob-would-find").touch()
    expected = {
        "SCHEDULE": "*/5 3 * * 0",
        "SCHEDULE_TEXT": "*/5 3 * * sun # it's $HOME `date`",
        "SCHEDULE_DAYS": "both",
        "REGISTRY_CONFIG": "/etc/docker/registry/config.yml",
        "GC_DRY_RUN": "true",
        "GC_DELETE_UNTAGGED": "false",
        "RETENTION_DRY_RUN": "true",
        "WRITE_PAUSE_SECONDS": "45",
        "DATA_ON_VOLUME": "true",
    }
    program = "set -eu\n. ./settings.env\n" + "".join(f'printf "%s\\n" "${name}"\n' for name in expected)
    result = run_busybox(program, busybox_path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert dict(zip(expected, result.stdout.splitlines(), strict=True)) == expected


@pytest.mark.parametrize(
    ("schedule", "schedule_line", "days_line"),
    [
        ("30 3 * * 0", "SCHEDULE='30 3 * * 0'", "SCHEDULE_DAYS=both"),
        ("0 0 1,15 * mon", "SCHEDULE='0 0 1,15 * 1'", "SCHEDULE_DAYS=either"),
        ("0 0 */2 * mon", "SCHEDULE='0 0 1,3,5,7,9,11,13,15,17,19,21,23,25,27,29,31 * 1'", "SCHEDULE_DAYS=both"),
        ("@weekly", "SCHEDULE='0 0 * * 0'", "SCHEDULE_DAYS=both"),
        ("none", "SCHEDULE=none", "SCHEDULE_DAYS=both"),
    ],
)
def test_settings_env_lines(schedule: str, schedule_line: str, days_line: str) -> None:
    lines = render_maintenance_settings(maintenance_settings(schedule)).splitlines()
    assert [line.split("=")[0] for line in lines] == [
        "SCHEDULE",
        "SCHEDULE_TEXT",
        "SCHEDULE_DAYS",
        "REGISTRY_CONFIG",
        "GC_DRY_RUN",
        "GC_DELETE_UNTAGGED",
        "RETENTION_DRY_RUN",
        "WRITE_PAUSE_SECONDS",
        "DATA_ON_VOLUME",
    ]
    assert lines[0] == schedule_line
    assert lines[2] == days_line


def test_retention_rules_file_format() -> None:
    rules = (
        RetentionRuleLine(repositories=("team/*", "ci/*"), keep_last=5, keep_tags=("v*", "latest")),
        RetentionRuleLine(repositories=("scratch/*",), keep_last=0, keep_tags=()),
        RetentionRuleLine(repositories=("*",), keep_last=None, keep_tags=("release-[0-9]*",)),
    )
    header = "# keepLast repositoryGlobs tagGlobs (rendered by private-registry from gc.retention.rules)\n"
    assert render_retention_rules(rules) == header + "5 team/*,ci/* v*,latest\n0 scratch/* -\n- * release-[0-9]*\n"
    # Never empty (a Swarm config cannot be): no rules is the header alone, which the script reads as none.
    assert render_retention_rules(()) == header


def test_registry_config_has_no_blob_descriptor_cache() -> None:
    config = RegistryConfig(
        public_url="https://registry.example.com", http_secret="s" * 32, delete_enabled=True, log_level="info"
    )
    storage = yaml.safe_load(render_registry_config(config))["storage"]
    assert "cache" not in storage
    assert set(storage) == {"filesystem", "delete", "maintenance"}


@dataclass
class Node:
    """An nginx directive: its arguments (quotes removed, escapes left as written) and its block, if any."""

    name: str
    args: list[str]
    block: list[Node] | None

    def find(self, name: str, *args: str) -> list[Node]:
        """Directives of this block with this name whose arguments start with `args`."""
        return [node for node in self.block or [] if node.name == name and node.args[: len(args)] == list(args)]

    def one(self, name: str, *args: str) -> Node:
        found = self.find(name, *args)
        assert len(found) == 1, (name, args, found)
        return found[0]

    def walk(self) -> Iterator[Node]:
        yield self
        for node in self.block or []:
            yield from node.walk()


def nginx_tokens(text: str) -> Iterator[str]:
    """Words (a quoted string as one word, without its quotes), `{`, `}` and `;`; comments dropped."""
    pattern = re.compile(r"\s+|#[^\n]*|'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"|([{};])|([^\s{};'\"]+)")
    position = 0
    while position < len(text):
        match = pattern.match(text, position)
        assert match, text[position : position + 40]
        position = match.end()
        single, double, punctuation, word = match.groups()
        for token in (single, double, punctuation, word):
            if token is not None:
                yield token
                break


def parse_nginx(text: str) -> Node:
    tokens = nginx_tokens(text)

    def block() -> list[Node]:
        nodes: list[Node] = []
        words: list[str] = []
        for token in tokens:
            if token == "}":
                assert not words
                return nodes
            if token == ";":
                nodes.append(Node(words[0], words[1:], None))
                words = []
            elif token == "{":
                nodes.append(Node(words[0], words[1:], block()))
                words = []
            else:
                words.append(token)
        assert not words
        return nodes

    return Node("main", [], block())


@pytest.fixture(scope="module")
def nginx() -> Node:
    return parse_nginx(
        render_nginx_conf(
            ProxyConfig(
                server_name="registry.example.com",
                endpoint="registry.example.com",
                redirect_http=True,
                registry_upstream="registry:5000",
                ui_upstream="ui:8080",
                certificate_path="/etc/nginx/tls/server.crt",
                certificate_key_path="/etc/nginx/tls/server.key",
            )
        )
    )


def map_entries(node: Node) -> dict[str, str]:
    assert node.block is not None
    return {entry.name: " ".join(entry.args) for entry in node.block}


def test_nginx_names_the_current_100_second_span(nginx: Node) -> None:
    entries = map_entries(nginx.one("map", "$msec", "$maintenance_span"))
    [(pattern, value)] = entries.items()
    assert pattern.startswith("~") and value == "$1"
    # The script names a flag $(date +%s) / 100: $msec with its last two seconds' digits and the millis cut.
    for msec in ("1712345678.123", "1700000000.000", "1799999999.999", "100.500"):
        match = re.match(pattern[1:], msec)
        assert match and int(match[1]) == int(float(msec)) // 100


def test_nginx_pauses_writes_only(nginx: Node) -> None:
    entries = map_entries(nginx.one("map", "$request_method", "$writes_paused_flag"))
    # An empty name: `-f ""` is false, so reads never pause.
    assert entries == {
        "GET": "",
        "HEAD": "",
        "default": "/run/registry-maintenance/writes-paused-$maintenance_span",
    }


def test_paused_writes_get_the_registrys_retryable_error(nginx: Node) -> None:
    for server in nginx.find("server"):
        if not server.find("location", "/v2/"):
            continue
        api = server.one("location", "/v2/")
        assert api.one("error_page", "418").args == ["418", "=", "@writes_paused"]
        check = api.one("if", "(-f", "$writes_paused_flag)")
        assert [(node.name, node.args) for node in check.block or []] == [("return", ["418"])]
        paused = server.one("location", "@writes_paused")
        assert paused.one("default_type").args == ["application/json"]
        assert paused.one("add_header", "Retry-After").args == ["Retry-After", "30", "always"]
        assert paused.one("add_header", "Docker-Distribution-Api-Version").args[1] == "registry/2.0"
        status, body = paused.one("return").args
        assert status == "503"
        assert body.endswith("\\n")  # nginx turns the escape into a newline
        assert json.loads(body.removesuffix("\\n")) == {
            "errors": [
                {
                    "code": "UNAVAILABLE",
                    "message": "service unavailable",
                    "detail": "writes are paused while garbage collection runs; retry shortly",
                }
            ]
        }


def hsts_headers(node: Node) -> list[Node]:
    return [
        child for child in node.walk() if child.name == "add_header" and child.args[:1] == ["Strict-Transport-Security"]
    ]


def test_hsts_only_on_the_tls_server(nginx: Node) -> None:
    [plain] = [server for server in nginx.find("server") if server.find("listen", "5000")]
    assert plain.find("location", "/v2/") and plain.find("location", "@writes_paused")
    assert not hsts_headers(plain)
    [tls] = [server for server in nginx.find("server") if server.find("listen", "443")]
    locations = tls.find("location")
    assert {tuple(location.args) for location in locations} == {("/v2/",), ("@writes_paused",), ("/",)}
    for location in locations:
        # add_header in a location replaces the server's, so each location sends it itself.
        assert [header.args for header in hsts_headers(location)] == [
            ["Strict-Transport-Security", "max-age=63072000", "always"]
        ]


# ---- 4. retention on a fake storage tree

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def repositories_dir(data: Path) -> Path:
    return data / "docker/registry/v2/repositories"


def blob_path(data: Path, hex_digest: str) -> Path:
    return data / "docker/registry/v2/blobs/sha256" / hex_digest[:2] / hex_digest / "data"


def name_hash(text: str) -> str:
    """A digest standing for a blob of that name (configs, layers, manifests of other repositories)."""
    return hashlib.sha256(text.encode()).hexdigest()


def image_manifest(name: str, *, media_type: str = OCI_MANIFEST, subject: str | None = None) -> dict[str, object]:
    """An image manifest with a config and a layer of its own (blobs, not manifests), optionally with a subject."""
    document: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": f"sha256:{name_hash('config ' + name)}",
            "size": 2,
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": f"sha256:{name_hash('layer ' + name)}",
                "size": 9,
            }
        ],
    }
    if subject is not None:
        document["subject"] = {"mediaType": OCI_MANIFEST, "digest": f"sha256:{subject}", "size": 512}
    return document


def index_manifest(
    children: list[str], *, media_type: str = OCI_INDEX, child_type: str = OCI_MANIFEST
) -> dict[str, object]:
    platforms = [{"architecture": "amd64", "os": "linux"}, {"architecture": "arm64", "os": "linux"}]
    return {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [
            {"mediaType": child_type, "digest": f"sha256:{child}", "size": 400, "platform": platforms[i % 2]}
            for i, child in enumerate(children)
        ],
    }


@dataclass
class Store:
    """What the filesystem driver leaves in the data volume: manifests (a revision link in their repository and
    a blob), tags (a current link and an index entry, with the push time as their files' time). The script reads
    blobs by name and never hashes them, so a test may also store a manifest under a name of its choosing."""

    data: Path
    tag_digests: dict[tuple[str, str], str] = field(default_factory=dict)
    """(repository, tag): the hex of its manifest."""
    revisions: set[tuple[str, str]] = field(default_factory=set)

    @property
    def tags(self) -> set[tuple[str, str]]:
        return set(self.tag_digests)

    def manifest(
        self, repository: str, document: dict[str, object] | str, *, name: str | None = None, blob: bool = True
    ) -> str:
        content = (document if isinstance(document, str) else json.dumps(document)).encode()
        hex_digest = name or hashlib.sha256(content).hexdigest()
        revision = repositories_dir(self.data) / repository / "_manifests/revisions/sha256" / hex_digest / "link"
        revision.parent.mkdir(parents=True, exist_ok=True)
        revision.write_text(f"sha256:{hex_digest}")
        if blob:
            blob_path(self.data, hex_digest).parent.mkdir(parents=True, exist_ok=True)
            blob_path(self.data, hex_digest).write_bytes(content)
        self.revisions.add((repository, hex_digest))
        return hex_digest

    def tag(self, repository: str, tag: str, hex_digest: str, pushed: int) -> None:
        tag_dir = repositories_dir(self.data) / repository / "_manifests/tags" / tag
        for path in (tag_dir / "current/link", tag_dir / "index/sha256" / hex_digest / "link"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"sha256:{hex_digest}")
            os.utime(path, (pushed, pushed))
        self.tag_digests[(repository, tag)] = hex_digest

    def image(self, repository: str, tag: str, pushed: int, **manifest: Any) -> str:
        hex_digest = self.manifest(repository, image_manifest(f"{repository}:{tag}", **manifest))
        self.tag(repository, tag, hex_digest, pushed)
        return hex_digest

    def remaining(self) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
        """The tags and revisions (repository, hex) still in the tree."""
        root = repositories_dir(self.data)
        tags = {(r, t) for r, t in self.tags if (root / r / "_manifests/tags" / t).exists()}
        revisions = {(r, h) for r, h in self.revisions if (root / r / "_manifests/revisions/sha256" / h).exists()}
        return tags, revisions


@dataclass(frozen=True)
class Tag:
    repository: str
    name: str
    digest: str
    """A letter: the manifest's digest is that letter repeated (64 hex digits)."""
    pushed: int


def hex_digest(letter: str) -> str:
    return letter * 64


def push(store: Store, tag: Tag) -> None:
    """A plain image under the letter's digest, and its tag."""
    hex_ = store.manifest(tag.repository, image_manifest(tag.digest), name=hex_digest(tag.digest))
    store.tag(tag.repository, tag.name, hex_, tag.pushed)


DAY = 86400
T0 = 1_720_000_000
TAGS = (
    # team/app, rule 1 (keepLast 2, keepTags v*): t4 and t3 are the last two; v1.0 stays though oldest;
    # `old` goes, but its manifest E stays for t4.
    Tag("team/app", "v1.0", "a", T0),
    Tag("team/app", "old", "e", T0 + DAY // 2),
    Tag("team/app", "t1", "b", T0 + 1 * DAY),
    Tag("team/app", "t2", "c", T0 + 2 * DAY),
    Tag("team/app", "t3", "d", T0 + 3 * DAY),
    Tag("team/app", "t4", "e", T0 + 4 * DAY),
    # ci/build, rule 1 too: b1 goes, but its manifest stays for v0.
    Tag("ci/build", "b1", "1", T0 + 1 * DAY),
    Tag("ci/build", "b2", "2", T0 + 2 * DAY),
    Tag("ci/build", "b3", "3", T0 + 3 * DAY),
    Tag("ci/build", "v0", "1", T0),
    # ci/keep-all matches rule 0 (keepLast 10) before rule 1: every tag stays.
    Tag("ci/keep-all", "k1", "4", T0 + 1 * DAY),
    Tag("ci/keep-all", "k2", "5", T0 + 2 * DAY),
    Tag("ci/keep-all", "k3", "6", T0 + 3 * DAY),
    # solo/tool, rule 2 (keepTags only, no keepLast): the newest goes too.
    Tag("solo/tool", "stable", "7", T0),
    Tag("solo/tool", "nightly", "8", T0 + 5 * DAY),
    # library/alpine: no rule, untouched.
    Tag("library/alpine", "3.19", "9", T0),
    Tag("library/alpine", "3.20", "f", T0 + DAY),
)
GC_RULES = {
    "retention": {
        "rules": [
            {"repositories": ["ci/keep-*"], "keepLast": 10},
            {"repositories": ["team/*", "ci/*"], "keepLast": 2, "keepTags": ["v*"]},
            {"repositories": ["solo/*"], "keepTags": ["stable", "lts-*"]},
        ]
    }
}
DELETED = {("team/app", "old"), ("team/app", "t1"), ("team/app", "t2"), ("ci/build", "b1"), ("solo/tool", "nightly")}
# b1's manifest stays for v0, old's for t4.
DELETED_REVISIONS = {("team/app", hex_digest("b")), ("team/app", hex_digest("c")), ("solo/tool", hex_digest("8"))}


def tree(data: Path) -> dict[str, tuple[str, int]]:
    return {
        str(path.relative_to(data)): (path.read_text(), int(path.stat().st_mtime))
        for path in sorted(data.rglob("*"))
        if path.is_file()
    }


def rules_text(gc: object) -> str:
    """retention.rules as the program renders it from a `gc` block (validated like any config)."""
    rules = load_gc(gc).retention.rules
    return render_retention_rules(tuple(RetentionRuleLine(r.repositories, r.keep_last, r.keep_tags) for r in rules))


def run_rules(
    tmp_path: Path, busybox_path: str, data: Path, rules: str, *, dry_run: bool, body: str = "retention\n"
) -> subprocess.CompletedProcess[str]:
    """The script's retention on `data`, with this retention.rules text."""
    rules_file = tmp_path / "retention.rules"
    rules_file.write_text(rules)
    settings_env = render_maintenance_settings(maintenance_settings(retention_dry_run=dry_run))
    state = tmp_path / "state"
    shutil.rmtree(state, ignore_errors=True)
    # The script's paths, pointed into tmp_path after its own assignments.
    program = (
        f"DATA='{data}'\n"
        'REPOSITORIES="$DATA/docker/registry/v2/repositories"\n'
        f"STATE='{state}'\n"
        f"RULES='{rules_file}'\n"
        'mkdir -p "$STATE"\n'
    ) + body
    # The container's working directory is the image's /: its names must not stand in for the tag globs (v* var).
    root = tmp_path / "root"
    for name in ("bin", "etc", "srv", "usr", "var"):
        (root / name).mkdir(parents=True, exist_ok=True)
    return run_busybox(script_program(settings_env, program), busybox_path, cwd=root)


def pushed_tags(tmp_path: Path) -> Store:
    store = Store(tmp_path / "data")
    for tag in TAGS:
        push(store, tag)
    return store


def run_retention(tmp_path: Path, busybox_path: str, store: Store, *, dry_run: bool) -> list[str]:
    result = run_rules(tmp_path, busybox_path, store.data, rules_text(GC_RULES), dry_run=dry_run)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines()


def logged_tags(lines: list[str], verb: str) -> set[tuple[str, str]]:
    found = set()
    for line in lines:
        match = re.search(rf"maintenance: retention: {verb} (?:tag )?([^:\s]+):(\S+) \(", line)
        if match:
            found.add((match[1], match[2]))
    return found


def logged_staying(lines: list[str], verb: str) -> set[tuple[str, str]]:
    """The dropped tags whose manifest the log says stays (something kept needs it)."""
    found = set()
    for line in lines:
        match = re.search(rf"maintenance: retention: {verb} tag ([^:\s]+):(\S+) \(its manifest sha256:\S+ stays", line)
        if match:
            found.add((match[1], match[2]))
    return found


def logged_untagged(lines: list[str], verb: str) -> set[tuple[str, str]]:
    found = set()
    for line in lines:
        match = re.search(rf"maintenance: retention: {verb} untagged ([^@\s]+)@sha256:([0-9a-f]{{64}}) \(", line)
        if match:
            found.add((match[1], match[2]))
    return found


def test_retention_dry_run_only_logs(tmp_path: Path, busybox_path: str) -> None:
    store = pushed_tags(tmp_path)
    before = tree(store.data)
    lines = run_retention(tmp_path, busybox_path, store, dry_run=True)
    assert tree(store.data) == before
    assert logged_tags(lines, "would delete") == DELETED
    assert not logged_tags(lines, "deleted")
    assert any("retention: team/app: keeping 3 tags, deleting 3" in line for line in lines), lines
    assert not any("library/alpine" in line for line in lines)


def test_retention_deletes_what_the_rules_do_not_keep(tmp_path: Path, busybox_path: str) -> None:
    store = pushed_tags(tmp_path)
    lines = run_retention(tmp_path, busybox_path, store, dry_run=False)
    tags, revisions = store.remaining()
    assert tags == store.tags - DELETED
    assert revisions == store.revisions - DELETED_REVISIONS
    assert logged_tags(lines, "deleted") == DELETED
    assert not logged_tags(lines, "would delete")
    # Shared manifests are named as such in the log.
    assert any("tag team/app:old (its manifest sha256:" in line for line in lines), lines
    assert any("tag ci/build:b1 (its manifest sha256:" in line for line in lines), lines


# ---- what kept tags need: indexes, signatures, attestations, SBOMs, referrers


@dataclass
class Scenario:
    """A tree, the rules, and what retention must delete: every other tag and revision stays."""

    store: Store
    gc: dict[str, object]
    deleted_tags: set[tuple[str, str]]
    deleted_revisions: set[tuple[str, str]]
    deleted_untagged: set[tuple[str, str]] = field(default_factory=set)
    """Untagged revisions that go (referrers of manifests that go)."""


def multi_platform(store: Store, media_types: tuple[str, str]) -> Scenario:
    """`docker buildx imagetools create`: an index tagged 1.0 over platform manifests tagged 1.0-amd64 and
    1.0-arm64, kept by keepTags [1.0] with keepLast 1: the platform tags go, their manifests stay. An older
    index (0.9) and its platforms, and two builds, go altogether."""
    index_type, child_type = media_types
    repo = "multi/app"
    gone: set[tuple[str, str]] = set()
    for version, pushed in (("0.9", T0 + 100), ("1.0", T0 + 200)):
        children = []
        for offset, arch in enumerate(("amd64", "arm64")):
            children.append(store.image(repo, f"{version}-{arch}", pushed + offset, media_type=child_type))
        index = store.manifest(repo, index_manifest(children, media_type=index_type, child_type=child_type))
        store.tag(repo, version, index, pushed + 10)
        if version == "0.9":
            gone |= {(repo, index), *((repo, child) for child in children)}
    builds = [store.image(repo, f"build-{n}", T0 + n) for n in (1, 2)]
    return Scenario(
        store,
        {"retention": {"rules": [{"repositories": ["multi/*"], "keepLast": 1, "keepTags": ["1.0"]}]}},
        deleted_tags={
            (repo, t) for t in ("0.9", "0.9-amd64", "0.9-arm64", "1.0-amd64", "1.0-arm64", "build-1", "build-2")
        },
        deleted_revisions=gone | {(repo, build) for build in builds},
    )


def nested_index(store: Store) -> Scenario:
    """An index within an index within an index (each level tagged, only the top one kept), written in other JSON
    layouts: pretty-printed over many lines, a digest spelled with a \\u escape. Two manifests that name each
    other (impossible by content, written here by name) end the walk. A third index names a platform manifest
    it shares with the kept one: that platform stays, the third index goes."""
    repo = "nested/app"
    platform = store.image(repo, "3.0-linux-amd64", T0 + 10)
    ring_a, ring_b = "a1" * 32, "b2" * 32
    store.manifest(repo, image_manifest("ring a") | {"annotations": {"next": f"sha256:{ring_b}"}}, name=ring_a)
    store.manifest(repo, image_manifest("ring b") | {"annotations": {"next": f"sha256:{ring_a}"}}, name=ring_b)
    store.tag(repo, "ring-a", ring_a, T0 + 11)
    store.tag(repo, "ring-b", ring_b, T0 + 12)
    inner_text = json.dumps(index_manifest([platform, ring_a]), indent=4).replace(
        f'"sha256:{platform}"', f'"\\u0073ha256:{platform}"'
    )
    assert "\n" in inner_text and "\\u0073ha256:" in inner_text
    inner = store.manifest(repo, inner_text)
    store.tag(repo, "3.0-linux", inner, T0 + 20)
    middle = store.manifest(repo, index_manifest([inner]))
    store.tag(repo, "3.0-middle", middle, T0 + 21)
    top = store.manifest(repo, index_manifest([middle]))
    store.tag(repo, "3.0", top, T0 + 30)
    other = store.manifest(repo, index_manifest([platform]))
    store.tag(repo, "other", other, T0 + 5)
    build = store.image(repo, "build-1", T0 + 1)
    return Scenario(
        store,
        {"retention": {"rules": [{"repositories": ["nested/*"], "keepLast": 1, "keepTags": ["3.0"]}]}},
        deleted_tags={
            (repo, t) for t in ("3.0-linux-amd64", "ring-a", "ring-b", "3.0-linux", "3.0-middle", "other", "build-1")
        },
        deleted_revisions={(repo, other), (repo, build)},
    )


def cosign(store: Store) -> Scenario:
    """cosign's tags (sha256-<image>.sig, .att, .sbom) and the OCI 1.1 referrers tag fallback (sha256-<image>,
    an index of the image's referrers) are pushed after their image, so they are the newest: keepLast does not
    count them. They stay with their image (v1.0 by keepTags, build-3 by keepLast 1) and go with it (build-1,
    build-2), at any depth (a signature of a signature). One whose image is no manifest of the repository stays."""
    repo = "signed/app"
    v1 = store.image(repo, "v1.0", T0 + 1)
    b1, b2, b3 = (store.image(repo, f"build-{n}", T0 + 1 + n) for n in (1, 2, 3))
    deleted_tags = {(repo, "build-1"), (repo, "build-2")}
    deleted_revisions = {(repo, b1), (repo, b2)}
    deleted_untagged = set()
    pushed = T0 + 100
    for image, goes in ((v1, False), (b1, True), (b2, True), (b3, False)):
        for suffix in (".sig", ".att", ".sbom"):
            tag = f"sha256-{image}{suffix}"
            accessory = store.manifest(repo, image_manifest(f"{tag} of {image}"))
            store.tag(repo, tag, accessory, pushed)
            pushed += 1
            if goes:
                deleted_tags.add((repo, tag))
                deleted_revisions.add((repo, accessory))
            if suffix == ".sig":  # the signature's own signature
                tag = f"sha256-{accessory}.sig"
                signature = store.manifest(repo, image_manifest(f"signature of {accessory}"))
                store.tag(repo, tag, signature, pushed)
                pushed += 1
                if goes:
                    deleted_tags.add((repo, tag))
                    deleted_revisions.add((repo, signature))
        if image in (v1, b1):
            # The tag fallback: an index of the image's referrers, which are untagged manifests with a subject.
            referrer = store.manifest(repo, image_manifest(f"sbom of {image}", subject=image))
            fallback = store.manifest(repo, index_manifest([referrer]))
            store.tag(repo, f"sha256-{image}", fallback, pushed)
            pushed += 1
            if goes:
                deleted_tags.add((repo, f"sha256-{image}"))
                deleted_revisions |= {(repo, fallback), (repo, referrer)}
                deleted_untagged.add((repo, referrer))
    elsewhere = name_hash("an image of another repository")
    store.tag(repo, f"sha256-{elsewhere}.sig", store.manifest(repo, image_manifest("foreign signature")), pushed)
    # Not cosign's: a tag that only looks like one stays a build tag (and goes).
    lookalike = store.manifest(repo, image_manifest("look-alike"))
    store.tag(repo, f"sha256-{elsewhere}.tmp", lookalike, T0)
    deleted_tags.add((repo, f"sha256-{elsewhere}.tmp"))
    deleted_revisions.add((repo, lookalike))
    return Scenario(
        store,
        {"retention": {"rules": [{"repositories": ["signed/app"], "keepLast": 1, "keepTags": ["v*"]}]}},
        deleted_tags,
        deleted_revisions,
        deleted_untagged,
    )


def referrers(store: Store) -> Scenario:
    """OCI 1.1 referrers, manifests with a `subject`, whatever their tag (or none): not counted by keepLast, kept
    with their subject, gone with it, at any depth; one whose subject is no manifest of the repository stays."""
    repo = "sbom/app"
    v1 = store.image(repo, "v1", T0 + 1)
    b1 = store.image(repo, "b1", T0 + 2)
    b2 = store.image(repo, "b2", T0 + 3)  # the newest build: keepLast 1
    sbom_v1 = store.image(repo, "sbom-v1", T0 + 10, subject=v1)
    sbom_b1 = store.image(repo, "sbom-b1", T0 + 11, subject=b1)
    store.image(repo, "sbom-b2", T0 + 12, subject=b2)
    # Untagged referrers (pushed by digest, as with the referrers API), one a referrer of a referrer.
    store.manifest(repo, image_manifest("attestation of v1", subject=v1))
    store.manifest(repo, image_manifest("signature of sbom-v1", subject=sbom_v1))
    attestation_b1 = store.manifest(repo, image_manifest("attestation of b1", subject=b1))
    signature_b1 = store.manifest(repo, image_manifest("signature of sbom-b1", subject=sbom_b1))
    signed_sbom_b1 = store.image(repo, "sig-sbom-b1", T0 + 13, subject=sbom_b1)
    store.image(repo, "foreign-ref", T0 + 14, subject=name_hash("another repository's image"))
    return Scenario(
        store,
        {"retention": {"rules": [{"repositories": ["sbom/*"], "keepLast": 1, "keepTags": ["v*"]}]}},
        deleted_tags={(repo, "b1"), (repo, "sbom-b1"), (repo, "sig-sbom-b1")},
        deleted_revisions={(repo, h) for h in (b1, sbom_b1, attestation_b1, signature_b1, signed_sbom_b1)},
        deleted_untagged={(repo, attestation_b1), (repo, signature_b1)},
    )


def accessory_ring(store: Store) -> Scenario:
    """Two cosign-style tags that each name the other's manifest (written so on purpose), and no image among
    them: nothing shows they are garbage, so they stay (the build tags around them are decided as ever)."""
    repo = "ring/app"
    first = store.manifest(repo, image_manifest("first"))
    second = store.manifest(repo, image_manifest("second"))
    store.tag(repo, f"sha256-{second}.sig", first, T0 + 50)
    store.tag(repo, f"sha256-{first}.sig", second, T0 + 51)
    own = store.manifest(repo, image_manifest("own"))
    store.tag(repo, f"sha256-{own}", own, T0 + 52)  # an accessory of itself
    old = store.image(repo, "old", T0 + 1)
    store.image(repo, "new", T0 + 2)
    return Scenario(
        store,
        {"retention": {"rules": [{"repositories": ["ring/*"], "keepLast": 1}]}},
        deleted_tags={(repo, "old")},
        deleted_revisions={(repo, old)},
    )


SCENARIOS: dict[str, Callable[[Store], Scenario]] = {
    "oci-index": lambda store: multi_platform(store, (OCI_INDEX, OCI_MANIFEST)),
    "docker-manifest-list": lambda store: multi_platform(store, (DOCKER_LIST, DOCKER_MANIFEST)),
    "nested-index": nested_index,
    "cosign": cosign,
    "referrers": referrers,
    "accessory-ring": accessory_ring,
}


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_retention_keeps_what_kept_tags_need(tmp_path: Path, busybox_path: str, name: str, dry_run: bool) -> None:
    """Each scenario twice: the real run deletes exactly what it must; the dry run names exactly that and
    changes nothing."""
    scenario = SCENARIOS[name](Store(tmp_path / "data"))
    store = scenario.store
    before = tree(store.data)
    result = run_rules(tmp_path, busybox_path, store.data, rules_text(scenario.gc), dry_run=dry_run)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    verb, other = ("would delete", "deleted") if dry_run else ("deleted", "would delete")
    assert logged_tags(lines, verb) == scenario.deleted_tags, result.stdout
    assert logged_untagged(lines, verb) == scenario.deleted_untagged, result.stdout
    staying = {
        (repo, tag)
        for repo, tag in scenario.deleted_tags
        if (repo, store.tag_digests[(repo, tag)]) not in scenario.deleted_revisions
    }
    assert logged_staying(lines, verb) == staying, result.stdout
    assert not logged_tags(lines, other) and not logged_untagged(lines, other)
    if dry_run:
        assert tree(store.data) == before
        return
    tags, revisions = store.remaining()
    assert tags == store.tags - scenario.deleted_tags
    assert revisions == store.revisions - scenario.deleted_revisions
    # Blobs are the garbage collection's: retention removes none.
    assert {path for path in before if "/blobs/" in path} <= set(tree(store.data))


def test_a_dropped_tag_whose_manifest_an_index_needs_loses_only_its_tag(tmp_path: Path, busybox_path: str) -> None:
    scenario = multi_platform(Store(tmp_path / "data"), (OCI_INDEX, OCI_MANIFEST))
    result = run_rules(tmp_path, busybox_path, scenario.store.data, rules_text(scenario.gc), dry_run=False)
    assert re.search(
        r"retention: deleted tag multi/app:1\.0-amd64 \(its manifest sha256:[0-9a-f]{64} stays", result.stdout
    )
    assert "retention: multi/app: keeping 1 tags, deleting 7" in result.stdout


@pytest.mark.parametrize("missing", ["index", "platform", "build"])
def test_a_manifest_without_its_blob_stops_deletions_in_its_repository_only(
    tmp_path: Path, busybox_path: str, missing: str
) -> None:
    """Without a manifest's blob nothing tells what it needs: retention deletes nothing in that repository, says
    so, and goes on with the others (the run does not fail for it)."""
    store = Store(tmp_path / "data")
    repo = "broken/app"
    platform = store.image(repo, "1.0-amd64", T0 + 10)
    index = store.manifest(repo, index_manifest([platform]))
    store.tag(repo, "1.0", index, T0 + 20)
    build = store.image(repo, "build-1", T0 + 1)
    blob_path(store.data, {"index": index, "platform": platform, "build": build}[missing]).unlink()
    fine = store.image("fine/app", "build-1", T0 + 1)
    store.image("fine/app", "1.0", T0 + 2)
    before = tree(store.data)
    gc = {"retention": {"rules": [{"repositories": ["broken/*", "fine/*"], "keepLast": 1, "keepTags": ["1.0"]}]}}
    result = run_rules(tmp_path, busybox_path, store.data, rules_text(gc), dry_run=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"retention: broken/app: WARNING: manifest sha256:[0-9a-f]{64} has no blob", result.stdout)
    assert "deletes nothing in this repository" in result.stdout
    after = tree(store.data)
    assert {p: v for p, v in after.items() if "/broken/" in p} == {p: v for p, v in before.items() if "/broken/" in p}
    assert logged_tags(result.stdout.splitlines(), "deleted") == {("fine/app", "build-1")}
    assert ("fine/app", fine) not in store.remaining()[1]


@pytest.mark.parametrize("keep_last", ["9223372036854775808", "99999999999999999999", "1000001", "1e3", "0x10", "-1"])
def test_a_keep_last_out_of_bounds_fails_the_run_and_deletes_nothing(
    tmp_path: Path, busybox_path: str, keep_last: str
) -> None:
    """A rules file the config would refuse (written here by hand): from 2^63 busybox's `[ -le ]` cannot compare,
    which must not read as "not among the last N". The run fails before any tag is touched."""
    store = Store(tmp_path / "data")
    for n in range(3):
        store.image("team/app", f"t{n}", T0 + n)
    before = tree(store.data)
    rules = f"# header\n1 other/* -\n{keep_last} team/* -\n"
    result = run_rules(tmp_path, busybox_path, store.data, rules, dry_run=False, body="retention\necho survived\n")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "survived" not in result.stdout
    assert (
        f"retention: FAILED: a rule has keepLast '{keep_last}', not a whole number from 0 to 1000000" in result.stdout
    )
    assert tree(store.data) == before


def test_keep_last_is_bounded_by_the_config_and_by_the_script(tmp_path: Path, busybox_path: str) -> None:
    """The config refuses a keepLast above 1,000,000 (2^63 would fail busybox's `[ -le ]`), naming the key; the
    script takes the largest one and keeps everything."""
    for value in (2**63, 1_000_001):
        assert (
            "private-registry:gc.retention.rules.0.keepLast: Input should be less than or equal to 1000000 "
            f"(got {value})"
        ) in gc_error(rule(keepLast=value))
    store = Store(tmp_path / "data")
    for n in range(3):
        store.image("team/app", f"t{n}", T0 + n)
    before = tree(store.data)
    gc = {"retention": {"rules": [{"repositories": ["team/*"], "keepLast": 1_000_000}]}}
    result = run_rules(tmp_path, busybox_path, store.data, rules_text(gc), dry_run=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "team/app: keeping 3 tags, deleting 0" in result.stdout
    assert tree(store.data) == before


def test_a_comparison_the_shell_cannot_make_stops_the_run(tmp_path: Path, busybox_path: str) -> None:
    """The script's own guard, beneath the rules check: `at_most` ends the run rather than answer "no"."""
    body = 'at_most 3 5 && echo "3<=5"\nat_most 5 3 || echo "5>3"\nat_most 3 9223372036854775808\necho survived\n'
    result = run_rules(tmp_path, busybox_path, tmp_path / "data", "# header\n", dry_run=False, body=body)
    assert result.returncode == 1
    assert "3<=5" in result.stdout and "5>3" in result.stdout and "survived" not in result.stdout
    assert "cannot be compared as numbers: the run stops" in result.stdout


# ---- emptying the Redis cache after a collection (busybox nc against a fake Redis)


class FakeRedis:
    """A Redis that speaks just enough RESP: AUTH (one password), SELECT, FLUSHDB, QUIT; records the commands."""

    def __init__(self, password: str | None, host: str = "127.0.0.1") -> None:
        self.password = password
        self.commands: list[list[str]] = []
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.server = socket.create_server((host, 0), family=family)
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.server.settimeout(20)
        with contextlib.suppress(OSError), self.server.accept()[0] as connection:
            reader = connection.makefile("rb")
            authenticated = self.password is None
            while True:
                header = reader.readline()
                if not header.startswith(b"*"):
                    return
                words = []
                for _ in range(int(header[1:])):
                    length = int(reader.readline()[1:])
                    words.append(reader.read(length + 2)[:-2].decode())
                self.commands.append(words)
                if words[0] == "AUTH":
                    authenticated = words[1] == self.password
                    connection.sendall(b"+OK\r\n" if authenticated else b"-WRONGPASS invalid password\r\n")
                elif not authenticated:
                    connection.sendall(b"-NOAUTH Authentication required.\r\n")
                else:
                    connection.sendall(b"+OK\r\n")
                if words[0] == "QUIT":
                    return


def flush_cache_with(
    busybox_path: str, cache_env: str, *, gc_dry_run: bool = False
) -> subprocess.CompletedProcess[str]:
    settings_env = render_maintenance_settings(maintenance_settings(gc_dry_run=gc_dry_run))
    body = 'STATE=$(mktemp -d)\nflush_cache\necho "exit $?"\n'
    program = script_program(settings_env, body)
    # cache.env in place of sourcing it, as the settings are (each piece exactly once, or this tests another script)
    assert program.count(CACHE_SOURCE_LINE) == 1 and program.count(CACHE_CHECK_LINE) == 1
    program = program.replace(CACHE_CHECK_LINE, "if true; then").replace(CACHE_SOURCE_LINE, cache_env)
    return run_busybox(program, busybox_path)


@pytest.mark.parametrize("password", [None, "p@ss word $(x) `y` \\ '\""], ids=["no-password", "odd-password"])
def test_flush_cache_empties_the_registrys_database(busybox_path: str, password: str | None) -> None:
    redis = FakeRedis(password)
    env = render_cache_env(f"127.0.0.1:{redis.port}", password, 3)
    result = flush_cache_with(busybox_path, env)
    redis.thread.join(timeout=20)
    assert "exit 0" in result.stdout, result.stdout + result.stderr
    assert f"Redis database 3 at 127.0.0.1:{redis.port} emptied" in result.stdout
    expected = [["SELECT", "3"], ["FLUSHDB"], ["QUIT"]]
    assert redis.commands == ([["AUTH", password]] if password else []) + expected


def test_flush_cache_reaches_a_redis_at_an_ipv6_address(busybox_path: str) -> None:
    # The registry takes [fd00::7]:6379; nc takes the address without its brackets.
    redis = FakeRedis(None, host="::1")
    result = flush_cache_with(busybox_path, render_cache_env(f"[::1]:{redis.port}", None, 0))
    redis.thread.join(timeout=20)
    assert "exit 0" in result.stdout, result.stdout + result.stderr
    assert redis.commands == [["SELECT", "0"], ["FLUSHDB"], ["QUIT"]]


def test_flush_cache_fails_loudly_with_a_wrong_password(busybox_path: str) -> None:
    redis = FakeRedis("the-right-one")
    result = flush_cache_with(busybox_path, render_cache_env(f"127.0.0.1:{redis.port}", "a-wrong-one", 0))
    redis.thread.join(timeout=20)
    # The run stops there (set -e): its status is the failure, and the log says why, without the password.
    assert result.returncode == 1 and "FAILED: -WRONGPASS" in result.stdout, result.stdout
    assert "a-wrong-one" not in result.stdout + result.stderr


def test_flush_cache_leaves_redis_alone_on_a_dry_run_or_without_redis(busybox_path: str) -> None:
    dry = flush_cache_with(busybox_path, render_cache_env("127.0.0.1:1", None, 0), gc_dry_run=True)
    assert "exit 0" in dry.stdout and "dry run, Redis left as it is" in dry.stdout
    none = flush_cache_with(busybox_path, render_cache_env(None, None, 0))
    assert none.stdout.strip().endswith("exit 0") and "Redis" not in none.stdout


def test_a_registry_nothing_was_pushed_to_is_collected_without_a_failure(busybox_path: str, tmp_path: Path) -> None:
    # garbage-collect fails on a store without a repositories directory ("Path not found"): a new stack's first
    # scheduled run would fail and leave the container unhealthy. Here a `registry` that fails like it.
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "registry").write_text("#!/bin/sh\necho 'Path not found: /docker/registry/v2/repositories'\nexit 1\n")
    (fake_bin / "registry").chmod(0o755)
    settings_env = render_maintenance_settings(maintenance_settings())
    body = f'STATE=$(mktemp -d)\nREPOSITORIES={tmp_path}/none\ncollect\necho "exit $?"\n'
    result = run_busybox(script_program(settings_env, body), f"{fake_bin}:{busybox_path}")
    assert result.stdout.strip().endswith("exit 0"), result.stdout + result.stderr
    assert "nothing pushed yet" in result.stdout
    (tmp_path / "none").mkdir()
    failing = run_busybox(script_program(settings_env, body), f"{fake_bin}:{busybox_path}")
    assert "garbage collection FAILED" in failing.stdout, failing.stdout  # with repositories, a failure counts
