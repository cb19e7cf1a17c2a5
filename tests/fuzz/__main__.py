"""Run the fuzz targets with atheris (libFuzzer), one subprocess per target.

    python -m tests.fuzz --list
    python -m tests.fuzz [--seconds N] [--rss-mb M] [--merge] [target ...]   (default: all targets)
    python -m tests.fuzz --replay TARGET FILE...     (run inputs in-process: a finding's traceback)

Each target runs for --seconds with libFuzzer's -timeout=1 (no input may take over 1 s)
and -rss_limit_mb (memory bounded).  The working corpus lives in .fuzz/corpus/<target>/,
seeded from the committed tests/fuzz/corpus/<target>/; a crash, timeout or leak leaves its
input in .fuzz/artifacts/<target>/ and the log in .fuzz/logs/<target>.log.  A finding is
kept by copying that input to tests/fuzz/regressions/<target>/ (the smoke test replays it).
--merge folds the working corpus back into the committed seed corpus (libFuzzer -merge=1
keeps only inputs that add coverage; of those the --keep longest are committed)."""
from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WORK = ROOT / ".fuzz"
INSTRUMENTED = ["protocols", "ndd", "drivers", "stack", "tools", "tests.fuzz"]


def worker(name: str, libfuzzer_args: list[str]) -> None:
    """In the subprocess: instrument the project's modules as they are imported, then fuzz."""
    import atheris
    with atheris.instrument_imports(include=INSTRUMENTED):
        from tests.fuzz import load_all
        targets = load_all()
    # argv[0] is what libFuzzer re-executes for -merge (and -fork): the runner's wrapper
    atheris.Setup([os.environ.get("TUNSTACK_FUZZ_SELF", sys.argv[0]), *libfuzzer_args], targets[name])
    atheris.Fuzz()


def run_target(name: str, seconds: int, rss_mb: int, merge: bool, keep: int = 30) -> tuple[bool, str]:
    corpus, seeds = WORK / "corpus" / name, HERE / "corpus" / name
    artifacts, logs = WORK / "artifacts" / name, WORK / "logs"
    merged = WORK / "merged" / name
    for d in (corpus, seeds, artifacts, logs):
        d.mkdir(parents=True, exist_ok=True)
    if merge:
        shutil.rmtree(merged, ignore_errors=True)
        merged.mkdir(parents=True)
        # an input that crashes or runs over 1 s now (the code changed) is left out
        args = ["-merge=1", "-timeout=1", f"-rss_limit_mb={rss_mb}", str(merged), str(seeds), str(corpus)]
    else:
        args = [f"-max_total_time={seconds}", "-timeout=1", f"-rss_limit_mb={rss_mb}", "-max_len=2048",
                "-len_control=0", f"-artifact_prefix={artifacts}/", "-print_final_stats=1", str(corpus), str(seeds)]
        words = HERE / "dicts" / f"{name}.dict"     # tokens a target's format needs (libFuzzer -dict)
        if words.exists():
            args.insert(0, f"-dict={words}")
    cmd = [sys.executable, "-m", "tests.fuzz", "--worker", name, "--", *args]
    wrapper = WORK / "bin" / name
    wrapper.parent.mkdir(parents=True, exist_ok=True)
    wrapper.write_text(f"#!/bin/sh\ncd {shlex.quote(str(ROOT))} && exec {shlex.join(cmd[:5])} -- \"$@\"\n")
    wrapper.chmod(0o755)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TUNSTACK_FUZZ_SELF=str(wrapper))
    log = logs / f"{name}.log"
    with open(log, "wb") as out:
        rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                            check=False).returncode
    if merge and rc == 0:
        keep_seeds(merged, seeds, keep)
    return rc == 0, summary(name, log.read_text(errors="replace"), rc)


def keep_seeds(merged: Path, seeds: Path, keep: int) -> None:
    """The committed corpus: the `keep` longest inputs of the coverage-minimised merge
    (longer inputs run more steps, so they start the next campaign deeper)."""
    chosen = sorted(merged.iterdir(), key=lambda p: p.stat().st_size, reverse=True)[:keep]
    for old in seeds.iterdir():
        old.unlink()
    for path in chosen:
        shutil.copyfile(path, seeds / path.name)


def summary(name: str, text: str, rc: int) -> str:
    execs = re.findall(r"stat::number_of_executed_units: (\d+)", text)
    cov = re.findall(r"cov: (\d+) ft: (\d+)", text)
    corp = re.findall(r"corp: (\d+)/", text)
    line = f"{name:24} execs={execs[-1] if execs else '?':>8} "
    line += f"cov={cov[-1][0] if cov else '?':>5} ft={cov[-1][1] if cov else '?':>6} corpus={corp[-1] if corp else '?'}"
    if rc:
        found = re.findall(r"Test unit written to (\S+)", text)
        line += f"  FAILED rc={rc} {found[-1] if found else ''}"
    return line


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        name, rest = argv[1], argv[3:] if argv[2:3] == ["--"] else argv[2:]
        worker(name, rest)
        return 0
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("targets", nargs="*", help="target names (default: all)")
    ap.add_argument("--seconds", type=int, default=60, help="per target (default 60)")
    ap.add_argument("--rss-mb", type=int, default=2048, help="libFuzzer -rss_limit_mb (default 2048)")
    ap.add_argument("--list", action="store_true", help="list the targets and exit")
    ap.add_argument("--replay", metavar="FILE", nargs="+",
                    help="run one target (the single positional name) on these inputs, uninstrumented")
    ap.add_argument("--merge", action="store_true",
                    help="minimise .fuzz/corpus/<t> + tests/fuzz/corpus/<t> (libFuzzer -merge=1) and "
                         "commit-ready: keep the --keep longest in tests/fuzz/corpus/<t>")
    ap.add_argument("--keep", type=int, default=30, help="seed inputs kept per target by --merge (default 30)")
    opts = ap.parse_args(argv)
    from tests.fuzz import load_all
    targets = load_all()
    if opts.list:
        for name, fn in targets.items():
            doc = " ".join((fn.__doc__ or "").split())
            print(f"{name:18} {doc if len(doc) <= 100 else doc[:97] + '...'}")
        return 0
    unknown = [t for t in opts.targets if t not in targets]
    if unknown:
        ap.error(f"unknown target(s): {', '.join(unknown)} (see --list)")
    if opts.replay:
        if len(opts.targets) != 1:
            ap.error("--replay needs exactly one target name")
        for path in opts.replay:
            with open(path, "rb") as f:
                targets[opts.targets[0]](f.read())
            print(f"{path}: ok")
        return 0
    failed = 0
    for name in opts.targets or list(targets):
        ok, line = run_target(name, opts.seconds, opts.rss_mb, opts.merge, opts.keep)
        print(line, flush=True)
        failed += not ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
