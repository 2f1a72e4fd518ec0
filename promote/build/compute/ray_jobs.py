"""The Ray engine: each training is a job submitted to an existing cluster's dashboard.

The exported commit is the job's `runtime_env` working_dir (Ray packs and uploads it, so the
cluster needs no access to git); `compute.remote` runs the training there and leaves its packed
output under `compute.output_root`, which promote fetches. Logs are streamed back line by line.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import uuid
from dataclasses import replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from promote.build.compute import TRAINING_STARTS, LogStream, TrainingJob, handoff
from promote.errors import ExternalError, InputError
from promote.manifests.repository import environment_file
from promote.manifests.schema import RayCompute

# Of the allowlisted variables, those that describe this machine (its paths, user, interpreter,
# files): on a cluster node they would point at nothing, and the node has its own.
THIS_MACHINE_ONLY = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "USERNAME",
    "TMPDIR",
    "TEMP",
    "TMP",
    "XDG_CACHE_HOME",
    "VIRTUAL_ENV",
    "SYSTEM*",
    "WINDIR",
    "COMSPEC",
    "PATHEXT",
    "USERPROFILE",
    "*APPDATA",
    "SSL_CERT_*",
    "*_CA_BUNDLE",
    "AWS_*_FILE",
    "AWS_PROFILE",
)
# Credentials stay on this machine: Ray shows a job's runtime_env to whoever reads its
# dashboard. The cluster reads the data and writes output_root with its own role.
CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_*_TOKEN")
# Ray's job client and its two modules, each set to INFO by Ray.
RAY_CLIENT_LOGGERS = ("ray", "ray.dashboard.modules.dashboard_sdk", "ray.dashboard.modules.job.sdk")
# A training takes one of the cluster's CPUs: the cluster queues what it has no room for.
TRAINING_CPUS = 1


def job_environment(allowlisted: dict[str, str]) -> dict[str, str]:
    """What travels with the job: the allowlist, less this machine's own and credentials."""
    kept_here = THIS_MACHINE_ONLY + CREDENTIALS
    return {
        name: value
        for name, value in allowlisted.items()
        if not any(fnmatchcase(name, pattern) for pattern in kept_here)
    }


class RayEngine:
    def __init__(self, environment: str, compute: RayCompute) -> None:
        self.environment = environment
        self.compute = compute
        self._client: Any = None

    def check(self) -> None:
        self.client()

    def client(self) -> Any:
        """The dashboard's job client, connected once; an error naming the file otherwise."""
        if self._client is not None:
            return self._client
        try:
            from ray.job_submission import JobSubmissionClient
        except ImportError:
            raise InputError(
                environment_file(self.environment),
                "compute.engine",
                "ray needs the ray package here: pip install 'promote-gitops[ray]'",
            ) from None
        # Ray's client logs what it uploads and each socket it closes: the lines that matter
        # here are promote's and the training's.
        for name in RAY_CLIENT_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        address = self.compute.address
        try:
            self._client = JobSubmissionClient(address)
        except Exception as exc:  # requests' and Ray's own errors: nothing answered there
            first_line = (str(exc).splitlines() or [""])[0]
            raise ExternalError(
                f"{environment_file(self.environment)}: compute.address: no Ray cluster "
                f"answers at {address} ({type(exc).__name__}: {first_line[:200]}); "
                "nothing was written"
            ) from None
        return self._client

    def run(self, job: TrainingJob, scratch: Path) -> Path:
        client = self.client()
        submission = f"promote-{job.label}-{uuid.uuid4().hex[:12]}"
        archive_uri = f"{self.compute.output_root}/{submission}{handoff.ARCHIVE_SUFFIX}"
        checkout = job.checkout.resolve()
        requirements = job.context.requirements
        # Paths of this machine mean nothing there: the job resolves them in its working_dir.
        context = replace(
            job.context,
            output_dir="",
            requirements=str(Path(requirements).resolve().relative_to(checkout))
            if requirements
            else None,
        )
        python = shlex.quote(job.python or "python")
        try:
            client.submit_job(
                submission_id=submission,
                entrypoint=f"{python} -m promote.build.compute.remote",
                runtime_env={
                    "working_dir": str(checkout),
                    "env_vars": {
                        **job_environment(job.environment),
                        **context.to_env(),
                        handoff.OUTPUT_VARIABLE: archive_uri,
                    },
                },
                entrypoint_num_cpus=TRAINING_CPUS,
                metadata={"promote": job.label},
            )
        except Exception as exc:  # Ray's and requests' errors: the job was not taken
            raise self._failed(job, "did not take the job", exc) from None
        stream = LogStream(job)
        try:
            asyncio.run(_follow(client, submission, stream))
            details = client.get_job_info(submission)
        except BaseException as exc:
            # Interrupted, or the dashboard went away: the job must not train on unwatched.
            _stop_quietly(client, submission)
            if isinstance(exc, Exception):
                raise self._failed(job, f"stopped answering about job {submission}", exc) from None
            raise
        status = str(getattr(details.status, "value", details.status))
        if status != "SUCCEEDED":
            code = getattr(details, "driver_exit_code", None)
            how = f"with exit code {code}" if code is not None else f"as {status}"
            raise stream.failure(f"{how} (Ray job {submission})")
        local_archive = scratch / f"output{handoff.ARCHIVE_SUFFIX}"
        handoff.fetch(archive_uri, local_archive, job.description)
        output = Path(job.context.output_dir)
        handoff.unpack(local_archive, output, job.description)
        local_archive.unlink()
        return output

    def _failed(self, job: TrainingJob, what: str, exc: Exception) -> ExternalError:
        first_line = (str(exc).splitlines() or [""])[0]
        return ExternalError(
            f"{job.description}: the Ray cluster at {self.compute.address} {what} "
            f"({type(exc).__name__}: {first_line[:200]}); nothing was logged"
        )


async def _follow(client: Any, submission: str, stream: LogStream) -> None:
    """Every line of the training's log as it comes, until the job ends. Ray's own lines
    before it (the runtime environment set up, the entrypoint started) are held back, and
    reported only when the training never started: then they say why."""
    pending = ""
    before_training: list[str] | None = []
    async for chunk in client.tail_job_logs(submission):
        pending += chunk
        *lines, pending = pending.split("\n")
        for line in lines:
            if before_training is None:
                stream.line(line)
            elif line == TRAINING_STARTS:
                before_training = None
            else:
                before_training.append(line)
    for line in [*(before_training or []), *([pending] if pending else [])]:
        stream.line(line)


def _stop_quietly(client: Any, submission: str) -> None:
    try:
        client.stop_job(submission)
    except Exception:  # the first error is the one to report
        return
