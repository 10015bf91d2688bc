"""Run symgrad's benchmark suite: every workload, every installed tool, interleaved.

    python benchmarks/run.py            # full run (about 10 minutes here)
    python benchmarks/run.py --quick    # fewer rounds and sizes (about 1 minute)
    python benchmarks/run.py --quick --check   # also: every tool's gradient must agree
                                                # with symgrad's (exit status 1 if not)

Writes the tables and the plot into ``docs/benchmarks.md`` (between its GENERATED
markers) and ``docs/benchmarks.png``, and the raw samples as JSON (``--json``).

Workloads (see the ``w*_*.py`` modules): W1 a 3-input formula at 10^6 points, W2 the
Rosenbrock gradient (vectorised, and as a SymPy expression of n scalars), W3 a
logistic-regression gradient, W4 the tutorial's linear-regression loop, W5 derivation
and compile time against graph size.

OpenBLAS: where this machine sets OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (needed by old
OpenBLAS builds), they slow a current NumPy down; this command re-executes itself once
with both removed, for this process only, and the report prints which BLAS kernel ran.
"""
from __future__ import annotations

import os
import sys

if (os.environ.get("OPENBLAS_CORETYPE") is not None or os.environ.get("OPENBLAS_L2_SIZE") is not None) and \
        not os.environ.get("SYMGRAD_BENCH_NO_REEXEC") and "--keep-openblas-env" not in sys.argv:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env["SYMGRAD_BENCH_NO_REEXEC"] = "1"
    os.execve(sys.executable, [sys.executable, *sys.argv], env)

def _early_threads(argv) -> None:
    """``--threads N`` caps every tool's thread pool; it must be set before any import."""
    for i, arg in enumerate(argv):
        value = arg.split("=", 1)[1] if arg.startswith("--threads=") else (
            argv[i + 1] if arg == "--threads" and i + 1 < len(argv) else None)
        if value:
            for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                        "NUMEXPR_MAX_THREADS", "NUMBA_NUM_THREADS"):
                os.environ[var] = value
            if value == "1":
                os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                           " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
            os.environ["SYMGRAD_BENCH_THREADS"] = value


_early_threads(sys.argv)

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [HERE, ROOT]
# cold compile caches: torch.compile's inductor cache lives in a fresh directory per run
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="symgrad-bench-inductor-"))
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_ENABLE_X64", "1")

WORKLOADS = {
    "W1": "w1_formula",
    "W2": "w2_rosenbrock",
    "W3": "w3_logreg",
    "W4": "w4_linreg",
    "W5": "w5_scaling",
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and sizes (about 1 minute)")
    parser.add_argument("--check", action="store_true",
                        help="check every tool's gradient against symgrad's; exit 1 on a disagreement")
    parser.add_argument("--only", default="", help="comma-separated workloads, e.g. W1,W3")
    parser.add_argument("--rounds", type=int, default=None, help="timing rounds per group")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks.md"),
                        help="Markdown file to update ('-' for none)")
    parser.add_argument("--plot", default=os.path.join(ROOT, "docs", "benchmarks.png"), help="PNG plot ('-' for none)")
    parser.add_argument("--json", default="", help="also write raw results to this JSON file")
    parser.add_argument("--merge", default="",
                        help="a JSON file of an earlier run: keep its results for the workloads not run now")
    parser.add_argument("--threads", type=int, default=None,
                        help="cap every tool's threads (default: each tool's own default, 2 cores here)")
    parser.add_argument("--keep-openblas-env", action="store_true", help="do not unset OPENBLAS_* (see above)")
    parser.add_argument("--from-json", default="", help="only rewrite the docs from a JSON file of an earlier run")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    warnings.filterwarnings("ignore")
    import importlib

    if args.threads:
        try:
            import torch

            torch.set_num_threads(args.threads)
        except ImportError:
            pass

    import bench_harness as H
    import bench_report
    import bench_tools

    rounds = args.rounds or (3 if args.quick else 9)
    sample_seconds = 0.02 if args.quick else 0.05
    chosen = [w.strip().upper() for w in args.only.split(",") if w.strip()] or list(WORKLOADS)
    log = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))

    if args.from_json:
        with open(args.from_json) as f:
            result = json.load(f)
        return _write(result, args, log, bench_report)

    started = time.time()
    env_before = bench_tools.environment()
    rows = []
    extras: dict = {}
    for key in chosen:
        module = importlib.import_module(WORKLOADS[key])
        t0 = time.perf_counter()
        log(f"== {key}: {module.__doc__.splitlines()[0]}")
        if hasattr(module, "run"):  # W5 measures one-off costs, not repeated calls
            w_rows, extra = module.run(quick=args.quick, check=args.check, log=log,
                                       available=bench_tools.missing)
            rows += w_rows
            extras[key] = extra
        else:
            for group in module.groups(args.quick):
                rows += H.run_group(group, rounds=rounds, sample_seconds=sample_seconds, check=args.check,
                                    quick=args.quick, available=bench_tools.missing, log=log)
        log(f"   {key} took {time.perf_counter() - t0:.1f} s")
    elapsed = time.time() - started
    env = bench_tools.environment()
    env["loadavg at start"] = env_before.get("loadavg", "?")
    env["run"] = f"{'--quick ' if args.quick else ''}{'--check ' if args.check else ''}{rounds} rounds, " \
                 f"{elapsed:.0f} s in all"
    versions = {k: bench_tools.version(k) for k in bench_tools.TOOLS if k not in ("threadpoolctl",)}
    result = {"rows": [r.as_dict() for r in rows], "extras": extras, "env": env, "versions": versions,
              "quick": args.quick, "check": args.check, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "command": _command(argv if argv is not None else sys.argv[1:])}
    if args.merge:
        with open(args.merge) as f:
            earlier = json.load(f)
        kept = [r for r in earlier["rows"] if r["workload"] not in chosen]
        result["rows"] = kept + result["rows"]
        order = {w: i for i, w in enumerate(WORKLOADS)}
        result["rows"].sort(key=lambda r: order.get(r["workload"], 99))
        for key, value in earlier.get("extras", {}).items():
            if key not in chosen:
                result["extras"].setdefault(key, value)
        result["env"]["merged"] = (f"{', '.join(sorted({r['workload'] for r in kept}))} from the run of "
                                   f"{earlier.get('date', '?')}, `{earlier.get('command', '?')}` (load at its start "
                                   f"{earlier.get('env', {}).get('loadavg at start', '?')}); "
                                   f"{', '.join(chosen)} from this run")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1, default=str)
    _write(result, args, log, bench_report)
    failed_checks = [r for r in rows if r.check and r.check not in ("agrees", "reference", "n/a", "no reference")]
    if args.check:
        n_ok = sum(1 for r in rows if r.check == "agrees")
        print(f"check: {n_ok} tool results agree with symgrad, {len(failed_checks)} disagree", file=sys.stderr)
        for r in failed_checks:
            print(f"  {r.workload} {r.label} {r.tool}: {r.check}", file=sys.stderr)
    return 1 if (args.check and failed_checks) else 0


def _command(argv) -> str:
    """The command line, without where the raw JSON went."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--json":
            skip = True
            continue
        if a.startswith("--json="):
            continue
        out.append(a)
    return " ".join(["python benchmarks/run.py", *out])


def _write(result, args, log, bench_report) -> int:
    """The plot, then the Markdown block (into ``args.out``, or printed)."""
    plotted = False
    if args.plot != "-":
        try:
            bench_report.plot(result, args.plot)
            plotted = True
        except Exception as exc:  # noqa: BLE001
            log(f"no plot: {exc}")
    image = None
    if plotted and args.out != "-":
        image = os.path.relpath(args.plot, os.path.dirname(os.path.abspath(args.out)))
    text = bench_report.markdown(result, image=image)
    if args.out != "-":
        bench_report.update_file(args.out, text)
        log(f"wrote {args.out}" + (f" and {args.plot}" if plotted else ""))
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
