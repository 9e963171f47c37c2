"""Peak memory and CPU time of every step of a local pipeline run (not a benchmark: `make bench` skips it).

kfp.local runs each step as its own Python process, so wrapping that process
in `/usr/bin/time` measures the step alone: its maximum resident set size
(what a memory request and limit must cover) and its user+system CPU seconds
over its wall time (the cores it keeps busy). The figures go into the
pipeline's spec (`resources` in pipelines/<name>/spec.py; the shared steps' in
components/settings/resources.py).

    .venv/bin/python bench/measure_step_resources.py sp500 [name=value ...]
"""

import re
import sys
from pathlib import Path

from kfp.local import subprocess_task_handler

from pipelines.local import run as local_run

MARK = "STEP-RESOURCES"
TIME_FORMAT = f"{MARK} wall_s=%e user_s=%U sys_s=%S max_rss_kb=%M"


def wrapped(original):
    def run(full_command, env_vars=None):
        function = full_command[full_command.index("--function_to_execute") + 1]
        return original(["/usr/bin/time", "-f", f"{TIME_FORMAT} function={function}", *full_command], env_vars)
    return run


def main(argv: list[str]) -> int:
    if not Path("/usr/bin/time").exists():
        print("error: /usr/bin/time is needed (apt-get install time)", file=sys.stderr)
        return 1
    pipeline, params = argv[0], dict(arg.split("=", 1) for arg in argv[1:])
    subprocess_task_handler.run_local_subprocess = wrapped(subprocess_task_handler.run_local_subprocess)
    result = local_run.run_local(pipeline, params)
    log = (result.run_dir / "run.log").read_text()
    print(f"{'function':<28} {'wall s':>7} {'cpu s':>7} {'cores':>6} {'peak RSS MiB':>13}")
    for line in log.splitlines():
        if MARK not in line:
            continue
        fields = dict(re.findall(r"(\w+)=(\S+)", line))
        wall, cpu = float(fields["wall_s"]), float(fields["user_s"]) + float(fields["sys_s"])
        print(f"{fields['function']:<28} {wall:7.1f} {cpu:7.1f} {cpu / max(wall, 0.01):6.2f} "
              f"{int(fields['max_rss_kb']) / 1024:13.0f}")
    return 0 if result.succeeded else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
