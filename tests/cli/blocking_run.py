"""python blocking_run.py TARGET STARTED -- visionloop args: run the visionloop CLI with TARGET
(module:attr or module:Class.attr) patched so that, after its first call, it writes STARTED and blocks until
a signal arrives. Used by test_interrupt.py to stop commands mid-run deterministically."""
import functools
import importlib
import pathlib
import signal
import sys
import time

# as a terminal's foreground command gets it, whatever the test runner inherited: a runner started as a
# background job (`cmd &`, nohup) ignores SIGINT, and visionloop keeps an ignored SIGINT ignored (cli/main.py)
signal.signal(signal.SIGINT, signal.SIG_DFL)

target, started = sys.argv[1], pathlib.Path(sys.argv[2])
mod, _, qual = target.partition(":")
owner = importlib.import_module(mod)
*path, attr = qual.split(".")
for p in path:
    owner = getattr(owner, p)
original = getattr(owner, attr)

@functools.wraps(original)
def blocking(*a, **k):
    original(*a, **k)
    started.write_text("x")
    while True:
        time.sleep(1)

setattr(owner, attr, blocking)
sys.argv = ["visionloop", *sys.argv[4:]]
from visionloop.cli.main import main  # noqa: E402 - after the patch

main()
