"""The resweep's signing: its pool ends cleanly, whatever signal handlers the command has,
and each file is signed from all of its bytes."""

from __future__ import annotations

import multiprocessing
import signal
import time

import pytest

from pipeline import catalog, cli
from tests import images


@pytest.fixture
def command_handlers():
    """The handlers ``frame-ingest`` installs (SIGTERM raises Stopped), as in a real run."""
    before = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, cli._stop)
    yield
    signal.signal(signal.SIGTERM, before)


def test_workers_die_on_sigterm_and_leave_ctrl_c_to_the_command(command_handlers):
    # an inherited handler that raises made Pool.terminate wait for good on a worker that
    # caught the signal while it waited for the job queue's lock
    with catalog._pool(2) as pool:
        handlers = pool.map(signal.getsignal, [signal.SIGTERM, signal.SIGINT] * 2)
    assert handlers == [signal.SIG_DFL, signal.SIG_IGN] * 2
    assert multiprocessing.active_children() == []


def test_a_finished_pool_ends_its_workers_without_a_signal(tmp_path, command_handlers):
    for number in range(40):
        (tmp_path / f"p{number:02d}.jpg").write_bytes(images.jpeg(images.photo(number)))
    jobs = [(str(tmp_path), path.name, path.stat().st_size, 0, 10**8)
            for path in sorted(tmp_path.iterdir())]
    for _ in range(5):
        results = list(catalog.signed_files(jobs, 2))
        assert sorted(item.path for item, signature, error in results
                      if signature is not None and not error) == [name for _, name, *_ in jobs]
        assert multiprocessing.active_children() == []


def test_a_stopped_command_takes_its_workers_down_at_once(command_handlers):
    started = time.monotonic()
    with pytest.raises(cli.Stopped):
        with catalog._pool(2) as pool:
            pool.map_async(time.sleep, [30, 30])
            time.sleep(0.2)
            raise cli.Stopped()
    assert time.monotonic() - started < 10
    assert multiprocessing.active_children() == []


def test_a_file_that_grew_since_the_walk_is_signed_whole(tmp_path):
    path = tmp_path / "grew.jpg"
    path.write_bytes(images.jpeg(images.photo(7)))
    walked = path.stat().st_size
    path.write_bytes(images.jpeg(images.photo(8), quality=97))   # rewritten, larger
    assert path.stat().st_size > walked
    item, signature, error = catalog.sign_library_file((str(tmp_path), "grew.jpg", walked,
                                                        0, 10**8))
    assert error == "" and signature == catalog.sign_file(path, 10**8)
    assert signature.size == path.stat().st_size
