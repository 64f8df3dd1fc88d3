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
import json
import os
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

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


@dataclass(frozen=True)
class Tag:
    repository: str
    name: str
    digest: str
    """A letter: the manifest's digest is that letter repeated (64 hex digits)."""
    pushed: int


def hex_digest(letter: str) -> str:
    return letter * 64


def repositories_dir(data: Path) -> Path:
    return data / "docker/registry/v2/repositories"


def push(data: Path, tag: Tag) -> None:
    """What the filesystem driver leaves for a pushed tag: its current link, its index, the manifest's revision."""
    manifests = repositories_dir(data) / tag.repository / "_manifests"
    link = manifests / "tags" / tag.name / "current/link"
    index = manifests / "tags" / tag.name / "index/sha256" / hex_digest(tag.digest) / "link"
    revision = manifests / "revisions/sha256" / hex_digest(tag.digest) / "link"
    for path in (link, index, revision):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"sha256:{hex_digest(tag.digest)}")
        os.utime(path, (tag.pushed, tag.pushed))


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
DELETED_REVISIONS = {("team/app", "b"), ("team/app", "c"), ("solo/tool", "8")}


def tree(data: Path) -> dict[str, tuple[str, int]]:
    return {
        str(path.relative_to(data)): (path.read_text(), int(path.stat().st_mtime))
        for path in sorted(data.rglob("*"))
        if path.is_file()
    }


def run_retention(tmp_path: Path, busybox_path: str, *, dry_run: bool) -> tuple[Path, list[str]]:
    data = tmp_path / "data"
    for tag in TAGS:
        push(data, tag)
    gc = load_gc(GC_RULES)
    rules = tmp_path / "retention.rules"
    rules.write_text(
        render_retention_rules(
            tuple(RetentionRuleLine(rule.repositories, rule.keep_last, rule.keep_tags) for rule in gc.retention.rules)
        )
    )
    settings_env = render_maintenance_settings(maintenance_settings(retention_dry_run=dry_run))
    # The script's paths, pointed into tmp_path after its own assignments.
    body = (
        f"DATA='{data}'\n"
        'REPOSITORIES="$DATA/docker/registry/v2/repositories"\n'
        f"STATE='{tmp_path / 'state'}'\n"
        f"RULES='{rules}'\n"
        'mkdir -p "$STATE"\n'
        "retention\n"
    )
    # The container's working directory is the image's /: its names must not stand in for the tag globs (v* var).
    root = tmp_path / "root"
    for name in ("bin", "etc", "srv", "usr", "var"):
        (root / name).mkdir(parents=True)
    result = run_busybox(script_program(settings_env, body), busybox_path, cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    return data, result.stdout.splitlines()


def logged_tags(lines: list[str], verb: str) -> set[tuple[str, str]]:
    found = set()
    for line in lines:
        match = re.search(rf"maintenance: retention: {verb} (?:tag )?([^:\s]+):(\S+) \(", line)
        if match:
            found.add((match[1], match[2]))
    return found


def remaining(data: Path) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """The tags and the revisions (repository, digest letter) left in the tree."""
    tags = set()
    revisions = set()
    for tag in TAGS:
        manifests = repositories_dir(data) / tag.repository / "_manifests"
        if (manifests / "tags" / tag.name).exists():
            tags.add((tag.repository, tag.name))
        if (manifests / "revisions/sha256" / hex_digest(tag.digest)).exists():
            revisions.add((tag.repository, tag.digest))
    return tags, revisions


def test_retention_dry_run_only_logs(tmp_path: Path, busybox_path: str) -> None:
    data = tmp_path / "data"
    for tag in TAGS:
        push(data, tag)
    before = tree(data)
    shutil.rmtree(data)
    data, lines = run_retention(tmp_path, busybox_path, dry_run=True)
    assert tree(data) == before
    assert logged_tags(lines, "would delete") == DELETED
    assert not logged_tags(lines, "deleted")
    assert any("retention: team/app: keeping 3 tags, deleting 3" in line for line in lines), lines
    assert not any("library/alpine" in line for line in lines)


def test_retention_deletes_what_the_rules_do_not_keep(tmp_path: Path, busybox_path: str) -> None:
    data, lines = run_retention(tmp_path, busybox_path, dry_run=False)
    tags, revisions = remaining(data)
    every_tag = {(tag.repository, tag.name) for tag in TAGS}
    every_revision = {(tag.repository, tag.digest) for tag in TAGS}
    assert tags == every_tag - DELETED
    assert revisions == every_revision - DELETED_REVISIONS
    assert logged_tags(lines, "deleted") == DELETED
    assert not logged_tags(lines, "would delete")
    # Shared manifests are named as such in the log.
    assert any("tag team/app:old (its manifest sha256:" in line for line in lines), lines
    assert any("tag ci/build:b1 (its manifest sha256:" in line for line in lines), lines


# ---- emptying the Redis cache after a collection (busybox nc against a fake Redis)


class FakeRedis:
    """A Redis that speaks just enough RESP: AUTH (one password), SELECT, FLUSHDB, QUIT; records the commands."""

    def __init__(self, password: str | None) -> None:
        self.password = password
        self.commands: list[list[str]] = []
        self.server = socket.create_server(("127.0.0.1", 0))
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
