"""bench/idle.py: the PM QoS request is written while held, and its absence is reported."""

from pathlib import Path

from bench.idle import cores_kept_awake


def test_the_request_is_zero_microseconds_and_held_inside(tmp_path: Path) -> None:
    device = tmp_path / "cpu_dma_latency"  # a file stands in for the device node
    device.write_bytes(b"")
    with cores_kept_awake(True, device) as said:
        assert device.read_bytes() == b"\0\0\0\0"
    assert said == f"idle states: cores kept awake ({device} held at 0 µs)"


def test_a_device_that_cannot_be_opened_is_reported_not_raised(tmp_path: Path) -> None:
    with cores_kept_awake(True, tmp_path / "missing" / "cpu_dma_latency") as said:
        assert "not writable: No such file or directory" in said


def test_off_leaves_the_machine_alone(tmp_path: Path) -> None:
    device = tmp_path / "cpu_dma_latency"
    device.write_bytes(b"untouched")
    with cores_kept_awake(False, device) as said:
        assert device.read_bytes() == b"untouched"
    assert "BENCH_KEEP_CORES_AWAKE=false" in said
