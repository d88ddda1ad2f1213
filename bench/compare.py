"""`make bench-compare BASE=<git ref>`: this working tree against another commit, side by side
in one run.

On a shared machine, two throughput runs minutes apart differ by more than most changes do;
the honest comparison of two commits measures both in the same run. BASE is exported with
`git archive` into `.data/compare/<sha>/` (a tree of its own, no checkout of this one
touched) and run with its own virtualenv: this one when the lock files are the same, else one
built from BASE's lock file and cached by its digest. Each side gets its own Redis; both
servers run at once on the server core, and every round measures each figure on both, one
after the other, the order alternating by round. Each figure's verdict is on the median of its
same-round ratios (this tree / BASE), with a bootstrap interval around it:

- "faster" or "slower" when the whole interval is on one side of 1 and the median moved by at
  least `min_change` (a difference this machine's noise does not make between two runs of one
  commit);
- "no difference this run can see" otherwise.

Instructions per request (callgrind, bench/instructions.py) are counted too, once per side:
they repeat within a fraction of a percent, so a change past the gate's tolerance is a verdict
by itself.
"""

import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import orjson
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bench import instructions
from bench.builds import ROOT, warm_up
from bench.placement import Placement
from bench.results import AsyncRun, InstructionsRun, LoadRun
from bench.scenarios import async_load, finished_ids, poll_load, sync_load
from bench.stats import bootstrap_median_interval
from service.server.embedded_redis import EmbeddedRedis
from service.server.process import ServerProcess, free_port, running

Side = Literal["base", "head"]
SIDES: tuple[Side, ...] = ("base", "head")
Verdict = Literal["faster", "slower", "no difference this run can see"]
NO_DIFFERENCE: Verdict = "no difference this run can see"
CACHE = ROOT / ".data" / "compare"
# The file `make venv` installs from: the same digest, the same virtualenv.
LOCK = "requirements-dev.lock"
START_TIMEOUT_S = 120


class CompareConfig(BaseSettings):
    """BENCH_COMPARE_* environment variables (docs/benchmarks.md lists them)."""

    model_config = SettingsConfigDict(env_prefix="BENCH_COMPARE_", frozen=True)

    rounds: int = Field(6, ge=1)
    duration: float = Field(3.0, gt=0)
    connections: int = Field(32, ge=1)
    confidence: float = Field(0.95, gt=0, lt=1)
    # The least move of a median throughput ratio that gets a verdict (see the module's doc).
    min_change: float = Field(0.03, ge=0)
    # Count instructions per request of both sides too (valgrind); 0 skips the count.
    instructions: bool = True
    # A move of instructions per request past this is a verdict (the gate's tolerance).
    instructions_tolerance: float = Field(0.03, gt=0)


@dataclass(frozen=True, slots=True)
class Tree:
    """One side's source tree and the Python that runs it."""

    label: str  # what the table calls it: the ref and its short sha, or "working tree"
    commit: str  # the full sha, or HEAD's sha with "+changes" for a dirty working tree
    root: Path
    python: str


@dataclass(frozen=True, slots=True)
class Figure:
    """One figure of both sides: the per-round values, their same-round ratios (head / base)
    and the verdict on them."""

    name: str
    unit: str
    bigger_is_better: bool
    base: tuple[float, ...]
    head: tuple[float, ...]
    ratios: tuple[float, ...]
    median: float
    interval: tuple[float, float]
    verdict: Verdict
    rule: str  # how the verdict was reached, for the table's footnote


@dataclass(frozen=True, slots=True)
class Comparison:
    base: Tree
    head: Tree
    started: str
    seconds: float
    placement: str
    config: dict[str, object]
    figures: tuple[Figure, ...]
    notes: tuple[str, ...] = field(default=())


def _git(*args: str, cwd: Path = ROOT) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def default_base() -> str:
    """The merge base of HEAD with main (origin/main where only that exists, as in a CI
    checkout)."""
    for main in ("main", "origin/main"):
        if (
            subprocess.run(
                ["git", "rev-parse", "--verify", "--quiet", main], cwd=ROOT, capture_output=True
            ).returncode
            == 0
        ):
            return _git("merge-base", "HEAD", main)
    raise SystemExit("bench-compare: no BASE given and no main branch to take the merge base of")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def export(ref: str, cache: Path = CACHE) -> Path:
    """BASE's tree (git archive) under the cache, once per commit."""
    sha = _git("rev-parse", "--verify", f"{ref}^{{commit}}")
    target = cache / sha
    done = target / ".exported"
    if not done.exists():
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "archive", "--format=tar", sha], cwd=ROOT, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
        done.write_text(sha + "\n")
    return target


def virtualenv(root: Path, cache: Path = CACHE) -> str:
    """The Python for a tree: this one's when the lock files match, else a virtualenv built
    from the tree's own lock file, kept by the lock's digest."""
    if (root / LOCK).read_bytes() == (ROOT / LOCK).read_bytes():
        return sys.executable
    venv = cache / f"venv-{_digest(root / LOCK)}"
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    if not stamp.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--require-hashes", "--no-deps", "-r", str(root / LOCK)],
            check=True,
        )  # fmt: skip
        stamp.touch()
    return str(python)


def _imports_from(tree: Path, python: str) -> None:
    """The tree's `service` package is the one its Python imports (nothing installed shadows it)."""
    found = subprocess.run(
        [python, "-c", "import service, sys; sys.stdout.write(service.__file__)"],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if not Path(found).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"bench-compare: {tree} imports its service package from {found}")
    if not (tree / "service" / "__main__.py").exists():
        raise SystemExit(f"bench-compare: {tree} has no `python -m service serve` to run")


def trees(base_ref: str) -> dict[Side, Tree]:
    base_root = export(base_ref)
    base_python = virtualenv(base_root)
    head_sha = _git("rev-parse", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    sides: dict[Side, Tree] = {
        "base": Tree(
            f"{base_ref} ({_git('rev-parse', '--short', base_ref)})",
            _git("rev-parse", f"{base_ref}^{{commit}}"),
            base_root,
            base_python,
        ),
        "head": Tree(
            "working tree" + (" (with changes)" if dirty else ""),
            head_sha + ("+changes" if dirty else ""),
            ROOT,
            sys.executable,
        ),
    }
    for tree in sides.values():
        _imports_from(tree.root, tree.python)
    return sides


@contextmanager
def served(
    tree: Tree, placement: Placement, tmp: Path
) -> Iterator[tuple[ServerProcess, EmbeddedRedis]]:
    """The tree's `python -m service serve` (one worker, on the server core) on a Redis of its
    own (on the load cores), ready and warmed up."""
    with EmbeddedRedis(tmp / "redis", port=free_port(), appendonly=False) as redis_server:
        assert redis_server.process is not None
        placement.pin_load(redis_server.process.pid)
        port = free_port()
        env = {
            **os.environ,
            "PORT": str(port),
            "WEB_CONCURRENCY": "1",
            "REDIS_URL": redis_server.url,
            "MAX_QUEUE": "1000000",
            "DATA_DIR": str(tmp / "data"),
        }
        command = placement.server_command([tree.python, "-m", "service", "serve"])
        log = tmp / "server.log"
        with running(
            command, port=port, log=log, env=env, cwd=tree.root, timeout_s=START_TIMEOUT_S
        ) as server:
            warm_up(server.url, placement)
            yield server, redis_server


@dataclass(frozen=True, slots=True)
class RoundFigures:
    sync: LoadRun
    async_jobs: AsyncRun
    poll: LoadRun


THROUGHPUT: dict[str, tuple[str, Callable[[RoundFigures], float]]] = {
    "sync rps": ("req/s", lambda r: r.sync.rps),
    "async jobs/s submitted": ("jobs/s", lambda r: r.async_jobs.submitted_per_s),
    "async jobs/s finished": ("jobs/s", lambda r: r.async_jobs.finished_per_s),
    "poll rps": ("req/s", lambda r: r.poll.rps),
}


def round_order(index: int) -> tuple[Side, ...]:
    return SIDES if index % 2 == 0 else SIDES[::-1]


def measure_round(
    server: ServerProcess, redis_url: str, placement: Placement, cfg: CompareConfig, tmp: Path
) -> RoundFigures:
    sync = sync_load(server.url, placement, cfg.connections, cfg.duration)
    jobs = async_load(server.url, placement, redis_url, cfg.connections, cfg.duration)
    ids = tmp / "ids.txt"
    finished_ids(redis_url, ids)
    polls = poll_load(server.url, placement, ids, cfg.connections, cfg.duration)
    return RoundFigures(sync, jobs, polls)


def throughput_rounds(
    sides: Mapping[Side, Tree], placement: Placement, cfg: CompareConfig, tmp: Path
) -> dict[Side, list[RoundFigures]]:
    rounds: dict[Side, list[RoundFigures]] = {side: [] for side in SIDES}
    with ExitStack() as stack:
        up = {
            side: stack.enter_context(served(sides[side], placement, tmp / side)) for side in SIDES
        }
        for index in range(cfg.rounds):
            for side in round_order(index):
                server, redis_server = up[side]
                rounds[side].append(
                    measure_round(server, redis_server.url, placement, cfg, tmp / side)
                )
    return rounds


def verdict(
    ratios: tuple[float, ...],
    *,
    bigger_is_better: bool,
    confidence: float,
    min_change: float,
) -> tuple[float, tuple[float, float], Verdict]:
    """The median same-round ratio (head / base), its bootstrap interval, and the verdict."""
    median = statistics.median(ratios)
    low, high = bootstrap_median_interval(ratios, confidence)
    if low > 1 and median >= 1 + min_change:
        up: bool | None = True
    elif high < 1 and median <= 1 - min_change:
        up = False
    else:
        up = None
    if up is None:
        return median, (low, high), NO_DIFFERENCE
    return median, (low, high), "faster" if up == bigger_is_better else "slower"


def throughput_figures(
    rounds: Mapping[Side, list[RoundFigures]], cfg: CompareConfig
) -> list[Figure]:
    figures = []
    for name, (unit, of) in THROUGHPUT.items():
        base = tuple(of(r) for r in rounds["base"])
        head = tuple(of(r) for r in rounds["head"])
        ratios = tuple(h / b if b else float("nan") for b, h in zip(base, head, strict=True))
        median, interval, said = verdict(
            ratios,
            bigger_is_better=True,
            confidence=cfg.confidence,
            min_change=cfg.min_change,
        )
        rule = (
            f"{cfg.confidence:.0%} bootstrap interval of the median of {len(ratios)} same-round "
            f"ratios clear of 1, and the median moved >= {cfg.min_change:.0%}"
        )
        figures.append(Figure(name, unit, True, base, head, ratios, median, interval, said, rule))
    return figures


def instruction_figures(
    counted: Mapping[Side, InstructionsRun], cfg: CompareConfig
) -> list[Figure]:
    """Instructions per request (per job for finish), once per side: deterministic within a
    fraction of a percent, so the verdict is the move against the tolerance."""
    figures = []
    for key, base_count in counted["base"].counts.items():
        head_count = counted["head"].counts[key]
        ratio = head_count.per_unit / base_count.per_unit
        tolerance = cfg.instructions_tolerance
        said: Verdict = (
            "slower"
            if ratio > 1 + tolerance
            else "faster"
            if ratio < 1 - tolerance
            else NO_DIFFERENCE
        )
        unit = "instructions/job" if key.endswith("finish") else "instructions/request"
        figures.append(
            Figure(
                f"{key.removeprefix('tuned ')} instructions",
                unit,
                False,
                (base_count.per_unit,),
                (head_count.per_unit,),
                (ratio,),
                ratio,
                (ratio, ratio),
                said,
                f"callgrind count, a move past ±{tolerance:.0%} (repeated counts of one "
                "commit agree within 2%)",
            )
        )
    return figures


def compare(base_ref: str, placement: Placement, cfg: CompareConfig, label: str) -> Comparison:
    sides = trees(base_ref)
    placement.pin_load(os.getpid())
    started = time.monotonic()
    figures: list[Figure] = []
    notes = []
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp_name:
        tmp = Path(tmp_name)
        rounds = throughput_rounds(sides, placement, cfg, tmp)
        figures += throughput_figures(rounds, cfg)
        if cfg.instructions:
            instructions.require_valgrind()
            counted = {
                side: instructions.run(
                    instructions.TUNED,
                    instructions.Source(sides[side].root, sides[side].python),
                )
                for side in SIDES
            }
            figures += instruction_figures(counted, cfg)
        else:
            notes.append("instructions not counted (BENCH_COMPARE_INSTRUCTIONS=0)")
    return Comparison(
        base=sides["base"],
        head=sides["head"],
        started=label,
        seconds=round(time.monotonic() - started, 1),
        placement=placement.describe(),
        config=cfg.model_dump(),
        figures=tuple(figures),
        notes=tuple(notes),
    )


def _value(value: float, unit: str) -> str:
    return f"{value:,.0f}" if unit.startswith("instructions") or value >= 100 else f"{value:,.2f}"


def markdown(comparison: Comparison) -> str:
    """The table the job summary shows: each figure's median on both sides, the median
    same-round ratio with its interval and range, and the verdict."""
    lines = [
        f"### make bench-compare: {comparison.head.label} vs {comparison.base.label}",
        "",
        f"BASE `{comparison.base.commit}`, this tree `{comparison.head.commit}`; "
        f"{comparison.placement}; {comparison.seconds:.0f} s.",
        "",
        "| figure | base | this tree | this / base | interval | range | verdict |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for f in comparison.figures:
        rounds = len(f.ratios)
        interval = f"{f.interval[0]:.3f}-{f.interval[1]:.3f}" if rounds > 1 else "(one count)"
        spread = f"{min(f.ratios):.3f}-{max(f.ratios):.3f}" if rounds > 1 else ""
        lines.append(
            f"| {f.name} ({f.unit}) | {_value(statistics.median(f.base), f.unit)} "
            f"| {_value(statistics.median(f.head), f.unit)} | {f.median:.3f} | {interval} "
            f"| {spread} | {'**' + f.verdict + '**' if f.verdict != NO_DIFFERENCE else f.verdict} |"
        )
    rules = dict.fromkeys(f.rule for f in comparison.figures)
    lines += ["", *(f"- verdict: {rule}" for rule in rules)]
    lines += [f"- {note}" for note in comparison.notes]
    return "\n".join(lines) + "\n"


def write(out: Path, comparison: Comparison) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_bytes(
        orjson.dumps(comparison, option=orjson.OPT_INDENT_2, default=str)
    )
    target = out / "compare.md"
    target.write_text(markdown(comparison))
    return target
