"""The `promote` command: parses arguments, calls the library, prints, maps errors to exit codes.

Library modules are imported inside the commands so that `promote --help` stays fast.
"""

from __future__ import annotations

import atexit
import functools
import gc
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Optional, TypeVar

import typer

from promote import __version__
from promote.errors import CheckFailed, ExitCode, InputError, PromoteError
from promote.runtime.collector import long_lived
from promote.runtime.redact import redact, redact_log_records

if TYPE_CHECKING:
    from promote.manifests.repository import Repository
    from promote.registry.client import Registry


class _PromoteApp(typer.Typer):
    """Typer, with placeholders that read as the value asked for (`--env ENV`, `DIRECTORY`)
    rather than its Python type (`--env <str>`, `{directory}`)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        group = typer.main.get_command(self)
        for command in [group, *getattr(group, "commands", {}).values()]:
            for param in command.params:
                if param.metavar is None and not getattr(param, "is_flag", False):
                    placeholder = (param.name or "value").upper()
                    param.metavar = placeholder
                    if param.param_type_name == "argument":
                        # Typer shows an argument's type beside it and braces it in usage
                        # (tests/test_cli.py holds these to typer's behaviour).
                        param.display_type_rich = lambda ctx=None: None
                        param._usage_display_name = lambda text=placeholder: text
        return group(*args, **kwargs)


app = _PromoteApp(
    help="GitOps promotion of ML models: git holds what each environment should run, "
    "one MLflow registry holds what runs, prod rebuilds and proves lineage.",
    no_args_is_help=True,
    # `promote --install-completion` (bash, zsh, fish, PowerShell) and --show-completion.
    add_completion=True,
    pretty_exceptions_enable=False,
    # Plain click help: rendering it with rich imports rich and markdown-it, which more than
    # doubles the start-up of `promote --help` (benchmarks/startup.py).
    rich_markup_mode=None,
)

REGISTRY_RETRY_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "4",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
}
JsonOption = typer.Option(False, "--json", help="Print the result as JSON.")
Command = TypeVar("Command", bound=Callable[..., Any])
EnvOption = typer.Option(..., "--env", help="Environment name (dev, staging, prod, ...).")
RegistryDbOption = typer.Option(
    None,
    "--registry-db",
    envvar="PROMOTE_REGISTRY_DB",
    metavar="URI",
    help="Read the registry from this read-only copy of the tracking server's database (a "
    "replica, as an SQLAlchemy URI); writes still go through --registry.",
)


@dataclass
class Settings:
    repo: Path
    registry_uri: Optional[str]  # noqa: UP045 - typer reads these annotations at runtime
    traceback: bool = False

    def repository(self) -> Repository:
        from promote.manifests.loader import load_repository

        return load_repository(self.repo)

    def registry(self, replica: str | None = None) -> Registry:
        from promote.registry.client import Registry

        return Registry.for_repository(self.repo, self.registry_uri, replica)


def print_version(asked: bool) -> None:
    if asked:
        echo(f"promote {__version__}")
        raise typer.Exit(ExitCode.OK)


@app.callback()
def main(
    context: typer.Context,
    repo: Path = typer.Option(Path("."), "--repo", help="The GitOps repository (default: here)."),
    registry: Optional[str] = typer.Option(  # noqa: UP045
        None,
        "--registry",
        envvar="MLFLOW_TRACKING_URI",
        help="MLflow tracking/registry URI (default: sqlite under REPO/.promote).",
    ),
    traceback: bool = typer.Option(
        False, "--traceback", help="On an unexpected error, show the whole traceback."
    ),
    version: bool = typer.Option(
        False,
        "--version",
        callback=print_version,
        is_eager=True,
        help="Print promote's version and exit.",
    ),
) -> None:
    context.obj = Settings(repo=repo, registry_uri=registry, traceback=traceback)
    # Registered first, so it runs last: exiting then skips a full collection of MLflow's objects.
    atexit.register(gc.freeze)
    redact_log_records()
    # MLflow retries an unreachable server with backoff for minutes by default; a pipeline
    # should give up sooner and say so. Explicit settings in the environment still win.
    for name, value in REGISTRY_RETRY_DEFAULTS.items():
        os.environ.setdefault(name, value)


def echo(message: str = "", err: bool = False) -> None:
    """Print one line; every line the CLI prints passes here, with its secrets masked."""
    typer.echo(redact(message), err=err)


# One example per command, shown at the end of its --help (tests/test_cli.py checks that every
# command has one).
EXAMPLES = {
    "train": "promote train churn --env dev --param C=0.3",
    "model": "promote model churn --to staging",
    "plan": "promote plan --env prod --json",
    "apply": "promote apply --env staging",
    "report": "promote report --env prod --summary",
    "status": "promote status --verify",
    "verify": "promote verify churn --env prod --version 3",
    "reproduce": "promote reproduce churn --env prod",
    "history": "promote history churn --env prod --json",
    "handoff": "promote handoff churn --env prod --json",
    "predict": "promote predict churn --env prod --input s3://bucket/in/ --output out.parquet",
    "serve": "promote serve churn --env prod --port 8080",
    "drift": "promote drift churn --env prod --data s3://bucket/scored/ --labels churned",
    "retrain": "promote retrain churn --env prod --open-pr",
    "watch": "promote watch --summary --notify",
    "rollback": "promote rollback churn --env prod",
    "unlock": "promote unlock churn --env staging --force",
    "keygen": "promote keygen --env prod",
    "schema": "promote schema environment --json > environment.schema.json",
    "quickstart": "promote quickstart /tmp/promote-demo",
    "init": "promote init ml-gitops --org acme --approvers-team ml-release "
    "--registry-uri https://mlflow.acme.internal",
    "access": "promote access --json",
}


def command(name: str | None = None) -> Callable[[Command], Command]:
    """Register a command whose errors become one line on stderr and their exit code.

    A library error carries its message and code; anything else is a bug, told in one line
    (the whole traceback with --traceback) with its own exit code.
    """

    def register(function: Command) -> Command:
        registered = name or function.__name__.replace("_", "-")
        example = EXAMPLES.get(registered)

        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            except PromoteError as exc:
                echo(f"error: {exc.message}", err=True)
                if kwargs.get("as_json"):
                    emit_json({"ok": False, "error": error_json(exc)})
                raise typer.Exit(exc.exit_code) from None
            except (typer.Exit, typer.Abort, typer.TyperException):
                raise
            except Exception as exc:
                # Every command takes the context: the root's settings say --traceback or not.
                settings = kwargs["context"].find_root().obj
                if settings.traceback:
                    raise
                first_line = (str(exc).splitlines() or [""])[0]
                message = (
                    f"internal error ({type(exc).__name__}: {first_line}); "
                    "run with --traceback for details"
                )
                echo(f"error: {message}", err=True)
                if kwargs.get("as_json"):
                    emit_json(
                        {
                            "ok": False,
                            "error": {
                                "kind": "internal",
                                "message": redact(message),
                                "exit_code": int(ExitCode.INTERNAL),
                            },
                        }
                    )
                raise typer.Exit(ExitCode.INTERNAL) from None

        app.command(name, epilog=f"Example: {example}" if example else None)(run)
        return function

    return register


def error_json(error: PromoteError) -> dict[str, Any]:
    """An error as `--json` prints it: what kind, the one-line message, where, the exit code."""
    where = {"file": error.source, "field": error.field} if isinstance(error, InputError) else {}
    return {
        "kind": type(error).__name__,
        "message": redact(error.message),
        "exit_code": int(error.exit_code),
        **where,
    }


def exit_with(ok: bool) -> NoReturn:
    """End a command whose result is a verdict: every check passed, or one failed."""
    raise typer.Exit(ExitCode.OK if ok else ExitCode.FAILED)


def emit_json(payload: Any) -> None:
    echo(json.dumps(payload, indent=2, sort_keys=True, default=str))


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(c) for c in headers]] + [
        ["" if c is None else str(c) for c in row] for row in rows
    ]
    widths = [max(map(len, column)) for column in zip(*cells, strict=True)]
    line = "  ".join(f"{{:<{width}}}" for width in widths)
    # One echo, so one redaction pass over the whole table: per line, masking secrets cost
    # more than everything else in `promote status` over thousands of models.
    echo("\n".join(line.format(*row).rstrip() for row in cells))


def parse_params(values: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in values:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise InputError("--param", None, f"{item!r} is not NAME=VALUE")
        try:
            params[name] = json.loads(raw)
        except json.JSONDecodeError:
            params[name] = raw
    return params


def reporter(quiet: bool) -> Callable[[str], None]:
    return (lambda _: None) if quiet else (lambda line: echo(line, err=True))


@command()
def train(
    context: typer.Context,
    name: str = typer.Argument(
        ..., help="Model name (its manifest is environments/ENV/NAME.yaml)."
    ),
    env: str = typer.Option(
        "dev", "--env", help="Environment to train in (one that promotes from none)."
    ),
    param: list[str] = typer.Option(
        [], "--param", help="Override a parameter: NAME=VALUE (repeatable)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Train at HEAD with full lineage; the version becomes champion if its gates pass."""
    from promote.train import train as train_model

    settings: Settings = context.obj
    outcome = train_model(
        settings.repository(),
        settings.registry(),
        name,
        env,
        parse_params(param),
        reporter(as_json),
    )
    if as_json:
        emit_json(outcome.to_json())
    else:
        echo(f"{env}.{name} v{outcome.version}: {outcome.detail}")
    exit_with(outcome.ok)


@command("model")
def model_command(
    context: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    to: str = typer.Option(..., "--to", help="Target environment."),
    open_pr: bool = typer.Option(
        False,
        "--open-pr",
        help="Push the branch and open (or update) its pull request; needs GITHUB_TOKEN.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Propose: write environments/TO/NAME.yaml for the source champion on a new branch."""
    from promote.github.pull_request import open_pull_request
    from promote.propose import propose

    settings: Settings = context.obj
    opened = None
    repo, registry = settings.repository(), settings.registry()
    proposal = propose(repo, registry, name, to)
    if open_pr and proposal.branch is not None:
        opened = open_pull_request(repo, registry, proposal)
    if as_json:
        emit_json({**proposal.to_json(), "pull_request": opened.__dict__ if opened else None})
    elif proposal.branch is None:
        echo(f"{proposal.path} already promotes {proposal.source_ref}: nothing to propose")
    else:
        echo(f"wrote {proposal.path} for {proposal.source_ref} on branch {proposal.branch}")
        if opened is None:
            echo(f"next: git push origin {proposal.branch} and open a pull request")
        else:
            verb = "opened" if opened.created else "updated"
            echo(f"{verb} pull request #{opened.number} {opened.url}")


@command()
def plan(
    context: typer.Context,
    env: Optional[str] = typer.Option(None, "--env", help="Only this environment."),  # noqa: UP045
    registry_db: Optional[str] = RegistryDbOption,  # noqa: UP045
    as_json: bool = JsonOption,
) -> None:
    """Desired state (manifests) against actual state (registry), per environment."""
    from promote.plan import Action, compute

    settings: Settings = context.obj
    with long_lived():
        states = compute(settings.repository(), settings.registry(registry_db), env)
    if as_json:
        emit_json([s.to_json() for s in states])
    elif not states:
        echo("no manifests under environments/: nothing to plan")
    else:
        table(
            ["ENV", "MODEL", "ACTION", "CHAMPION", "DETAIL"],
            [(s.environment, s.model, s.action.value, s.champion, s.detail) for s in states],
        )
    # A bad reference (2) outranks a refusal that may pass later, such as a check not run (1).
    refusals = [s.refusal.exit_code for s in states if s.action is Action.REFUSED and s.refusal]
    raise typer.Exit(max(refusals, default=ExitCode.OK))


@command()
def apply(
    context: typer.Context,
    env: Optional[str] = typer.Option(None, "--env", help="Only this environment."),  # noqa: UP045
    break_glass: Optional[str] = typer.Option(  # noqa: UP045
        None,
        "--break-glass",
        metavar="REASON",
        help="Emergency: bypass approval rules outside the merge workflow. Recorded in the "
        "history and the version's tags.",
    ),
    lock_wait: float = typer.Option(
        900.0, "--lock-wait", metavar="SECONDS", help="How long to wait for another apply's lock."
    ),
    model: Optional[str] = typer.Option(  # noqa: UP045
        None, "--model", metavar="NAME", help="Only this model (one job of a workflow's matrix)."
    ),
    jobs: int = typer.Option(
        1,
        "--jobs",
        min=1,
        metavar="N",
        help="Act on up to N models at once, each under its own lock; one failing does not "
        "stop the others.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Make the registry match the manifests: rebuild, check lineage and gates, move champion."""
    from promote.apply import Pipeline

    settings: Settings = context.obj
    pipeline = Pipeline(
        settings.repository(),
        settings.registry(),
        reporter(as_json),
        lock_wait=lock_wait,
        jobs=jobs,
    )
    result = pipeline.apply(env, break_glass=break_glass, model=model)
    if as_json:
        emit_json({"ok": result.ok, "outcomes": [o.to_json() for o in result.outcomes]})
    else:
        table(
            ["ENV", "MODEL", "ACTION", "VERSION", "RESULT"],
            [
                (
                    o.environment,
                    o.model,
                    o.action,
                    o.version,
                    ("ok: " if o.ok else "FAILED: ") + o.detail,
                )
                for o in result.outcomes
            ],
        )
    exit_with(result.ok)


@command()
def report(
    context: typer.Context,
    env: Optional[str] = typer.Option(None, "--env", help="Only this environment."),  # noqa: UP045
    title: str = typer.Option("promote plan", "--title", help="Heading of the report."),
    summary: bool = typer.Option(
        False, "--summary", help="Also append it to the job summary (GITHUB_STEP_SUMMARY)."
    ),
    comment: bool = typer.Option(
        False, "--comment", help="Also post it as the pull request's one plan comment."
    ),
) -> None:
    """The plan as markdown: changes per environment, version, commit, metrics, gates."""
    from promote.github.report import append_job_summary, comment_on_pull_request, report_states

    settings: Settings = context.obj
    markdown = report_states(settings.repository(), settings.registry(), env, title)
    if summary:
        append_job_summary(markdown)
    if comment:
        comment_on_pull_request(markdown)
    echo(markdown)


@command()
def status(
    context: typer.Context,
    env: Optional[str] = typer.Option(None, "--env", help="Only this environment."),  # noqa: UP045
    verify: bool = typer.Option(
        False, "--verify", help="Also recompute champions' artifact digests."
    ),
    registry_db: Optional[str] = RegistryDbOption,  # noqa: UP045
    as_json: bool = JsonOption,
) -> None:
    """Every model in every environment: in sync, pending, drifted or data changed (exit 1 on
    drift or changed data)."""
    from promote.plan import survey

    settings: Settings = context.obj
    with long_lived():
        registry = settings.registry(registry_db)
        states, strays = survey(settings.repository(), registry, env, verify=verify)
    if as_json:
        emit_json([*(s.to_json() for s in states), *(u.to_json() for u in strays)])
    else:
        table(
            ["ENV", "MODEL", "STATUS", "CHAMPION", "DETAIL"],
            [
                (
                    s.environment,
                    s.model,
                    s.status,
                    s.champion,
                    "; ".join(
                        [
                            *(s.drift or [s.detail]),
                            *([s.data_change.summary] if s.data_change else []),
                            *([s.lock] if s.lock else []),
                        ]
                    ),
                )
                for s in states
            ]
            + [(u.environment, u.registered_name, "drifted", None, u.problem) for u in strays],
        )
    drifted = strays or any(s.status in ("drifted", "rejected") or s.data_changed for s in states)
    exit_with(not drifted)


def _print_report(report: Any, as_json: bool) -> None:
    if as_json:
        emit_json(report.to_json())
    else:
        echo(report.subject)
        for check in report.checks:
            echo(f"  {'ok  ' if check.passed else 'FAIL'} {check.name}: {check.detail}")
    exit_with(report.ok)


@command()
def verify(
    context: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    env: str = EnvOption,
    version: Optional[int] = typer.Option(None, "--version", help="Default: the champion."),  # noqa: UP045
    rebuild: bool = typer.Option(False, "--rebuild", help="Also reproduce it from its lineage."),
    as_json: bool = JsonOption,
) -> None:
    """Recompute the artifact digest from storage and check the lineage record."""
    from promote.verify import reproduce
    from promote.verify import verify as verify_version

    settings: Settings = context.obj
    repo, registry = settings.repository(), settings.registry()
    report = verify_version(repo, registry, env, name, version)
    if rebuild:
        report.checks += reproduce(repo, registry, env, name, version).checks
    _print_report(report, as_json)


@command("reproduce")
def reproduce_command(
    context: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    env: str = EnvOption,
    version: Optional[int] = typer.Option(None, "--version", help="Default: the champion."),  # noqa: UP045
    as_json: bool = JsonOption,
) -> None:
    """Rebuild a version from its lineage alone (same commit, same data snapshot); compare."""
    from promote.verify import reproduce

    settings: Settings = context.obj
    report = reproduce(settings.repository(), settings.registry(), env, name, version)
    _print_report(report, as_json)


@command()
def history(
    context: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    env: str = EnvOption,
    as_json: bool = JsonOption,
) -> None:
    """Promotions, rejections and re-points of one model in one environment, oldest first."""
    from promote.verify import history as read_history

    settings: Settings = context.obj
    events = read_history(settings.repository(), settings.registry(), env, name)
    if as_json:
        emit_json(events)
        return
    table(
        ["TIME", "ACTION", "VERSION", "PREVIOUS", "COMMIT", "ACTOR", "APPROVED BY", "PR", "REASON"],
        [
            (
                e["time"],
                e["action"] + (" BREAK-GLASS" if e.get("break_glass") else ""),
                e["version"],
                e.get("previous"),
                e["commit"][:12],
                e["actor"],
                ",".join(e.get("approvers") or []),
                e.get("pull_request") or "",
                (e.get("break_glass") or e["reason"])[:80],
            )
            for e in events
        ],
    )


@command()
def handoff(
    context: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    env: str = EnvOption,
    as_json: bool = JsonOption,
) -> None:
    """Send the champion's hand-off again (webhook, GitHub deployment), for a target that was
    down; every attempt goes into the history."""
    from promote.apply import Pipeline

    settings: Settings = context.obj
    pipeline = Pipeline(settings.repository(), settings.registry(), reporter(as_json))
    deliveries = pipeline.hand_off_again(env, name)
    if as_json:
        emit_json([d.to_json() for d in deliveries])
    else:
        table(
            ["TARGET", "DELIVERED", "ATTEMPTS", "LAST"],
            [(d.target, d.delivered, len(d.replies), d.replies[-1].describe()) for d in deliveries],
        )
    exit_with(all(d.delivered for d in deliveries))


@command()
def predict(
    context: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    env: str = EnvOption,
    input_uri: str = typer.Option(
        ..., "--input", help="A CSV or Parquet file, or a folder or s3:// prefix of them."
    ),
    output_uri: str = typer.Option(
        ..., "--output", help="Where to write: a .csv or .parquet path or s3:// key."
    ),
    keep: list[str] = typer.Option(
        [], "--keep", help="An input column to copy beside the predictions (repeatable)."
    ),
    chunk_rows: int = typer.Option(100_000, "--chunk-rows", min=1, help="Rows per chunk."),
    as_json: bool = JsonOption,
) -> None:
    """Score files where they live with the verified champion; the output appears whole."""
    from promote.serving.batch import predict as score

    settings: Settings = context.obj
    # On a terminal the progress line is rewritten in place; in a log, one line every 10 s.
    live = sys.stderr.isatty() and not as_json

    def progress(line: str) -> None:
        if not as_json:
            typer.echo(("\r\x1b[K" if live else "") + redact(line), err=True, nl=not live)

    try:
        result = score(
            settings.repository(),
            settings.registry(),
            env,
            name,
            input_uri,
            output_uri,
            chunk_rows=chunk_rows,
            keep=keep,
            progress=progress,
            progress_every=1.0 if live else 10.0,
        )
    finally:
        if live:
            typer.echo(err=True)
    if as_json:
        emit_json(result.to_json())
        return
    model = result.scored_by
    echo(
        f"scored {result.rows:,} rows of {result.files} file(s) in {result.seconds:.1f}s with "
        f"{model.registered_name} v{model.version} ({model.digest[:12]}): {result.output}"
    )


@command()
def serve(
    context: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    env: str = EnvOption,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(5000, "--port", help="Port to listen on (0: any free one)."),
    interval: float = typer.Option(
        10.0, "--interval", min=0.1, help="Seconds between reads of the champion alias."
    ),
) -> None:
    """Answer MLflow's scoring protocol with the verified champion, following it as it moves."""
    from promote.serving.server import serve as run_server

    settings: Settings = context.obj
    run_server(
        settings.repository(),
        settings.registry(),
        env,
        name,
        host=host,
        port=port,
        interval=interval,
        log=lambda line: echo(line, err=True),
    )


@command()
def drift(
    context: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    env: str = EnvOption,
    data: Optional[str] = typer.Option(  # noqa: UP045
        None,
        "--data",
        metavar="PATH_OR_URI",
        help="A batch to compare: a CSV or Parquet file, or a folder or s3:// prefix of them "
        "(default: the environment's current data for the model).",
    ),
    labels: Optional[str] = typer.Option(  # noqa: UP045
        None,
        "--labels",
        metavar="COLUMN",
        help="The batch's label column: also score the champion on it (concept drift).",
    ),
    report_dir: Optional[Path] = typer.Option(  # noqa: UP045
        None,
        "--report",
        metavar="DIR",
        help="Where to save the report (default: .promote/drift/REGISTERED_NAME/TIME).",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Data (and, with labels, concept) drift against the champion's training profile; the
    report is saved and logged to the champion's run (exit 1 on drift)."""
    from promote.drift.check import check_drift
    from promote.drift.report import verdict

    settings: Settings = context.obj
    result = check_drift(
        settings.repository(), settings.registry(), env, name, data, labels, report_dir
    )
    if as_json:
        emit_json(result.to_json())
    else:
        echo(verdict(result))
        for dataset in result.datasets:
            target = [dataset.target] if dataset.target and dataset.target.drifted else []
            for feature in [*dataset.drifted_features, *target]:
                echo(f"  {dataset.name}: {feature.column}: {feature.reason}")
        for metric in result.concept:
            echo(
                f"  concept: {metric.metric} {metric.trained:.4g} -> {metric.current:.4g} "
                f"(tolerance {metric.tolerance:g}): {'DRIFT' if metric.drifted else 'ok'}"
            )
        files = ", ".join(path.name for path in result.report_files)
        echo(f"report: {result.report_files[0].parent} ({files}; logged to {result.logged_to})")
    exit_with(not result.drifted)


@command()
def retrain(
    context: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    env: str = EnvOption,
    open_pr: bool = typer.Option(
        False,
        "--open-pr",
        help="Push the branch and open (or update) its pull request; needs GITHUB_TOKEN.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Propose a retrain: the champion's commit rebuilt on ENV's current data once the branch
    (its manifest's data.as_of set, the drift report in its PR) is merged and approved."""
    from promote.drift.retrain import retrain as propose

    settings: Settings = context.obj
    outcome = propose(settings.repository(), settings.registry(), name, env, open_pr)
    if as_json:
        emit_json(outcome.to_json())
        return
    proposal, opened = outcome.proposal, outcome.pull_request
    echo(outcome.drift_note)
    echo(
        f"wrote {proposal.path} (data.as_of) for {proposal.source_ref} on branch {proposal.branch}"
    )
    if opened is None:
        echo(f"next: git push origin {proposal.branch} and open a pull request")
    else:
        verb = "opened" if opened.created else "updated"
        echo(f"{verb} pull request #{opened.number} {opened.url}")
    echo(f"merged, `promote apply --env {env}` rebuilds on {env}'s current data")


@command()
def watch(
    context: typer.Context,
    env: Optional[str] = typer.Option(None, "--env", help="Only this environment."),  # noqa: UP045
    summary: bool = typer.Option(
        False, "--summary", help="Append the findings to the GitHub Actions job summary."
    ),
    notify: bool = typer.Option(
        False,
        "--notify",
        help="Open or update one issue per drifted model (or its retrain pull request where "
        "the environment's watch.on_drift is retrain); needs GITHUB_TOKEN.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Check every champion's current data for drift, as a schedule does (exit 1 on drift or a
    check that could not run)."""
    from promote.drift.watch import watch as watch_all

    settings: Settings = context.obj
    result = watch_all(settings.repository(), settings.registry(), env, notify, summary)
    if as_json:
        emit_json(result.to_json())
        exit_with(result.ok)
    for watched in result.watched:
        echo(f"{watched.registered}: {watched.verdict}: {watched.detail}")
        if watched.pull_request is not None:
            echo(
                f"  retrain pull request #{watched.pull_request.number} {watched.pull_request.url}"
            )
        elif watched.issue is not None:
            verb = "opened" if watched.issue_created else "updated"
            echo(f"  {verb} issue #{watched.issue.number} {watched.issue.url}")
        for note in watched.notes:
            echo(f"  {note}")
    exit_with(result.ok)


@command()
def rollback(
    context: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    env: str = EnvOption,
    as_json: bool = JsonOption,
) -> None:
    """Propose a rollback: the manifest `previous` was built from, on a new branch."""
    from promote.propose import propose_rollback

    settings: Settings = context.obj
    proposal = propose_rollback(settings.repository(), settings.registry(), name, env)
    if as_json:
        emit_json(proposal.to_json())
        return
    echo(f"wrote {proposal.path} for {proposal.source_ref} on branch {proposal.branch}")
    echo("merged, `promote apply` re-points champion to it without rebuilding")


@command()
def unlock(
    context: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    env: str = EnvOption,
    force: bool = typer.Option(False, "--force", help="Release a lock that has not expired."),
    as_json: bool = JsonOption,
) -> None:
    """Release the apply lock a dead process left behind (after its expiry, or with --force)."""
    from promote.registry import lock

    settings: Settings = context.obj
    repo, registry = settings.repository(), settings.registry()
    registered = repo.registered_name(env, name)
    held = lock.read(registry, registered)
    if held is None:
        if as_json:
            emit_json({"model": registered, "released": False, "owner": None})
        else:
            echo(f"{registered} is not locked")
        return
    if not held.stale and not force:
        raise InputError(
            "--force",
            None,
            f"{registered} is locked by {held.owner} until {held.expires.isoformat()}; "
            "it may still be running: wait, or pass --force",
        )
    if not lock.release(registry, registered, owner=None):
        raise CheckFailed(f"{registered}: the lock changed hands while releasing it; look again")
    if as_json:
        emit_json({"model": registered, "released": True, "owner": held.owner})
    else:
        echo(f"released the lock on {registered} held by {held.owner}")


@command()
def keygen(
    context: typer.Context,
    env: str = EnvOption,
    as_json: bool = JsonOption,
) -> None:
    """Make a signing key for an environment: the private key in the key folder (mode 0600),
    the public key added to the environment's environment.yaml (commit it: verifying needs
    only git). In CI, pass the private key file's content as the PROMOTE_SIGNING_KEY secret."""
    from promote.manifests.repository import environment_file
    from promote.proof.keys import generate, key_id, public_key
    from promote.scaffold.quickstart import add_public_key

    settings: Settings = context.obj
    repo = settings.repository()
    repo.environment(env)
    relative = environment_file(env)
    public, private_path = generate()
    add_public_key(repo.root / relative, public)
    identifier = key_id(public_key(public))
    if as_json:
        emit_json(
            {
                "environment": env,
                "key_id": identifier,
                "private_key": str(private_path),
                "public_key_added_to": str(relative),
            }
        )
        return
    echo(f"key {identifier[:12]} of {env}: private key {private_path}")
    echo(f"added its public key to {relative}: review and commit it")


@command()
def schema(
    context: typer.Context,
    kind: str = typer.Argument("manifest", help="manifest or environment"),
    as_json: bool = typer.Option(
        False, "--json", help="Print the JSON Schema (for editors) instead of the field list."
    ),
) -> None:
    """List every field of model manifests or environment files: type, default, meaning."""
    from promote.manifests.schema import json_schemas, schema_fields

    schemas = json_schemas()
    if kind not in schemas:
        raise InputError("schema", None, f"unknown kind {kind!r} (manifest or environment)")
    if as_json:
        emit_json(schemas[kind])
        return
    table(
        ["FIELD", "TYPE", "DEFAULT", "MEANING"],
        [(f.path, f.type, f.default, f.description) for f in schema_fields(schemas[kind])],
    )


@command()
def quickstart(
    context: typer.Context,
    directory: Path = typer.Argument(..., help="A new folder for the sandbox."),
) -> None:
    """Create a sandbox and run the whole story: dev -> staging -> prod, with rebuilds."""
    from promote.scaffold.quickstart import run_story

    run_story(directory, echo)


def parse_assignments(values: list[str], option: str) -> dict[str, str]:
    """Repeated ENV=VALUE options as a mapping."""
    pairs: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise InputError(option, None, f"{item!r} is not ENV=VALUE")
        pairs[name] = value
    return pairs


@command()
def init(
    context: typer.Context,
    directory: Path = typer.Argument(..., help="A new (or empty) folder for the repository."),
    org: str = typer.Option(..., "--org", help="GitHub organisation."),
    approvers_team: str = typer.Option(
        ..., "--approvers-team", help="Slug of the team whose approvals release to prod."
    ),
    registry_uri: str = typer.Option(..., "--registry-uri", help="MLflow tracking URI."),
    data_root: list[str] = typer.Option(
        [], "--data-root", help="ENV=URI data root (s3:// or local), repeatable."
    ),
    role: list[str] = typer.Option(
        [], "--role", help="ENV=ARN of the IAM role the ENV job assumes via OIDC, repeatable."
    ),
    aws_region: str = typer.Option("us-east-1", "--aws-region", help="Region for the roles."),
    required_approvals: int = typer.Option(
        1, "--required-approvals", help="Approvals staging and prod changes need."
    ),
    branch: str = typer.Option("main", "--branch", help="The protected branch."),
    promote_requirement: Optional[str] = typer.Option(  # noqa: UP045
        None, "--promote-requirement", help="What CI pip-installs (default: this version)."
    ),
    github_repository: Optional[str] = typer.Option(  # noqa: UP045
        None,
        "--github-repository",
        help="owner/name: staging and prod also accept Sigstore keyless signatures of its "
        "apply workflow.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Scaffold a GitOps repository: environments, workflows, CODEOWNERS, an example model.

    Each environment gets a signing key: its public half goes in its environment.yaml, its
    private half in the key folder (PROMOTE_KEY_DIR, default ~/.config/promote/keys), mode 0600.
    """
    from promote.proof.keys import key_folder
    from promote.scaffold.init import ScaffoldSettings, default_promote_requirement
    from promote.scaffold.init import init as scaffold

    settings = ScaffoldSettings(
        organisation=org,
        approvers_team=approvers_team,
        registry_uri=registry_uri,
        data_roots=parse_assignments(data_root, "--data-root"),
        roles=parse_assignments(role, "--role"),
        aws_region=aws_region,
        required_approvals=required_approvals,
        protected_branch=branch,
        promote_requirement=promote_requirement or default_promote_requirement(),
        github_repository=github_repository,
    )
    written = scaffold(directory, settings)
    steps = (
        f"promote train {settings.model} --env dev",
        f"promote model {settings.model} --to staging  # a branch: merge it as a reviewed PR",
        'promote apply --env staging --break-glass "a local trial"  # CI checks the approval',
        "promote status",
    )
    if as_json:
        emit_json({"written": [str(directory / path) for path in written], "try": list(steps)})
        return
    for path in written:
        echo(f"wrote {directory / path}")
    echo(f"try it here, on a local registry (cd {directory}):")
    for step in steps:
        echo(f"  $ {step}")
    echo(
        f"next: push to GitHub; create the environments plan, dev, staging and prod; give them "
        f"the MLFLOW_TRACKING_USERNAME/PASSWORD secrets (and staging/prod PROMOTE_GITHUB_TOKEN, "
        f"read:org, and PROMOTE_SIGNING_KEY: the private key file named by the key id, from "
        f"{key_folder()}, unless they sign keyless); protect {branch} with required Code Owner "
        f"reviews"
    )


@command()
def access(
    context: typer.Context,
    grant: bool = typer.Option(
        False, "--apply", help="Grant the MLflow permissions on the --registry server (as admin)."
    ),
    data_scientist: list[str] = typer.Option(
        [], "--data-scientist", help="A data scientist's MLflow user (repeatable)."
    ),
    data_scientist_role: Optional[str] = typer.Option(  # noqa: UP045
        None, "--data-scientist-role", help="The data scientists' IAM role name."
    ),
    ci_user: Optional[str] = typer.Option(  # noqa: UP045
        None, "--ci-user", help="Each environment's CI user in MLflow; {env} is replaced."
    ),
    as_json: bool = JsonOption,
) -> None:
    """IAM policies (data scientists, each environment's CI) and MLflow grants; --apply grants."""
    from promote.access.grants import Principals, apply_grants, render
    from promote.access.grants import plan as access_plan

    settings: Settings = context.obj
    defaults = Principals()
    principals = Principals(
        data_scientist_role=data_scientist_role or defaults.data_scientist_role,
        data_scientists=tuple(data_scientist) or defaults.data_scientists,
        ci_user_template=ci_user or defaults.ci_user_template,
    )
    registry = settings.registry()
    result = access_plan(settings.repository(), principals, registry)
    if grant:
        apply_grants(registry.tracking_uri, result.grants)
    if as_json:
        emit_json({**result.to_json(), "applied": grant})
        return
    echo(render(result))
    if grant:
        echo(f"granted {len(result.grants)} MLflow permissions on {registry.tracking_uri}")


def run() -> None:  # pragma: no cover - console entry for `python -m promote`
    app(prog_name="promote", args=sys.argv[1:])
