"""``rusage_wrapper.py OUT_FILE CMD...``: run CMD, then write the largest ``ru_maxrss`` (bytes) of
any of its processes to OUT_FILE and exit with CMD's exit code.

A fresh wrapper per run makes ``RUSAGE_CHILDREN`` cover exactly that run's process tree.
"""

import os
import resource
import signal
import subprocess
import sys

out_file, cmd = sys.argv[1], sys.argv[2:]
child = subprocess.Popen(cmd)
signal.signal(signal.SIGTERM, lambda *_: child.kill())
code = child.wait()
with open(out_file, "w") as fh:
    fh.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024))
os._exit(code if code >= 0 else 128 - code)
