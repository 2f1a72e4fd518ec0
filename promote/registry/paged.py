"""The paged read: many registered models through MLflow's search API, page by page."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from promote.registry.entities import (
    TAG_MANIFEST_DIGEST,
    TAG_RUN_REGISTERED,
    RegisteredModel,
    Rows,
    Survey,
)

Call = Callable[..., Any]  # the registry's wrapper: MLflow errors become the pipeline's

# The largest pages an MLflow server serves for each search.
MODELS_PER_PAGE = 1000

VERSIONS_PER_PAGE = 10_000

RUNS_PER_PAGE = 1000

# Finished training runs for a manifest that no version was registered from.
UNREGISTERED_RUNS = (
    f"tags.`{TAG_MANIFEST_DIGEST}` IS NOT NULL and tags.`{TAG_RUN_REGISTERED}` IS NULL"
    " and attributes.status = 'FINISHED'"
)


def read_paged(client: Any, names: list[str], call: Call, listed: Iterable[str] = ()) -> Survey:
    """Read through MLflow's search API, page by page, one name prefix at a time.

    With the default `{env}.{model}` template every environment is one prefix (`prod.`); names
    without a dot are found by listing everything. The names under each of the `listed`
    prefixes come from the same pages: listing them costs no request of its own. Each call
    goes through `call`, which turns MLflow errors into the pipeline's.

    Prefixes are read side by side, a thread each: a server answers pages of one prefix while
    this process parses another's, where one page after the other left both waiting in turn.
    """
    wanted = set(names)
    wanted_prefixes = {name.partition(".")[0] + "." if "." in name else "" for name in wanted}
    prefixes = sorted(_covering(wanted_prefixes | set(listed)))
    if len(prefixes) > 1:
        with ThreadPoolExecutor(max_workers=len(prefixes)) as pool:
            parts = list(pool.map(lambda p: _read_prefix(client, p, wanted, call), prefixes))
    else:
        parts = [_read_prefix(client, prefix, wanted, call) for prefix in prefixes]
    rows, seen = Rows(), set()
    for part, names_seen in parts:
        rows.merge(part)
        seen |= names_seen
    return Survey(
        rows.assemble(),
        {prefix: sorted(n for n in seen if n.startswith(prefix)) for prefix in listed},
    )


def _read_prefix(client: Any, prefix: str, wanted: set[str], call: Call) -> tuple[Rows, set[str]]:
    """The rows of the wanted models under `prefix`, and every name seen there."""
    where = name_filter(prefix)
    rows, seen = Rows(), set()
    for model in pages(
        call, client.search_registered_models, filter_string=where, max_results=MODELS_PER_PAGE
    ):
        seen.add(model.name)
        if model.name not in wanted:
            continue
        rows.models.add(model.name)
        rows.aliases.extend((model.name, a, int(v)) for a, v in (model.aliases or {}).items())
        rows.model_tags.extend((model.name, k, v) for k, v in model.tags.items())
    if not wanted.intersection(seen):
        return rows, seen  # a prefix read only to list its names: its versions are not needed
    for version in pages(
        call,
        client.search_model_versions,
        filter_string=where,
        max_results=VERSIONS_PER_PAGE,
        # A stable order: offsets stay valid while someone else updates a version.
        order_by=["name ASC", "version_number ASC"],
    ):
        if version.name not in wanted:
            continue
        number = int(version.version)
        rows.versions.append((version.name, number, version.source, version.run_id or ""))
        rows.version_tags[version.name, number] = dict(version.tags)
    return rows, seen


def _covering(prefixes: set[str]) -> set[str]:
    """The fewest prefixes whose listings hold every name under `prefixes` (each read once)."""
    return {p for p in prefixes if not any(p != q and p.startswith(q) for q in prefixes)}


def name_filter(prefix: str, exact: bool = False) -> str | None:
    """An MLflow search filter on registered model names: equal to, or starting with, `prefix`."""
    if not prefix:
        return None
    quoted = prefix.replace("'", "\\'")
    return f"name = '{quoted}'" if exact else f"name LIKE '{quoted}%'"


def pages(
    call: Call, search: Call, what: str = "searching the registry", **options: Any
) -> Iterator[Any]:
    """Every item of a paged MLflow search, following its page tokens to the end."""
    token = None
    while True:
        page = call(what, search, page_token=token, **options)
        yield from page
        token = page.token
        if not token:
            return


class PagedReader:
    """Bulk reads through the client's search calls: a tracking server over http."""

    def __init__(self, client: Callable[[], Any], call: Call) -> None:
        self.client = client  # built on first use: MLflow's import is not paid before it
        self.call = call

    def models(self, names: list[str]) -> dict[str, RegisteredModel]:
        return read_paged(self.client(), names, self.call).models

    def survey(self, names: list[str], listed: Iterable[str]) -> Survey:
        return read_paged(self.client(), names, self.call, listed)

    def names(self, prefix: str) -> list[str]:
        search = self.client().search_registered_models
        listed = pages(
            self.call,
            search,
            "listing registered models",
            filter_string=name_filter(prefix),
            max_results=MODELS_PER_PAGE,
        )
        return [model.name for model in listed]

    def unregistered_runs(self, experiment: str, digests: set[str]) -> dict[str, list[str]]:
        """Per manifest digest, the finished runs of `experiment` no version was registered
        from, newest first: the pages of those runs alone, never every run trained."""
        client = self.client()
        found = self.call("reading experiment", client.get_experiment_by_name, experiment)
        if found is None:
            return {}
        candidates: dict[str, list[str]] = {}
        for run in pages(
            self.call,
            client.search_runs,
            "listing unregistered runs",
            experiment_ids=[found.experiment_id],
            filter_string=UNREGISTERED_RUNS,
            max_results=RUNS_PER_PAGE,
            order_by=["attributes.start_time DESC"],
        ):
            digest = run.data.tags.get(TAG_MANIFEST_DIGEST)
            if digest in digests:
                candidates.setdefault(digest, []).append(run.info.run_id)
        return candidates
