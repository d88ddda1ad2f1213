"""Cores kept out of deep idle states while a benchmark runs, as latency benchmarks do.

On a virtual machine, a core that sleeps between requests takes a long time to wake up: an
idle round trip to a Redis on the other core was seen here at 1.1 ms (median of 100 PINGs
50 ms apart), against 0.39 ms with this held. At the time-to-result run's light load, every
hop of a job (client, server, Redis) pays that, so the figure measures the machine's idle
states more than the build. Linux's PM QoS interface is the standard remedy, the one
cyclictest and tuned's latency-performance profile use: while a process holds
/dev/cpu_dma_latency open with 0 written to it, cores do not enter idle states with a wake-up
latency (they poll instead). It applies to every build measured alike, and the report says
whether it was held. Writing it needs root; elsewhere the run goes on without it and says so.
"""

import contextlib
import os
import struct
from collections.abc import Iterator
from pathlib import Path

DEVICE = Path("/dev/cpu_dma_latency")


@contextlib.contextmanager
def cores_kept_awake(enabled: bool, device: Path = DEVICE) -> Iterator[str]:
    """Hold a 0 µs wake-up latency request while inside; yields what the report says."""
    if not enabled:
        yield "idle states: as the machine sets them (BENCH_KEEP_CORES_AWAKE=false)"
        return
    try:
        fd = os.open(device, os.O_WRONLY)
    except OSError as exc:
        yield f"idle states: as the machine sets them ({device} not writable: {exc.strerror})"
        return
    try:
        os.write(fd, struct.pack("i", 0))
        yield f"idle states: cores kept awake ({device} held at 0 µs)"
    finally:
        os.close(fd)  # closing the file drops the request
