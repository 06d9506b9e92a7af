"""The streaming sharded safetensors writer: files the safetensors library reads back bit for bit,
HF shard names and index, size caps, and errors that surface instead of hanging."""

import json

import pytest
import torch
from helpers import raises_whole
from safetensors import safe_open
from safetensors.torch import load_file

from nextx.errors import NextxError
from nextx.io.shards import ShardedWriter, TensorEntry, shard_layout
from nextx.io.tensors import SafetensorsFile


def _tensors():
    g = torch.Generator().manual_seed(0)
    return {
        "a.weight": torch.randn(7, 5, generator=g).bfloat16(),
        "b.weight": torch.randn(3, 4, generator=g, dtype=torch.float64),
        "c.ids": torch.arange(6, dtype=torch.int64).reshape(2, 3),
        "d.mask": torch.tensor([True, False, True]),
        "e.scalar": torch.tensor(2.5, dtype=torch.float16),
        "f.empty": torch.zeros(0, 4),
        "g.weight": torch.randn(11, generator=g),
    }


def _write(directory, tensors, max_bytes):
    entries = [TensorEntry(k, t.dtype, tuple(t.shape)) for k, t in tensors.items()]
    with ShardedWriter(directory, entries, max_bytes) as writer:
        for entry in writer.planned:
            writer.add(entry.name, tensors[entry.name])
        return writer.close()


def test_single_shard_round_trips_every_dtype(tmp_path):
    tensors = _tensors()
    paths = _write(tmp_path, tensors, 10**9)
    assert [p.name for p in paths] == ["model.safetensors"] and not (tmp_path / "model.safetensors.index.json").exists()
    back = load_file(paths[0])
    assert set(back) == set(tensors)
    for key, tensor in tensors.items():
        assert back[key].dtype == tensor.dtype and torch.equal(back[key], tensor)
    with safe_open(str(paths[0]), "pt") as handle:
        assert handle.metadata() == {"format": "pt"}
    ours = SafetensorsFile(paths[0])  # nextx's own reader (plain reads of the byte ranges) agrees
    for key, tensor in zip(tensors, ours.get_many(list(tensors), check=False), strict=True):
        assert tensor.dtype == tensors[key].dtype and torch.equal(tensor, tensors[key])


def test_shards_index_and_size_cap(tmp_path):
    tensors = _tensors()
    cap = 80  # bytes: a.weight (70 B) fills one shard, b.weight (96 B) is larger than the cap: its own shard
    paths = _write(tmp_path, tensors, cap)
    layout = shard_layout([TensorEntry(k, t.dtype, tuple(t.shape)) for k, t in tensors.items()], cap)
    assert len(paths) == len(layout) >= 3
    assert [p.name for p in paths][0] == f"model-00001-of-{len(paths):05d}.safetensors"
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    from huggingface_hub import split_torch_state_dict_into_shards

    assert index["weight_map"] == split_torch_state_dict_into_shards(tensors, max_shard_size=cap).tensor_to_filename
    assert index["metadata"]["total_size"] == sum(t.numel() * t.element_size() for t in tensors.values())
    for shard, path in zip(layout, paths, strict=True):
        assert sum(e.nbytes for e in shard) <= cap or len(shard) == 1
        back = load_file(path)
        assert set(back) == {e.name for e in shard}
        for entry in shard:
            assert index["weight_map"][entry.name] == path.name
            assert torch.equal(back[entry.name], tensors[entry.name])


def test_tensor_not_in_the_plan_is_refused(tmp_path):
    entries = [TensorEntry("x", torch.float32, (2, 2))]
    with ShardedWriter(tmp_path, entries, 10**6) as writer:
        with raises_whole(NextxError, "internal: got x torch.float32 (2, 3), planned x torch.float32 (2, 2)."):
            writer.add("x", torch.zeros(2, 3))
        with raises_whole(NextxError, "internal: output closed before tensor x was written."):
            writer.close()


def test_a_failed_write_surfaces_in_the_caller(tmp_path):
    entries = [TensorEntry(f"t{i}", torch.float32, (256, 256)) for i in range(8)]
    missing = tmp_path / "gone"  # the writer thread cannot open its shard here
    # the error may surface in add() or in close()
    with pytest.raises(FileNotFoundError), ShardedWriter(missing, entries, 10**9) as writer:
        for entry in entries:
            writer.add(entry.name, torch.zeros(entry.shape))
        writer.close()


def test_one_writer_per_output_and_stale_temp_dirs_are_cleaned(tmp_path):
    import os
    import subprocess
    import sys

    from nextx.errors import OutputExistsError
    from nextx.io.write import atomic_output_dir

    out = tmp_path / "out"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)  # a process that has exited: its leftovers are stale
    (tmp_path / f".out.nextx-tmp-{pid}").mkdir()
    (tmp_path / ".out.nextx-lock").write_text(str(pid))
    with atomic_output_dir(out) as tmp:
        assert not (tmp_path / f".out.nextx-tmp-{pid}").exists()  # cleaned at start
        assert (tmp_path / ".out.nextx-lock").read_text() == str(os.getpid())
        busy = f"another nextx process (pid {os.getpid()}) is writing this output ({out}). " \
               "Wait for it to finish, or choose another -o."
        with raises_whole(OutputExistsError, busy), atomic_output_dir(out):
            pass
        (tmp / "x").write_text("1")
    assert (out / "x").read_text() == "1" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_output_appearing_during_the_write_is_not_replaced(tmp_path):

    from nextx.errors import OutputExistsError
    from nextx.io.write import atomic_output_dir

    out = tmp_path / "out"
    with raises_whole(OutputExistsError, f"output appeared while nextx was writing it ({out}). "
                                     "Pass --force to replace it, or choose another -o."), \
            atomic_output_dir(out) as tmp:
        (tmp / "mine").write_text("new")
        out.mkdir()
        (out / "theirs").write_text("old")
    assert [p.name for p in out.iterdir()] == ["theirs"] and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_force_over_a_symlink_leaves_no_old_link(tmp_path):
    from nextx.io.write import atomic_output_dir

    (tmp_path / "target").mkdir()
    (tmp_path / "out").symlink_to(tmp_path / "target")
    with atomic_output_dir(tmp_path / "out", force=True) as tmp:
        (tmp / "x").write_text("1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "target"] and (tmp_path / "out" / "x").exists()


def test_kill_9_mid_write_leaves_nothing_a_rerun_does_not_clean(tmp_path):
    """A writer killed with SIGKILL inside atomic_output_dir leaves a temp dir and a lock; the next
    writer removes both (their PID is gone) and succeeds; no output appears from the killed one."""
    import signal
    import subprocess
    import sys

    from nextx.io.write import atomic_output_dir

    out = tmp_path / "out"
    code = ("import sys, time\nfrom nextx.io.write import atomic_output_dir\n"
            f"with atomic_output_dir({str(out)!r}) as tmp:\n"
            "    (tmp / 'part').write_text('half')\n    print('ready', flush=True)\n    time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [".out.nextx-lock", f".out.nextx-tmp-{child.pid}"] and not out.exists()
    with atomic_output_dir(out) as tmp:
        (tmp / "x").write_text("1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and (out / "x").read_text() == "1"


def test_tensors_are_stored_in_safetensors_own_order_and_aligned(tmp_path):
    """Inside a file, the same order the safetensors library writes (dtype descending, then name), so
    every tensor starts at a multiple of its element size."""
    from safetensors.torch import save_file

    tensors = _tensors()
    (tmp_path / "ours").mkdir()
    (tmp_path / "ref").mkdir()
    ours = _write(tmp_path / "ours", tensors, 10**9)[0]
    save_file(tensors, tmp_path / "ref" / "model.safetensors")

    def layout(path):  # (offset, name) in file order, from the raw header
        raw = path.read_bytes()
        header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
        header.pop("__metadata__", None)
        return sorted((v["data_offsets"][0], k) for k, v in header.items())

    assert [k for _, k in layout(ours)] == [k for _, k in layout(tmp_path / "ref" / "model.safetensors")]
    assert all(offset % tensors[k].element_size() == 0 for offset, k in layout(ours))


def test_locks_never_print_their_content_and_a_dead_or_foreign_holder_does_not_block(tmp_path):
    """A planted symlink lock is refused without following it (an HF token would have been printed); a
    live holder's lock with junk content names no pid; a lock left with a live but unrelated pid (pid
    1, pid reuse) or garbage does not block: the kernel's flock, not the pid, says who holds it."""
    from nextx.errors import OutputExistsError
    from nextx.io.write import atomic_output_dir

    secret = tmp_path / "token"
    secret.write_text("hf_SECRET")
    out, lock = tmp_path / "out", tmp_path / ".out.nextx-lock"
    lock.symlink_to(secret)
    with raises_whole(OutputExistsError, f"the output's lock file cannot be used: Too many levels of symbolic links "
                                         f"({lock}). Remove it if no nextx process is writing this output."), \
            atomic_output_dir(out):
        pass
    lock.unlink()
    lock.mkdir()
    with raises_whole(OutputExistsError, f"the output's lock file cannot be used: Is a directory ({lock}). Remove it "
                                         "if no nextx process is writing this output."), atomic_output_dir(out):
        pass
    lock.rmdir()
    for stale in ("1", "²", "", "\x00\x01binary"):  # nobody holds it: taken over
        lock.write_text(stale)
        with atomic_output_dir(out, force=True) as tmp:
            (tmp / "x").write_text(stale)
            lock.write_text("²junk")  # the holder's lock with junk in it: refused, no pid, no junk
            with raises_whole(OutputExistsError, f"another nextx process is writing this output ({out}). Wait for it "
                                                 "to finish, or choose another -o."), atomic_output_dir(out, force=True):
                pass
    assert not lock.exists() and (out / "x").read_text() == "\x00\x01binary"


def test_sizes_take_the_unit_letter_alone_as_split_du_and_docker_write_them():
    from nextx.io.write import parse_size

    assert [parse_size(s) for s in ("5G", "500M", "2GiB", "5GB", "7")] == [5 * 10**9, 500 * 10**6, 2 * 2**30, 5 * 10**9, 7]


@pytest.mark.parametrize("value", ["abc", "0", "-1", "1e3", "²", " "])
def test_bad_thread_settings_are_refused_not_ignored(monkeypatch, value):
    from nextx.errors import NextxError
    from nextx.threads import free_cores

    monkeypatch.setenv("NEXTX_THREADS", value)
    if not value.strip():
        assert free_cores() >= 1  # unset in effect
        return
    with raises_whole(NextxError, f"NEXTX_THREADS={value!r} is not a number of threads. Set NEXTX_THREADS to a whole "
                                  "number from 1 (or unset it: nextx uses the free cores)."):
        free_cores()


def test_an_error_from_closing_a_shard_reaches_the_caller(tmp_path, monkeypatch):
    """NFS reports deferred write errors at close(): they fail the write, never a thread traceback and
    a committed output."""
    import builtins
    import errno

    real_open = builtins.open

    class Deferred:
        def __init__(self, handle):
            self.handle = handle

        def write(self, data):
            return self.handle.write(data)

        def close(self):
            self.handle.close()
            raise OSError(errno.EIO, "Input/output error")

    def fake_open(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        return Deferred(handle) if "w" in mode and str(path).endswith(".safetensors") else handle

    monkeypatch.setattr(builtins, "open", fake_open)
    entries = [TensorEntry("x", torch.float32, (2, 2))]
    with pytest.raises(OSError, match="Input/output error"), ShardedWriter(tmp_path, entries, 10**6) as writer:
        writer.add("x", torch.zeros(2, 2))
        writer.close()
