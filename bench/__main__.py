"""`python -m bench run` (what `make bench` does), `python -m bench gate` (CI's gate) and
`python -m bench settings` (`make bench-settings`: the server settings, measured) and
`python -m bench instructions` (`make bench-instructions`: instructions per sync request).

Both write reports/<timestamp>/ and print a table; the gate then checks the committed floors.
"""

import argparse
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import orjson

from bench import gate, instructions, server_settings
from bench.config import BenchConfig
from bench.load import GeneratorSaturatedError, WrkMissingError, wrk_binary
from bench.placement import default_placement
from bench.report import print_table, write_report
from bench.results import MicroBenchmark, to_json
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
    parser.add_argument("command", choices=["run", "gate", "settings", "instructions"])
    parser.add_argument("--only", help="settings: the experiments whose setting names this")
    parser.add_argument("--model-path", type=Path, default=Path("artifacts/iris.joblib"))
    args = parser.parse_args(argv)
    cfg = BenchConfig()
    try:
        wrk_binary()
    except WrkMissingError as exc:
        print(f"make bench: {exc}", file=sys.stderr)
        return 2
    placement = default_placement()
    out = cfg.reports_dir / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    if args.command == "instructions":
        try:
            counted = instructions.run()
        except instructions.ValgrindMissingError as exc:
            print(f"make bench-instructions: {exc}", file=sys.stderr)
            return 2
        target = out / "instructions.json"
        target.write_bytes(to_json(counted))
        print(f"instructions: {target}")
        return 0
    if args.command == "settings":
        measured = server_settings.run(cfg, placement, args.only)
        print(f"settings: {server_settings.write(out, measured)}")
        return 0
    full = args.command == "run"
    micro = micro_benchmarks(out, placement.server_cpus) if full and cfg.micro else None
    try:
        results = side_by_side(
            cfg, placement, full=full, model_path=args.model_path.resolve(), label=out.name
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
    write_report(out, results, micro)
    print_table(results, out)
    if results.gate is not None and not results.gate.passed:
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
