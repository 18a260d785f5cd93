"""Torch's CPU threads follow the cores other programs leave idle."""

import pytest
import torch

from napari_emseg.inference import cpu_threads


@pytest.fixture(autouse=True)
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_busy_cores_elsewhere_take_threads_from_torch(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("EMSEG_TORCH_THREADS", raising=False)
    monkeypatch.setattr(cpu_threads, "machine_cores", lambda: 4)
    seen = []
    for busy in (0.0, 1.2, 9.0, None):
        monkeypatch.setattr(cpu_threads, "busy_cores", lambda busy=busy: busy)
        seen.append((cpu_threads.fit_torch_threads(), torch.get_num_threads()))
    assert seen == [(4, 4), (3, 3), (1, 1), (4, 4)]


def test_the_users_thread_count_wins(monkeypatch):
    monkeypatch.setenv("EMSEG_TORCH_THREADS", "1")
    monkeypatch.setattr(cpu_threads, "busy_cores", lambda: pytest.fail("must not sample"))
    assert cpu_threads.fit_torch_threads() == 1 == torch.get_num_threads()


def test_this_process_busy_does_not_count_as_another_program():
    """A thread of this process spinning on a core during the sample adds no busy core."""
    import threading

    quiet = cpu_threads.busy_cores(0.3)
    if quiet is None:
        pytest.skip("no /proc/stat here")
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            sum(range(1000))

    worker = threading.Thread(target=spin)
    worker.start()
    try:
        spinning = cpu_threads.busy_cores(0.3)
    finally:
        stop.set()
        worker.join()
    assert spinning < quiet + 0.5  # counted, the spinning thread would add about one core
