"""`python -m bench <command>`:

run           `make bench`: the side-by-side run, written to reports/<timestamp>/, then one
              Redis against a Redis Cluster (bench/topologies.py; BENCH_TOPOLOGIES=0 skips it)
gate          `make gate`: instructions per request against bench/instructions.toml, then
              a short side-by-side run against bench/gate.toml's floors
baseline      `make gate-baseline`: count the instructions again and write them to
              bench/instructions.toml
instructions  `make bench-instructions`: instructions per request, tuned and bound
settings      `make bench-settings`: the server settings, measured
compare       `make bench-compare BASE=<ref>`: this working tree against BASE, side by side,
              written to reports/compare-<timestamp>/
"""

import argparse
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import orjson

from bench import compare, gate, history, instructions, server_settings, topologies
from bench.config import BenchConfig
from bench.load import GeneratorSaturatedError, WrkMissingError, wrk_binary
from bench.placement import default_placement
from bench.report import print_table, write_report
from bench.results import InstructionsRun, MicroBenchmark, to_json
from bench.run import side_by_side
from bench.time_to_result import ClientSaturatedError

ROOT = Path(__file__).resolve().parent.parent


def micro_benchmarks(out: Path, cpus: frozenset[int]) -> tuple[MicroBenchmark, ...]:
    """pytest-benchmark over bench/micro, pinned to the server core (a quiet one)."""
    target = out / "micro.json"
    pin = ["taskset", "--cpu-list", ",".join(map(str, sorted(cpus)))] if cpus else []
    pytest = [sys.executable, "-m", "pytest", "bench/micro", "-q", "-p", "no:cacheprovider"]
    options = [
        "--benchmark-only",
        "--benchmark-max-time=0.5",
        f"--benchmark-json={target}",
        "--benchmark-columns=mean,ops",
    ]
    done = subprocess.run(
        [*pin, *pytest, *options],
        cwd=ROOT,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"micro-benchmarks failed ({done.returncode})")
    return tuple(
        MicroBenchmark(b["group"], b["name"], b["stats"]["mean"], b["stats"]["ops"])
        for b in orjson.loads(target.read_bytes())["benchmarks"]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument(
        "command", choices=["run", "gate", "baseline", "settings", "instructions", "compare"]
    )
    parser.add_argument("--only", help="settings: the experiments whose setting names this")
    parser.add_argument("--base", help="compare: the git ref to compare with (default: merge base)")
    parser.add_argument("--model-path", type=Path, default=Path("artifacts/iris.joblib"))
    args = parser.parse_args(argv)
    cfg = BenchConfig()
    try:
        wrk_binary()
    except WrkMissingError as exc:
        print(f"make bench: {exc}", file=sys.stderr)
        return 2
    placement = default_placement()
    if args.command == "compare":
        return run_compare(args.base or compare.default_base(), cfg.reports_dir)
    out = cfg.reports_dir / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    if args.command in ("instructions", "baseline", "gate"):
        try:
            instructions.require_valgrind()
        except instructions.ValgrindMissingError as exc:
            print(f"make {args.command}: {exc}", file=sys.stderr)
            return 2
    if args.command == "instructions":
        counted = instructions.run()
        target = out / "instructions.json"
        target.write_bytes(to_json(counted))
        print_instructions(counted)
        print(f"instructions: {target}")
        return 0
    if args.command == "baseline":
        return write_baseline()
    if args.command == "settings":
        measured = server_settings.run(cfg, placement, args.only)
        print(f"settings: {server_settings.write(out, measured)}")
        return 0
    full = args.command == "run"
    counts_held = instruction_gate(out) if args.command == "gate" else True
    per_request: InstructionsRun | None = None
    if full and cfg.instructions:
        # Counted before the throughput runs, with nothing else served: the instruction bar.
        try:
            instructions.require_valgrind()
        except instructions.ValgrindMissingError as exc:
            print(f"make bench: {exc} (or BENCH_INSTRUCTIONS=0 to skip the count)", file=sys.stderr)
            return 2
        per_request = instructions.run()
        (out / "instructions.json").write_bytes(to_json(per_request))
        print_instructions(per_request)
    micro = micro_benchmarks(out, placement.server_cpus) if full and cfg.micro else None
    try:
        results = side_by_side(
            cfg,
            placement,
            full=full,
            model_path=args.model_path.resolve(),
            label=out.name,
            instructions=per_request,
        )
    except (GeneratorSaturatedError, ClientSaturatedError) as exc:
        print(
            f"{args.command}: refused to report a saturated load generator: {exc}", file=sys.stderr
        )
        return 3
    if not full:
        results = replace(
            results, gate=gate.check(results.ratios, gate.load_floors().ratio_to_seed_floor)
        )
    runs: tuple[history.HistoryEntry, ...] = ()
    if full:
        commit, dirty = history.git_state(ROOT)
        host = history.machine(results.meta.placement, results.meta.idle_states)
        history.append(cfg.history, history.entry(results, commit, dirty, datetime.now(UTC), host))
        runs = tuple(history.load(cfg.history))
        history.write_github_action_benchmark(out, results)
    write_report(out, results, micro, runs)
    print_table(results, out)
    if full:
        topology_cfg = topologies.TopologyConfig()
        if topology_cfg.enabled:
            code = topologies.run_into(out, placement, topology_cfg)
            if code != 0:
                return code
    if not counts_held:
        print("gate: instructions per request moved past the tolerance", file=sys.stderr)
        return 1
    if results.gate is not None and not results.gate.passed:
        return 1
    return 0


def run_compare(base: str, reports: Path) -> int:
    cfg = compare.CompareConfig()
    if cfg.instructions:
        try:
            instructions.require_valgrind()
        except instructions.ValgrindMissingError as exc:
            print(f"make bench-compare: {exc} (or BENCH_COMPARE_INSTRUCTIONS=0)", file=sys.stderr)
            return 2
    label = time.strftime("%Y%m%d-%H%M%S")
    try:
        measured = compare.compare(base, default_placement(), cfg, label)
    except (GeneratorSaturatedError, ClientSaturatedError) as exc:
        print(
            f"bench-compare: refused to report a saturated load generator: {exc}", file=sys.stderr
        )
        return 3
    target = compare.write(reports / f"compare-{label}", measured)
    print(target.read_text())
    print(f"compare: {target}")
    return 0


def instruction_gate(out: Path) -> bool:
    """The deterministic half of the gate: the tuned build's paths, counted again."""
    baselines = gate.load_baselines()
    counted = instructions.run(instructions.TUNED)
    (out / "instructions.json").write_bytes(to_json(counted))
    verdict = gate.check_instructions(counted, baselines)
    print("instructions per request (per job for finish), against bench/instructions.toml:")
    for row in verdict.rows:
        state = "ok" if row.ok else ("FEWER: make gate-baseline" if row.change < 0 else "MORE")
        print(
            f"  {row.path:14} {row.measured:>10,.0f}  baseline {row.baseline:>10,.0f}  "
            f"{row.change:+6.1%} (tolerance {row.tolerance:.0%})  {state}"
        )
    return verdict.passed


def write_baseline() -> int:
    old = gate.load_baselines()
    counted = instructions.run(instructions.TUNED)
    gate.write_baselines(counted, old.tolerance, tolerance_of=old.tolerance_of)
    for path, count in sorted(counted.counts.items()):
        before = old.per_unit.get(path)
        change = f"{count.per_unit / before - 1:+.1%}" if before else "new"
        print(f"{path:14} {before or 0:>10,.0f} -> {count.per_unit:>10,.0f}  {change}")
    print(f"wrote {gate.BASELINES}; review it with `git diff bench/{gate.BASELINES.name}`")
    return 0


def print_instructions(counted: InstructionsRun) -> None:
    for name, count in counted.counts.items():
        unit = "job" if name.endswith("finish") else "request"
        print(f"{name:14} {count.per_unit:>10,.0f} instructions per {unit} ({count.units:,})")
    for path in ("sync", "poll"):
        tuned, bound = counted.counts.get(f"tuned {path}"), counted.counts.get(f"bound {path}")
        if tuned and bound:
            print(f"{path}: tuned / bound = {tuned.per_unit / bound.per_unit:.2f}")


if __name__ == "__main__":
    raise SystemExit(main())
